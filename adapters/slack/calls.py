"""One way to call the Web API from a sink: failures become values, never exceptions.

A reply must survive a failed edit or status update, so each call reports Slack's error
code (or a transport failure) and the caller decides; every failure is logged once here.
Rate limits never show up as failures: the client's retry handler waits out 429s.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_slack_response import AsyncSlackResponse

log = logging.getLogger(__name__)

TRANSPORT_ERROR = "transport_error"


@dataclass(frozen=True, slots=True)
class Outcome:
    response: AsyncSlackResponse | None
    error: str | None = None  # Slack's error code, or TRANSPORT_ERROR

    @property
    def ok(self) -> bool:
        return self.error is None

    def get(self, field: str) -> Any:
        return None if self.response is None else self.response.get(field)


async def slack_call(
    method: Callable[..., Awaitable[AsyncSlackResponse]],
    /,
    *,
    ok_errors: Collection[str] = (),
    quiet: bool = False,
    **kwargs: Any,
) -> Outcome:
    """Call `method`; `ok_errors` count as success; `quiet` for optional features, whose
    refusal is expected on some workspaces and logged at INFO."""
    name = getattr(method, "__name__", "slack call")
    try:
        return Outcome(await method(**kwargs))
    except SlackApiError as exc:
        code = str(exc.response.get("error") or "unknown_error")
        if code in ok_errors:
            return Outcome(exc.response)
        level = logging.INFO if quiet else logging.WARNING
        log.log(level, "Slack %s failed: %s", name, code)
        return Outcome(None, code)
    except (SlackClientError, aiohttp.ClientError, TimeoutError) as exc:
        log.warning("Slack %s failed: %s", name, exc)
        return Outcome(None, TRANSPORT_ERROR)
