"""What the bot does with each kind of Slack request, once the gate let it through.

Bolt acknowledges events before these run (`process_before_response=False`), so Slack
gets its answer within milliseconds however long the model takes; the slash command
acknowledges first thing itself.
"""

from __future__ import annotations

import logging
from typing import Any, cast

from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.calls import slack_call
from adapters.slack.events import Place, Translator
from adapters.slack.gate import Gate, bot_identity
from adapters.slack.sink import ReplyTarget, SlackSink
from adapters.slack.status import ThinkingIndicator
from adapters.slack.types import AssistantThreadStartedEvent, EventEnvelope, SlashCommand
from bot.engine import Engine
from bot.errors import ParleyError

log = logging.getLogger(__name__)

SUGGESTED_PROMPTS = [
    {"title": "Explain something", "message": "Explain how DNS resolution works, step by step."},
    {"title": "Review my code", "message": "Review this code and suggest improvements:\n"},
    {"title": "Summarize", "message": "Summarize the key points of the text I paste next."},
]
PROMPTS_TITLE = "Try one of these:"


def usage(command: str) -> str:
    return (
        f"Ask me something with `{command} your question`: I'll post it in this channel and "
        "answer in its thread, where you can keep talking with me."
    )


class Handlers:
    def __init__(
        self,
        engine: Engine,
        client: AsyncWebClient,
        translator: Translator,
        gate: Gate,
    ) -> None:
        self._engine = engine
        self._client = client
        self._translator = translator
        self._gate = gate

    def sink(self, target: ReplyTarget) -> SlackSink:
        indicator = ThinkingIndicator(
            self._client,
            channel=target.channel,
            thread_ts=target.thread_ts,
            question_ts=target.question_ts,
        )
        return SlackSink(self._client, target, indicator)

    async def on_message(self, body: dict[str, Any], context: AsyncBoltContext) -> None:
        """`app_mention` and `message` events: both kinds go through the same gate."""
        envelope = cast(EventEnvelope, body)
        event = envelope["event"]
        bot = bot_identity(context)
        place = Place.of(envelope.get("team_id") or context.team_id or "", event)
        target = place.target(event.get("user_team"), event.get("user"))
        with self._engine.track():
            try:
                if not await self._gate.admit(event, place, bot):
                    return
                message = await self._translator.message(event, place, bot)
            except ParleyError as exc:
                await self.sink(target).fail(exc.user_message)
                return
            except Exception:
                log.exception("could not read Slack message %s", place.claim_id)
                await self.sink(target).fail(ParleyError().user_message)
                return
            await self._engine.handle(message, self.sink(target))

    async def on_assistant_thread(self, body: dict[str, Any]) -> None:
        """A user opened the assistant split view: offer a few prompts to start from."""
        event: AssistantThreadStartedEvent = body["event"]
        thread = event["assistant_thread"]
        with self._engine.track():
            try:
                if not await self._gate.claim(str(body.get("event_id"))):
                    return
            except ParleyError as exc:
                log.warning("suggested prompts skipped: %s", exc)
                return
            await slack_call(
                self._client.assistant_threads_setSuggestedPrompts,
                channel_id=thread["channel_id"],
                thread_ts=thread["thread_ts"],
                title=PROMPTS_TITLE,
                prompts=SUGGESTED_PROMPTS,
            )

    async def on_command(
        self,
        ack: AsyncAck,
        body: dict[str, Any],
        respond: AsyncRespond,
        context: AsyncBoltContext,
    ) -> None:
        """`/parley question`: post the question, then answer it in the question's thread."""
        await ack()
        command = cast(SlashCommand, body)
        question = command.get("text", "").strip()
        if not question:
            await respond(usage(command["command"]), response_type="ephemeral")
            return
        with self._engine.track():
            channel, user = command["channel_id"], command["user_id"]
            posted = await slack_call(
                self._client.chat_postMessage,
                channel=channel,
                text=f"<@{user}> asked:\n>>> {question}",
            )
            if not posted.ok:
                await respond(
                    f"I can't post in this conversation ({posted.error}). Invite me with "
                    "`/invite @Parley`, or send me a direct message.",
                    response_type="ephemeral",
                )
                return
            ts = str(posted.get("ts"))
            place = Place(command["team_id"], channel, ts, ts, is_dm=channel.startswith("D"))
            message = await self._translator.incoming(question, user, place, bot_identity(context))
            await self._engine.handle(message, self.sink(place.target(None, user)))
