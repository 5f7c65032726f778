"""The ack-time checks: what the Events API endpoint refuses or drops before answering.

A signed body bolt can't read (a JSON list, non-JSON, an `event` that isn't an object)
is refused with 400 and one log line (`json_body` raises `Malformed`), before bolt sees
it: bolt's own authorization step would otherwise fail on it with a 500 and a traceback.

Slack wants its answer within 3 s, and bolt acknowledges an event before the listener
runs; `AckGate.middleware` is the only thing that runs before the ack. It does no I/O:
after shutdown began it answers 503, so Slack redelivers the event to a replica that is
still running; an event of a type Parley has no listener for, or one whose `event`
isn't an object, is acknowledged and dropped, so bolt never trips over it.

A mention in a channel comes twice: as `app_mention` (Slack sends it for every message
that mentions the bot where the bot is a member) and, since Parley also subscribes to
`message.channels`/`message.groups`, as that message's `message` event. The `app_mention`
is the one answered; its twin (`mention_twin`) is acknowledged and dropped
(`acknowledge_twin`, one DEBUG line). Only that exact case is dropped: a `message` in a
channel or private channel whose text mentions the bot. DMs (Slack sends no
`app_mention` there), group DMs, and thread replies without a mention go on as before,
and the intake's claim still answers each mention once across redeliveries and replicas.

In HTTP mode the platform drops a signed twin before bolt (`SlackPlatform._on_request`),
which spares bolt's whole dispatch (parsing the body again, verifying the signature,
authorization, a Web API client per request, the middleware chain) as well as the
intake and its claim: the twin is half of all requests in a burst of mentions. That
takes the bot's user id, known once `auth.test` has answered; a twin arriving before,
and every twin in Socket Mode, is dropped by the middleware instead. A twin dropped
before bolt is acknowledged even after shutdown began: nobody would answer it anyway.
Everything else — whose message it is, whether the bot is addressed, the claim —
is the intake's (`bot.intake.steps`), after the ack.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping
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


class Malformed(ValueError):
    """A JSON request body that can't be a Slack request; the message says why."""


def json_body(raw: str, content_type: str) -> dict[str, Any] | None:
    """A JSON request's body, parsed once for every check made before bolt.

    None for a form body (slash commands, interactivity), which bolt reads safely.
    Raises `Malformed` for a JSON body bolt would fail on.
    """
    if content_type != "application/json":
        return None
    try:
        body = json.loads(raw)
    except ValueError:
        raise Malformed("the body is not JSON") from None
    if not isinstance(body, dict):
        raise Malformed(f"the body is a JSON {type(body).__name__}, not an object")
    if body.get("type") == "event_callback" and not isinstance(body.get("event"), dict):
        raise Malformed("the event callback has no event object")
    return body


def mention_twin(body: Mapping[str, Any], bot_user_id: str | None) -> bool:
    """Whether `body` is the event callback of a channel mention's `message` copy, which
    Slack also sends as `app_mention` (see the module)."""
    event = body.get("event")
    if body.get("type") != "event_callback" or not isinstance(event, dict):
        return False
    text = event.get("text")
    return (
        bool(bot_user_id)
        and event.get("type") == "message"
        and event.get("channel_type") in MENTIONED_IN
        and isinstance(text, str)
        and mentions(text, str(bot_user_id))
    )


def acknowledge_twin(body: Mapping[str, Any]) -> BoltResponse:
    """The answer to a mention's twin, wherever it is dropped: acknowledged, not handled."""
    log.debug("Slack event %s: a mention's message twin", body.get("event_id"))
    return BoltResponse(status=200, body="")


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
        if body.get("type") == "event_callback" and body["event"].get("type") not in HANDLED_EVENTS:
            return BoltResponse(status=200, body="")
        if mention_twin(body, context.bot_user_id):
            return acknowledge_twin(body)
        await next()
        return None
