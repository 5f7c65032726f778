"""Writing an answer into a Slack thread as it streams.

Where the workspace allows it, the answer streams into one message with Slack's chat
streaming methods (`chat.startStream`, `appendStream`, `stopStream`); elsewhere (refused,
or a DM without threads) the first text is posted and then edited in place, at most once
per `min_update_interval`. Slack ends a stream after about five minutes; from then on
that message is edited with `chat.update` instead.

Text goes to Slack as Markdown (`markdown_text`), never rewritten into mrkdwn. A message
holds at most `MESSAGE_LIMIT` characters: longer answers continue in further messages,
split by `split_message` at paragraph or code-fence boundaries. `finish` reconciles every
message with the final split, so the thread ends with exactly the answer's text.

The engine may cancel a call mid-way (it stops its update pusher before finishing); each
call therefore runs in a task of the sink's own, shielded from the caller, and the calls
run one at a time, in order, so a half-done update can't leave a message the sink doesn't
know of. `start` and `progress` only queue their status update: the answer never waits
for the "thinking" indicator.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.calls import slack_call
from adapters.slack.status import ThinkingIndicator
from bot.chunking import split_message
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
class _Posted:
    ts: str
    shown: str  # what Slack displays in this message now
    streaming: bool  # an open chat stream that can be appended to


class SlackSink:
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
        self._limit = limit
        self._messages: list[_Posted] = []
        self._can_stream = target.thread_ts is not None
        self._turn = asyncio.Lock()
        self._running: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._queue(self._indicator.show())  # the model request need not wait for it

    async def progress(self, status: str) -> None:
        self._queue(self._indicator.show(status))

    async def update(self, text: str) -> None:
        await self._run(self._render(text, final=False))

    async def finish(self, reply: FinalReply) -> None:
        await self._run(self._finish(reply))

    async def fail(self, message: str) -> None:
        await self._run(self._fail(message))

    async def _run(self, step: Coroutine[Any, Any, None]) -> None:
        await asyncio.shield(self._queue(step))

    def _queue(self, step: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run `step` after the steps queued before it (the lock is first come, first served)."""

        async def in_turn() -> None:
            async with self._turn:
                await step

        task = asyncio.create_task(in_turn())
        self._running.add(task)
        task.add_done_callback(self._running.discard)
        return task

    async def _finish(self, reply: FinalReply) -> None:
        text = reply.text
        if reply.notes:
            text += "\n\n" + "\n".join(f"> {note}" for note in reply.notes)
        await self._render(text, final=True)
        await self._indicator.clear()

    async def _fail(self, message: str) -> None:
        for posted in self._messages:
            if posted.streaming:
                await self._stop_stream(posted, "")
        await self._post(f"⚠️ {message}", stream=False)
        await self._indicator.clear()

    async def _render(self, text: str, *, final: bool) -> None:
        pieces = split_message(text, self._limit) if text.strip() else []
        for i, piece in enumerate(pieces):
            done = final or i < len(pieces) - 1
            if i < len(self._messages):
                await self._revise(self._messages[i], piece, done=done)
                continue
            posted = await self._post(piece, stream=not done)
            if posted is None:
                return  # later pieces must not appear above a missing one
            self._messages.append(posted)
            if len(self._messages) == 1:
                await self._indicator.quiet()
        if final:
            for extra in self._messages[len(pieces) :]:
                await slack_call(
                    self._client.chat_delete, channel=self._target.channel, ts=extra.ts
                )
            del self._messages[len(pieces) :]

    async def _revise(self, posted: _Posted, piece: str, *, done: bool) -> None:
        if posted.streaming:
            if piece.startswith(posted.shown):
                delta = piece[len(posted.shown) :]
                if done:
                    if await self._stop_stream(posted, delta):
                        posted.shown = piece
                        return
                elif not delta:
                    return
                elif await self._append(posted, delta):
                    posted.shown = piece
                    return
            else:
                await self._stop_stream(posted, "")  # the split moved: edit the rest
            posted.streaming = False
        if piece != posted.shown:
            out = await slack_call(
                self._client.chat_update,
                channel=self._target.channel,
                ts=posted.ts,
                markdown_text=piece,
            )
            if out.ok:
                posted.shown = piece

    async def _append(self, posted: _Posted, delta: str) -> bool:
        out = await slack_call(
            self._client.chat_appendStream,
            channel=self._target.channel,
            ts=posted.ts,
            markdown_text=delta,
            quiet=True,  # message_not_in_streaming_state: Slack ended it; edits take over
        )
        return out.ok

    async def _stop_stream(self, posted: _Posted, delta: str) -> bool:
        out = await slack_call(
            self._client.chat_stopStream,
            channel=self._target.channel,
            ts=posted.ts,
            markdown_text=delta or None,
            quiet=True,
        )
        posted.streaming = False
        return out.ok

    async def _post(self, piece: str, *, stream: bool) -> _Posted | None:
        target = self._target
        if stream and self._can_stream:
            out = await slack_call(
                self._client.chat_startStream,
                channel=target.channel,
                thread_ts=target.thread_ts,
                markdown_text=piece,
                recipient_user_id=target.recipient_user_id,
                recipient_team_id=target.recipient_team_id,
                quiet=True,
            )
            if out.ok:
                return _Posted(str(out.get("ts")), piece, streaming=True)
            self._can_stream = False  # refused here: post once, then edit
        out = await slack_call(
            self._client.chat_postMessage,
            channel=target.channel,
            thread_ts=target.thread_ts,
            markdown_text=piece,
        )
        return _Posted(str(out.get("ts")), piece, streaming=False) if out.ok else None
