"""What the bot does with each kind of Slack request, once bolt has acknowledged it.

Messages and the slash command become an `Envelope` and go to the intake, which decides
whether and how they are answered. Bolt acknowledges events before these run
(`process_before_response=False`), so Slack gets its answer within milliseconds however
long the model takes; the slash command acknowledges first thing itself.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.calls import slack_call
from adapters.slack.events import (
    PLATFORM,
    BotIdentity,
    Place,
    Translator,
    envelope,
    message_event,
)
from adapters.slack.feedback import COMMENT_FIELD, comment_form
from adapters.slack.sink import ReplyTarget, SlackSink
from adapters.slack.status import ThinkingIndicator
from adapters.slack.types import AssistantThreadStartedEvent, SlackFile, SlashCommand
from bot.conversation import IncomingMessage
from bot.errors import ParleyError
from bot.intake import Envelope, Intake
from bot.intake.commands import governed_command
from bot.intake.feedback import decode, rate
from bot.policy import Place as PolicyPlace

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


def bot_identity(context: AsyncBoltContext) -> BotIdentity:
    return BotIdentity(context.bot_user_id or "", context.bot_id or "")


@dataclass(frozen=True, slots=True)
class SlackSource:
    """What the intake asks of Slack about one message."""

    handlers: Handlers
    raw_text: str
    place: Place
    bot: BotIdentity

    async def read(self, env: Envelope) -> IncomingMessage:
        files = cast(Sequence[SlackFile], env.files)
        translator = self.handlers.translator
        return await translator.incoming(self.raw_text, env.author_id, self.place, self.bot, files)

    def reply(self, env: Envelope) -> SlackSink:
        if not isinstance(env.reply_to, ReplyTarget):
            raise TypeError(f"a Slack envelope replies to a ReplyTarget, not {env.reply_to!r}")
        return self.handlers.sink(env.reply_to)

    async def tell_privately(self, env: Envelope, text: str) -> None:
        await slack_call(
            self.handlers.client.chat_postEphemeral,
            channel=self.place.channel,
            user=env.author_id,
            text=text,
            thread_ts=self.place.thread_ts,
        )

    async def holds_thread(self, env: Envelope) -> bool:
        return await self.handlers.translator.holds_thread(self.place, self.bot)


class Handlers:
    def __init__(self, intake: Intake, client: AsyncWebClient, translator: Translator) -> None:
        self._intake = intake
        self.client = client
        self.translator = translator

    def sink(self, target: ReplyTarget) -> SlackSink:
        indicator = ThinkingIndicator(
            self.client,
            channel=target.channel,
            thread_ts=target.thread_ts,
            question_ts=target.question_ts,
        )
        return SlackSink(
            self.client,
            target,
            indicator,
            users=self.translator.users,
            metrics=self._intake.engine.metrics,
        )

    async def on_message(self, body: dict[str, Any], context: AsyncBoltContext) -> None:
        """`app_mention` and `message` events: both kinds go to the intake."""
        event = message_event(body.get("event"))
        if event is None:
            log.info("dropped Slack event %s: not a message event's shape", body.get("event_id"))
            return
        bot = bot_identity(context)
        team = body.get("team_id") or context.team_id or ""
        place = Place.of(team if isinstance(team, str) else "", event)
        source = SlackSource(self, event.get("text", ""), place, bot)
        await self._intake.submit(envelope(event, place, bot), source)

    async def on_assistant_thread(self, body: dict[str, Any]) -> None:
        """A user opened the assistant split view: offer a few prompts to start from."""
        event: AssistantThreadStartedEvent = body["event"]
        thread = event.get("assistant_thread")
        if not isinstance(thread, dict):
            log.info("dropped Slack event %s: no assistant thread", body.get("event_id"))
            return
        engine = self._intake.engine
        with engine.track():
            try:
                if not await engine.claim_event(str(body.get("event_id"))):
                    return
            except ParleyError as exc:
                log.warning("suggested prompts skipped: %s", exc)
                return
            await slack_call(
                self.client.assistant_threads_setSuggestedPrompts,
                channel_id=thread.get("channel_id"),
                thread_ts=thread.get("thread_ts"),
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
        channel, user = command["channel_id"], command["user_id"]
        who = PolicyPlace(
            PLATFORM, command["team_id"], channel, user, is_dm=channel.startswith("D")
        )
        private = await governed_command(self._intake.engine, who, question)
        if private is not None:  # `usage`, or a refusal: nothing is posted in the channel
            await respond(private, response_type="ephemeral")
            return
        with self._intake.engine.track():
            posted = await slack_call(
                self.client.chat_postMessage,
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
            env = Envelope(
                platform="slack",
                event_id=place.claim_id,
                key=place.key,
                author_id=user,
                text=question,
                is_command=True,
                reply_to=place.target(None, user),
            )
            await self._intake.submit(
                env, SlackSource(self, question, place, bot_identity(context))
            )

    async def on_feedback(self, ack: AsyncAck, body: dict[str, Any]) -> None:
        """👍 or 👎 pressed under an answer: count it (the buttons show the choice)."""
        await ack()
        actions = body.get("actions")
        action = actions[0] if isinstance(actions, list) and actions else {}
        rating = decode(action.get("value") if isinstance(action, dict) else None)
        channel = _field(body, "channel", "id")
        user = _field(body, "user", "id")
        answer = _field(body, "container", "message_ts") or _field(body, "message", "ts")
        if rating is None or not (channel and user and answer):
            log.info("dropped a Slack feedback action without Parley's button value")
            return
        team = _field(body, "team", "id") or _field(body, "user", "team_id")
        where = PolicyPlace(PLATFORM, team, channel, user, is_dm=channel.startswith("D"))
        with self._intake.engine.track():
            await rate(self._intake.engine, rating, where, f"{PLATFORM}:{channel}:{answer}")
            trigger = body.get("trigger_id")
            if rating.rating == "down" and isinstance(trigger, str):
                metadata = json.dumps(
                    {"value": rating.encode(), "team": team, "channel": channel, "answer": answer}
                )
                await slack_call(
                    self.client.views_open, trigger_id=trigger, view=comment_form(metadata)
                )

    async def on_comment(self, ack: AsyncAck, body: dict[str, Any]) -> None:
        """The 👎 form sent: store what went wrong with the vote."""
        await ack()
        raw = _field(body, "view", "private_metadata")
        try:
            about = json.loads(raw) if 0 < len(raw) <= 3000 else None
        except json.JSONDecodeError:
            about = None
        state = ("view", "state", "values", COMMENT_FIELD, COMMENT_FIELD, "value")
        comment, user = _field(body, *state), _field(body, "user", "id")
        channel, team, answer = (_field(about, k) for k in ("channel", "team", "answer"))
        rating = decode(about.get("value") if isinstance(about, dict) else None)
        if rating is None or not (user and channel and answer and comment):
            log.info("dropped a Slack form submission that isn't Parley's")
            return
        where = PolicyPlace(PLATFORM, team, channel, user)
        with self._intake.engine.track():
            answer_id = f"{PLATFORM}:{channel}:{answer}"
            await rate(self._intake.engine, rating, where, answer_id, comment=comment)


def _field(body: object, *path: str) -> str:
    """`body[path[0]][path[1]]...` when it is a string, else "" (a request is untrusted)."""
    for key in path:
        body = body.get(key) if isinstance(body, dict) else None
    return body if isinstance(body, str) else ""
