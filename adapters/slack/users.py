"""Display names for user ids, from `users.info`, cached and shared by concurrent asks."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Iterable

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.types import User

log = logging.getLogger(__name__)


def display_name(user: User) -> str:
    profile = user.get("profile", {})
    return (
        profile.get("display_name")
        or profile.get("real_name")
        or user.get("real_name")
        or user.get("name")
        or user["id"]
    )


class UserDirectory:
    """Names change rarely, so an hour-old name is fine; a lookup failure costs nothing but
    a raw user id in the text."""

    def __init__(self, client: AsyncWebClient, *, ttl: float = 3600.0, size: int = 10_000):
        self._client = client
        self._ttl = ttl
        self._size = size
        self._cache: OrderedDict[str, tuple[float, str]] = OrderedDict()
        self._pending: dict[str, asyncio.Future[str]] = {}

    async def name(self, user_id: str) -> str:
        cached = self._cache.get(user_id)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        pending = self._pending.get(user_id)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._pending[user_id] = future
        try:
            name = await self._fetch(user_id)
            if name is None:
                name = user_id  # not cached: the next message asks again
            else:
                self._remember(user_id, name)
            future.set_result(name)
            return name
        finally:
            del self._pending[user_id]
            if not future.done():
                future.set_result(user_id)

    async def names(self, user_ids: Iterable[str]) -> dict[str, str]:
        ids = sorted(set(user_ids))
        found = await asyncio.gather(*(self.name(uid) for uid in ids))
        return dict(zip(ids, found, strict=True))

    async def _fetch(self, user_id: str) -> str | None:
        try:
            response = await self._client.users_info(user=user_id)
        except SlackApiError as exc:
            log.warning("users.info %s failed: %s", user_id, exc.response.get("error"))
            return None
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("users.info %s failed: %s", user_id, exc)
            return None
        user: User = response["user"]
        return display_name(user)

    def _remember(self, user_id: str, name: str) -> None:
        self._cache[user_id] = (time.monotonic() + self._ttl, name)
        self._cache.move_to_end(user_id)
        while len(self._cache) > self._size:
            self._cache.popitem(last=False)
