"""Writing an answer into a Slack thread as it streams.

The core's `MessageChain` renders the answer into messages of at most `MESSAGE_LIMIT`
characters; `SlackSink`, as its outlet, posts and revises one message. Where the workspace allows
it, a message streams with Slack's chat streaming methods (`chat.startStream`,
`appendStream`, `stopStream`); elsewhere (refused, or a DM without threads) it is
posted and then edited in place. Slack ends a stream after about five minutes; from
then on that message is edited with `chat.update` instead.

Each tool call shows as a task card in the streamed message (`task_update` chunks:
pending, in_progress, complete or error, with the arguments as details and the outcome
as output); where the workspace refuses those chunks, or there is no stream, the step
is the thread's status line and, until the answer's text comes, the message's text. A
tool that needs approval is asked for with buttons in the thread
(`adapters.slack.approval`).

Text goes to Slack as Markdown (`markdown_text`), never rewritten into mrkdwn. `start`
and `progress` only queue their status update: the answer never waits for the
"thinking" indicator.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.approval import post_approval
from adapters.slack.calls import Outcome, slack_call
from adapters.slack.status import ThinkingIndicator
from bot.reply import MessageChain
from bot.sink import FinalReply
from bot.tools.approval import ApprovalRequest
from bot.tools.base import ToolProgress, ToolState

MESSAGE_LIMIT = 12_000  # Slack's limit for markdown_text and the markdown block
UPDATE_INTERVAL = 1.0  # Slack's guidance for editing one message
TASK_STATUS: dict[ToolState, str] = {
    "pending": "pending",
    "awaiting_approval": "pending",
    "running": "in_progress",
    "done": "complete",
    "error": "error",
}
STREAM_ENDED = "message_not_in_streaming_state"


def task_chunk(event: ToolProgress) -> dict[str, Any]:
    """One tool call's step as a `task_update` chunk (the call id keeps it one card)."""
    chunk: dict[str, Any] = {
        "type": "task_update",
        "id": event.call_id,
        "title": event.name,
        "status": TASK_STATUS[event.state],
    }
    if event.state in ("done", "error"):
        chunk["output"] = event.summary
    elif event.state == "awaiting_approval":
        chunk["title"] = f"{event.name} (waiting for approval)"
        chunk["details"] = event.summary
    else:
        chunk["details"] = event.summary
    return chunk


@dataclass(frozen=True, slots=True)
class ReplyTarget:
    """Where an answer goes. `thread_ts` is None only at the top level of a DM."""

    channel: str
    thread_ts: str | None
    question_ts: str
    recipient_user_id: str | None = None  # required by chat.startStream outside DMs
    recipient_team_id: str | None = None


@dataclass(slots=True)
class Posted:
    ts: str
    streaming: bool  # an open chat stream that can be appended to


