"""The one place that decides which Slack events the bot acts on, and acts once.

Before the ack (a bolt global middleware, no I/O): the bot's own messages, other bots'
messages, housekeeping subtypes and event types it has no use for are acknowledged and
dropped; after `stop_intake` new work is refused with 503 so Slack redelivers it to a
replica that is still running.

After the ack (`admit`): whether a message is addressed to the bot (a mention, a DM, or
a thread the bot is part of), then a claim in Redis on the message's identity, so a
redelivery, the `message` twin of an `app_mention`, or the same event on another replica
is answered exactly once.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.response import BoltResponse

from adapters.slack.events import PERSON_SUBTYPES, BotIdentity, Place
from adapters.slack.text import mentions
from adapters.slack.types import MessageEvent
from bot.engine import Engine
from bot.errors import ParleyError

log = logging.getLogger(__name__)

MESSAGE_EVENTS = frozenset({"app_mention", "message"})
HANDLED_EVENTS = MESSAGE_EVENTS | {"assistant_thread_started"}


def bot_identity(context: AsyncBoltContext) -> BotIdentity:
    return BotIdentity(context.bot_user_id or "", context.bot_id or "")


def is_person_writing(event: MessageEvent, bot: BotIdentity) -> bool:
    return (
        event.get("subtype") in PERSON_SUBTYPES
        and "bot_id" not in event
        and "bot_profile" not in event
        and bool(event.get("user"))
        and not bot.wrote(event)
    )


class Gate:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self.open = True

    async def middleware(
        self,
        body: dict[str, Any],
        context: AsyncBoltContext,
        next: Callable[[], Awaitable[None]],
    ) -> BoltResponse | None:
        if not self.open:
            return BoltResponse(status=503, body="shutting down")
        if body.get("type") == "event_callback":
            event: MessageEvent = body["event"]
            if event.get("type") not in HANDLED_EVENTS:
                return BoltResponse(status=200, body="")
            if event["type"] in MESSAGE_EVENTS and not is_person_writing(
                event, bot_identity(context)
            ):
                return BoltResponse(status=200, body="")
        await next()
        return None

    async def admit(self, event: MessageEvent, place: Place, bot: BotIdentity) -> bool:
        """Whether to answer this message: addressed to the bot and not answered before.

        Raises `ParleyError` when Redis can't be reached for a message that is clearly
        addressed to the bot, so the caller can tell the user.
        """
        if not await self._addressed(event, place, bot):
            return False
        if await self._engine.claim_event(place.claim_id):
            return True
        log.info("message %s already taken; not answering again", place.claim_id)
        return False

    async def claim(self, event_id: str) -> bool:
        return await self._engine.claim_event(event_id)

    async def _addressed(self, event: MessageEvent, place: Place, bot: BotIdentity) -> bool:
        if event["type"] == "app_mention" or place.is_dm:
            return True
        if mentions(event.get("text", ""), bot.user_id):
            return True  # the `message` twin of an app_mention; the claim keeps one
        if not place.in_thread:
            return False
        try:
            return await self._engine.has_history(place.key)
        except ParleyError as exc:
            log.warning("can't tell whether %s is ours: %s", place.key.id, exc)
            return False
