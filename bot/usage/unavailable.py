"""Redis failures of the usage, quota and feedback keys, mapped where they enter."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from redis.exceptions import RedisError

from bot.errors import StoreUnavailable

log = logging.getLogger(__name__)


@contextmanager
def unavailable(operation: str) -> Iterator[None]:
    """Turn a Redis failure in the block into `StoreUnavailable`, logged with `operation`."""
    try:
        yield
    except (RedisError, OSError) as exc:
        log.warning("Redis %s failed: %r", operation, exc)
        raise StoreUnavailable(f"Redis {operation} failed: {exc}") from exc