class SlackSink:
    """The engine's `ReplySink` for Slack, and the `Outlet` its `MessageChain` writes to:
    one answer's messages in a Slack thread, streamed where Slack allows it."""

    min_update_interval = UPDATE_INTERVAL

    def __init__(
        self,
        client: AsyncWebClient,
        target: ReplyTarget,
        indicator: ThinkingIndicator,
        *,
        limit: int = MESSAGE_LIMIT,
    ) -> None:
        self._client = client
        self._target = target
        self._indicator = indicator
        self.limit = limit
        self._can_stream = target.thread_ts is not None
        self._posted = 0
        self._tasks_refused = False
        self._texted = False  # some of the answer's text is showing
        self._carded = False  # the last tool step showed as a task card
        self._chain: MessageChain[Posted] = MessageChain(self)

    # -- ReplySink --------------------------------------------------------------

    async def start(self) -> None:
        self._chain.queue(self._indicator.show())  # the model request need not wait for it

    async def progress(self, status: str) -> None:
        self._chain.queue(self._indicator.show(status))

    async def update(self, text: str) -> None:
        self._texted = self._texted or bool(text.strip())
        await self._chain.render(text, final=False)

    async def tool_progress(self, event: ToolProgress) -> None:
        await self._chain.run(self._show_task(event))
        if not self._carded and not self._texted:
            # No task cards here: the step is the message's line until the answer comes.
            await self._chain.render(f"_{event.status_line()}_", final=False)

    async def ask_approval(self, request: ApprovalRequest) -> None:
        await post_approval(self._client, self._target.channel, self._target.thread_ts, request)

    async def finish(self, reply: FinalReply) -> None:
        text = reply.text
        if reply.notes:
            text += "\n\n" + "\n".join(f"> {note}" for note in reply.notes)
        await self._chain.render(text, final=True)
        await self._chain.run(self._indicator.clear())

    async def fail(self, message: str) -> None:
        await self._chain.run(self._fail(message))

    async def _fail(self, message: str) -> None:
        for posted in self._chain.messages:
            if posted.streaming:
                await self._stop_stream(posted, "")
        await self._post(f"⚠️ {message}", stream=False)
        await self._indicator.clear()

    # -- Outlet -----------------------------------------------------------------

    async def post(self, text: str, *, final: bool) -> Posted | None:
        posted = await self._post(text, stream=not final)
        if posted is not None:
            await self._counted(posted)
        return posted

    async def edit(self, message: Posted, before: str, text: str, *, final: bool) -> bool:
        if message.streaming:
            if text.startswith(before):
                delta = text[len(before) :]
                if final:
                    if await self._stop_stream(message, delta):
                        return True
                elif not delta or (await self._append(message, markdown_text=delta)).ok:
                    return True
            else:
                await self._stop_stream(message, "")  # the split moved: edit the rest
            message.streaming = False
        if text == before:
            return True
        out = await slack_call(
            self._client.chat_update,
            channel=self._target.channel,
            ts=message.ts,
            markdown_text=text,
        )
        return out.ok

    async def remove(self, message: Posted) -> None:
        await slack_call(self._client.chat_delete, channel=self._target.channel, ts=message.ts)

    async def _show_task(self, event: ToolProgress) -> None:
        self._carded = (
            not self._tasks_refused and self._can_stream and await self._task_card(event)
        )
        if not self._carded:
            await self._indicator.show(event.status_line())

    async def _task_card(self, event: ToolProgress) -> bool:
        """Show the step as a task card in the streamed answer; whether Slack took it."""
        chunks = [task_chunk(event)]
        messages = self._chain.messages
        if not messages:
            posted = await self._start_stream(None, chunks)
            if posted is None:
                self._tasks_refused = True
                return False
            self._chain.adopt(posted)
            await self._counted(posted)
            return True
        last = messages[-1]
        if not last.streaming:
            return False
        out = await self._append(last, chunks=chunks)
        if out.ok:
            return True
        if out.error == STREAM_ENDED:
            last.streaming = False  # edits take over, as for text
        else:
            self._tasks_refused = True
        return False

    async def _counted(self, posted: Posted) -> None:
        self._posted += 1
        if self._posted == 1:
            await self._indicator.quiet()  # the answer showing is progress enough

    async def _start_stream(
        self, text: str | None, chunks: list[dict[str, Any]] | None = None
    ) -> Posted | None:
        target = self._target
        out = await slack_call(
            self._client.chat_startStream,
            channel=target.channel,
            thread_ts=target.thread_ts,
            markdown_text=text,
            chunks=chunks,
            recipient_user_id=target.recipient_user_id,
            recipient_team_id=target.recipient_team_id,
            quiet=True,
        )
        return Posted(str(out.get("ts")), streaming=True) if out.ok else None

    async def _stop_stream(self, message: Posted, delta: str) -> bool:
        out = await slack_call(
            self._client.chat_stopStream,
            channel=self._target.channel,
            ts=message.ts,
            markdown_text=delta or None,
            quiet=True,
        )
        message.streaming = False
        return out.ok

    async def _append(self, message: Posted, **content: Any) -> Outcome:
        """Append text (`markdown_text`) or task cards (`chunks`) to a streaming message."""
        return await slack_call(
            self._client.chat_appendStream,
            channel=self._target.channel,
            ts=message.ts,
            quiet=True,  # message_not_in_streaming_state: Slack ended it; edits take over
            **content,
        )

    async def _post(self, text: str, *, stream: bool) -> Posted | None:
        target = self._target
        if stream and self._can_stream:
            posted = await self._start_stream(text)
            if posted is not None:
                return posted
            self._can_stream = False  # refused here: post once, then edit
        out = await slack_call(
            self._client.chat_postMessage,
            channel=target.channel,
            thread_ts=target.thread_ts,
            markdown_text=text,
        )
        return Posted(str(out.get("ts")), streaming=False) if out.ok else None
