"""Writing an answer into a Slack thread as it streams.

The core's `MessageChain` renders the answer into messages of at most `MESSAGE_LIMIT`
characters; `SlackSink`, as its outlet, posts and revises one message. Where the workspace allows
it, a message streams with Slack's chat streaming methods (`chat.startStream`,
`appendStream`, `stopStream`); elsewhere (refused, or a DM without threads) it is
posted and then edited in place. Slack ends a stream after about five minutes; from
then on that message is edited with `chat.update` instead.

Text goes to Slack as Markdown (`markdown_text`), never rewritten into mrkdwn. `start`
and `progress` only queue their status update: the answer never waits for the
"thinking" indicator.
"""

from __future__ import annotations

from dataclasses import dataclass

from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.calls import slack_call
from adapters.slack.status import ThinkingIndicator
from bot.reply import MessageChain
from bot.sink import FinalReply

MESSAGE_LIMIT = 12_000  # Slack's limit for markdown_text and the markdown block
UPDATE_INTERVAL = 1.0  # Slack's guidance for editing one message


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
        self._chain: MessageChain[Posted] = MessageChain(self)

    # -- ReplySink --------------------------------------------------------------

    async def start(self) -> None:
        self._chain.queue(self._indicator.show())  # the model request need not wait for it

    async def progress(self, status: str) -> None:
        self._chain.queue(self._indicator.show(status))

    async def update(self, text: str) -> None:
        await self._chain.render(text, final=False)

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
            self._posted += 1
            if self._posted == 1:
                await self._indicator.quiet()  # the answer showing is progress enough
        return posted

    async def edit(self, message: Posted, before: str, text: str, *, final: bool) -> bool:
        if message.streaming:
            if text.startswith(before):
                delta = text[len(before) :]
                if final:
                    if await self._stop_stream(message, delta):
                        return True
                elif not delta or await self._append(message, delta):
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

    async def _append(self, message: Posted, delta: str) -> bool:
        out = await slack_call(
            self._client.chat_appendStream,
            channel=self._target.channel,
            ts=message.ts,
            markdown_text=delta,
            quiet=True,  # message_not_in_streaming_state: Slack ended it; edits take over
        )
        return out.ok

    async def _post(self, text: str, *, stream: bool) -> Posted | None:
        target = self._target
        if stream and self._can_stream:
            out = await slack_call(
                self._client.chat_startStream,
                channel=target.channel,
                thread_ts=target.thread_ts,
                markdown_text=text,
                recipient_user_id=target.recipient_user_id,
                recipient_team_id=target.recipient_team_id,
                quiet=True,
            )
            if out.ok:
                return Posted(str(out.get("ts")), streaming=True)
            self._can_stream = False  # refused here: post once, then edit
        out = await slack_call(
            self._client.chat_postMessage,
            channel=target.channel,
            thread_ts=target.thread_ts,
            markdown_text=text,
        )
        return Posted(str(out.get("ts")), streaming=False) if out.ok else None
