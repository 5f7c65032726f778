"""The Web API client every Slack call goes through."""

from __future__ import annotations

import logging

from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

RATE_LIMIT_RETRIES = 5  # 429s waited out (Retry-After) before a call counts as failed
TIMEOUT = 30  # seconds for one Web API call


def make_client(token: str, api_url: str) -> AsyncWebClient:
    """A client for `api_url` that honours Slack's Retry-After on 429 responses.

    `session` is left unset here: aiohttp sessions belong to a running loop, so the
    platform gives the client one when it starts.
    """
    return AsyncWebClient(
        token=token,
        base_url=api_url if api_url.endswith("/") else api_url + "/",
        timeout=TIMEOUT,
        logger=logging.getLogger("slack_sdk.web"),
        retry_handlers=[
            AsyncConnectionErrorRetryHandler(),
            AsyncRateLimitErrorRetryHandler(max_retry_count=RATE_LIMIT_RETRIES),
        ],
    )
