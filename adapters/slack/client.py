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


def _logger() -> logging.Logger:
    """The client's logger, its level set to what logging lets through now.

    slack_sdk formats its debug lines (request and response) whenever `logger.level` is
    DEBUG or lower, and an unset level is 0: without this, every call would build two
    lines nobody logs. A logger of its own, so other clients keep their own levels.
    """
    logger = logging.getLogger("slack_sdk.web.parley")
    logger.setLevel(logging.NOTSET)  # a client made before may have set it
    logger.setLevel(logger.getEffectiveLevel())
    return logger


def make_client(token: str, api_url: str) -> AsyncWebClient:
    """A client for `api_url` that honours Slack's Retry-After on 429 responses.

    `session` is left unset here: aiohttp sessions belong to a running loop, so the
    platform gives the client one when it starts.
    """
    return AsyncWebClient(
        token=token,
        base_url=api_url if api_url.endswith("/") else api_url + "/",
        timeout=TIMEOUT,
        logger=_logger(),
        retry_handlers=[
            AsyncConnectionErrorRetryHandler(),
            AsyncRateLimitErrorRetryHandler(max_retry_count=RATE_LIMIT_RETRIES),
        ],
    )
