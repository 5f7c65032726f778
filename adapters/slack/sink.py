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

Everything posted from model text passes `_safe` last, once for the whole answer before
the chain splits it: no special mention notifies (unless the channel's policy allows
them), a user mention stays only for people already in the thread, and everyone else
is named without a ping. Messages are posted with previews off unless people wrote
every link in them (`unfurl_links`/`unfurl_media`: only `chat.postMessage` takes them;
Slack's streaming methods and `chat.update` have no such arguments).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.approval import post_approval
from adapters.slack.calls import Outcome, slack_call
from adapters.slack.feedback import FEEDBACK_PROMPT, feedback_blocks
from adapters.slack.status import ThinkingIndicator
from adapters.slack.users import UserDirectory
from bot.metrics import Metrics
from bot.reply import Audience, MessageChain
from bot.reply.sink import FinalReply
from bot.text.neutralize import mentioned_user_ids, neutralize_slack_mentions, settled
from bot.tools.approval import ApprovalRequest
from bot.tools.base import ToolProgress, ToolState

MESSAGE_LIMIT = 12_000  # Slack's limit for markdown_text and the markdown block
UPDATE_INTERVAL = 1.0  # Slack's guidance for editing one message
# A short answer complete within this of its first token is posted whole, with one
# chat.postMessage, instead of chat.startStream then chat.stopStream: half the calls
# against Slack's rate limits, and no half sentence flashing by.
FIRST_UPDATE_DELAY = 0.5
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
    first_update_delay = FIRST_UPDATE_DELAY

    def __init__(
        self,
        client: AsyncWebClient,
        target: ReplyTarget,
        indicator: ThinkingIndicator,
        *,
        users: UserDirectory,
        metrics: Metrics,
        limit: int = MESSAGE_LIMIT,
    ) -> None:
        self._client = client
        self._target = target
        self._indicator = indicator
        self._users = users
        self._metrics = metrics
        self._audience = Audience()
        self._names: dict[str, str] = {}  # display names, the same in every render
        self.limit = limit
        self._can_stream = target.thread_ts is not None
        self._posted = 0
        self._tasks_refused = False
        self._texted = False  # some of the answer's text is showing
        self._carded = False  # the last tool step showed as a task card
        self._chain: MessageChain[Posted] = MessageChain(self)
        self._final_text = ""
        self._feedback: list[dict[str, Any]] | None = None  # buttons not yet shown

    # -- ReplySink --------------------------------------------------------------

    async def start(self) -> None:
        self._chain.queue(self._indicator.show())  # the model request need not wait for it

    def meet(self, audience: Audience) -> None:
        self._audience = audience

    async def progress(self, status: str) -> None:
        self._chain.queue(self._indicator.show(await self._safe(status, "status")))

    async def update(self, text: str) -> None:
        self._texted = self._texted or bool(text.strip())
        # Only the settled start is shown while the answer grows, so what is streamed
        # stays a beginning of the final text (a `<!chan` may yet become `<!channel>`).
        await self._chain.render(await self._safe(settled(text)), final=False)

    async def tool_progress(self, event: ToolProgress) -> None:
        # A tool's arguments and output are the model's (or a server's) words too.
        event = replace(event, summary=await self._safe(event.summary, "status"))
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
        text = await self._safe(text, "answer")
        if reply.model:  # a model's answer gets 👍/👎 (not help or a reset)
            self._feedback = feedback_blocks(reply.model, reply.persona)
            self._final_text = text.rstrip()
        await self._chain.render(text, final=True)
        if self._feedback is not None:  # the last edit failed: buttons just below
            await self._chain.run(self._post_feedback(self._feedback))
        await self._chain.run(self._indicator.clear())

    async def fail(self, message: str) -> None:
        await self._chain.run(self._fail(await self._safe(message, "failure")))

    async def _safe(self, text: str, counted: str | None = None) -> str:
        """`text` as it may be posted: notifying only people already in the thread.

        `counted` names what the text is when it is shown for good (the final answer, a
        status line), so each mention is counted once, not in every render of a stream.
        """
        audience = self._audience
        wanted = mentioned_user_ids([text]) - audience.people - self._names.keys()
        if wanted:
            found = await self._users.names(wanted)
            # A failed lookup gives the id back: "" lets the mention's own label show.
            self._names.update({uid: "" if name == uid else name for uid, name in found.items()})
        result = neutralize_slack_mentions(
            text,
            allowed_users=audience.people,
            display_names=self._names,
            allow_special=audience.allow_mentions,
        )
        if counted is not None:
            audience.count(self._metrics, result.counts, counted)
        return result.text

    async def _fail(self, message: str) -> None:
        for posted in self._chain.messages:
            if posted.streaming:
                await self._stop_stream(posted, "")
        await self._post(f"⚠️ {message}", stream=False)
        await self._indicator.clear()

    # -- Outlet -----------------------------------------------------------------

    async def post(self, text: str, *, final: bool) -> Posted | None:
        if final:
            self._audience.count_invented_links(self._metrics, text)
        posted = await self._post(text, stream=not final)
        if posted is not None:
            await self._counted(posted)
        return posted

    async def edit(self, message: Posted, before: str, text: str, *, final: bool) -> bool:
        if final:
            self._audience.count_invented_links(self._metrics, text)
        if message.streaming:
            if text.startswith(before):
                delta = text[len(before) :]
                if final:
                    if await self._stop_stream(message, delta, self._last_blocks(text)):
                        return True
                elif not delta or (await self._append(message, markdown_text=delta)).ok:
                    return True
            else:
                await self._stop_stream(message, "")  # the split moved: edit the rest
            message.streaming = False
        if text == before:
            return True
        content = self._content(text, final=final)
        out = await slack_call(
            self._client.chat_update, channel=self._target.channel, ts=message.ts, **content
        )
        if out.ok and "blocks" in content:
            self._feedback = None
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

    async def _stop_stream(
        self, message: Posted, delta: str, blocks: list[dict[str, Any]] | None = None
    ) -> bool:
        out = await slack_call(
            self._client.chat_stopStream,
            channel=self._target.channel,
            ts=message.ts,
            markdown_text=delta or None,
            blocks=blocks,
            quiet=True,
        )
        message.streaming = False
        if out.ok and blocks is not None:
            self._feedback = None
        return out.ok

    def _last_blocks(self, text: str) -> list[dict[str, Any]] | None:
        """The feedback buttons, when `text` is the final answer's last message."""
        if self._feedback is not None and self._final_text.endswith(text.rstrip()):
            return self._feedback
        return None

    def _content(self, text: str, *, final: bool) -> dict[str, Any]:
        """A message's text: as `markdown_text`, or, on the answer's last message, as a
        markdown block with the feedback buttons under it (markdown_text can't have blocks)."""
        blocks = self._last_blocks(text) if final else None
        if blocks is None:
            return {"markdown_text": text}
        return {"text": text, "blocks": [{"type": "markdown", "text": text}, *blocks]}

    async def _post_feedback(self, blocks: list[dict[str, Any]]) -> None:
        out = await slack_call(
            self._client.chat_postMessage,
            channel=self._target.channel,
            thread_ts=self._target.thread_ts,
            text=FEEDBACK_PROMPT,
            blocks=blocks,
        )
        if out.ok:
            self._feedback = None

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
        # A message that may still grow can't know its links yet: no previews then.
        previews = not stream and self._audience.previews(text)
        content = self._content(text, final=not stream)
        out = await slack_call(
            self._client.chat_postMessage,
            channel=target.channel,
            thread_ts=target.thread_ts,
            unfurl_links=previews,
            unfurl_media=previews,
            **content,
        )
        if out.ok and "blocks" in content:
            self._feedback = None
        return Posted(str(out.get("ts")), streaming=False) if out.ok else None
