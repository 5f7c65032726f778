"""The ack-time checks: what the Events API endpoint refuses or drops before answering.

A signed body bolt can't read (a JSON list, non-JSON, an `event` that isn't an object)
is refused with 400 and one log line by `malformed`, before bolt sees it: bolt's own
authorization step would otherwise fail on it with a 500 and a traceback.

Slack wants its answer within 3 s, and bolt acknowledges an event before the listener
runs; `AckGate.middleware` is the only thing that runs before the ack. It does no I/O:
after shutdown began it answers 503, so Slack redelivers the event to a replica that is
still running; an event of a type Parley has no listener for, or one whose `event`
isn't an object, is acknowledged and dropped (logged in one line), so bolt never trips
over it.

A mention in a channel comes twice: as `app_mention` (Slack sends it for every message
that mentions the bot where the bot is a member) and, since Parley also subscribes to
`message.channels`/`message.groups`, as that message's `message` event. The `app_mention`
is the one answered; its twin is acknowledged and dropped here, which spares the whole
per-event path (bolt's dispatch, the intake, its claim: about a millisecond of CPU and
one Redis request per mention). Only that exact case is dropped: a `message` in a
channel or private channel whose text mentions the bot. DMs (Slack sends no
`app_mention` there), group DMs, and thread replies without a mention go on as before,
and the intake's claim still answers each mention once across redeliveries and replicas.
Everything else — whose message it is, whether the bot is addressed, the claim —
is the intake's (`bot.intake.steps`), after the ack.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.response import BoltResponse

from adapters.slack.text import mentions
from bot.intake import Intake

log = logging.getLogger(__name__)

MESSAGE_EVENTS = frozenset({"app_mention", "message"})
HANDLED_EVENTS = MESSAGE_EVENTS | {"assistant_thread_started"}
# Where every mention of the bot also arrives as `app_mention`: public and private channels.
MENTIONED_IN = frozenset({"channel", "group"})


def mention_twin(event: dict[str, Any], bot_user_id: str | None) -> bool:
    """Whether `event` is the `message` copy of a channel mention Slack also sends as
    `app_mention` (see the module)."""
    text = event.get("text")
    return (
        bool(bot_user_id)
        and event.get("type") == "message"
        and event.get("channel_type") in MENTIONED_IN
        and isinstance(text, str)
        and mentions(text, str(bot_user_id))
    )


def malformed(raw: str, content_type: str) -> str | None:
    """What keeps a JSON request body from being a Slack request, or None.

    Form bodies (slash commands) are left to bolt, which reads them safely.
    """
    if content_type != "application/json":
        return None
    try:
        body = json.loads(raw)
    except ValueError:
        return "the body is not JSON"
    if not isinstance(body, dict):
        return f"the body is a JSON {type(body).__name__}, not an object"
    if body.get("type") == "event_callback" and not isinstance(body.get("event"), dict):
        return "the event callback has no event object"
    return None


class AckGate:
    def __init__(self, intake: Intake) -> None:
        self._intake = intake

    async def middleware(
        self,
        body: dict[str, Any],
        context: AsyncBoltContext,
        next: Callable[[], Awaitable[None]],
    ) -> BoltResponse | None:
        if not self._intake.open:
            return BoltResponse(status=503, body="shutting down")
        if body.get("type") == "event_callback":
            event = body["event"]
            if event.get("type") not in HANDLED_EVENTS:
                return BoltResponse(status=200, body="")
            if mention_twin(event, context.bot_user_id):
                log.debug("Slack event %s: a mention's message twin", body.get("event_id"))
                return BoltResponse(status=200, body="")
        await next()
        return None
