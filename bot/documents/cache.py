"""Extracted documents in Redis, once per file content.

    <prefix>doc:<sha256>   hash   text, summary, images (JSON list of base64 PNGs), or
                                  refusal (the sentence a refused file gets)

keyed by the sha256 of the file's bytes, with the history TTL (`BOT_HISTORY_TTL`),
refreshed whenever a request reads it. So a thread that keeps talking about a 300-page
PDF reads it once, and a file sent again anywhere is not read again. Expanding history
reads only the `text` field of each document, never its images (those went into the
turn as image refs when it was stored). It uses the conversation store's Redis client.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from redis.exceptions import RedisError

from bot.documents.limits import Extraction
from bot.errors import DocumentError, StoreUnavailable
from bot.store.client import Client

log = logging.getLogger(__name__)


class DocumentCache:
    def __init__(self, client: Client, ttl: int, prefix: str = "parley:") -> None:
        self._redis = client
        self._ttl = ttl
        self._prefix = prefix

    def _key(self, sha256: str) -> str:
        return f"{self._prefix}doc:{sha256}"

    async def get(self, sha256: str) -> Extraction | None:
        """The cached reading of a file; raises the cached `DocumentError` for a refused one."""
        with _unavailable("get"):
            pipe = self._redis.pipeline(transaction=False)
            pipe.hgetall(self._key(sha256))
            pipe.expire(self._key(sha256), self._ttl)
            found, _ = await pipe.execute()
        if not found:
            return None
        if b"refusal" in found:
            raise DocumentError(found[b"refusal"].decode())
        return Extraction.from_dict(
            {
                "text": found[b"text"].decode(),
                "summary": found[b"summary"].decode(),
                "images": json.loads(found[b"images"]),
            }
        )

    async def put(self, sha256: str, extraction: Extraction) -> None:
        data = extraction.to_dict()
        await self._set(
            sha256,
            {
                "text": data["text"],
                "summary": data["summary"] or "",
                "images": json.dumps(data["images"]),
            },
        )

    async def put_refusal(self, sha256: str, refusal: DocumentError) -> None:
        await self._set(sha256, {"refusal": refusal.user_message})

    async def texts(self, hashes: Sequence[str]) -> dict[str, str]:
        """The text of each cached document in `hashes` (expired ones left out)."""
        wanted = list(dict.fromkeys(hashes))
        if not wanted:
            return {}
        with _unavailable("texts"):
            pipe = self._redis.pipeline(transaction=False)
            for sha256 in wanted:
                pipe.hget(self._key(sha256), "text")
                pipe.expire(self._key(sha256), self._ttl)
            found = await pipe.execute()
        return {
            sha256: text.decode()
            for sha256, text in zip(wanted, found[::2], strict=True)
            if text is not None
        }

    async def _set(self, sha256: str, fields: dict[str, str]) -> None:
        with _unavailable("put"):
            pipe = self._redis.pipeline(transaction=True)
            pipe.delete(self._key(sha256))
            for name, value in fields.items():
                pipe.hset(self._key(sha256), name, value)
            pipe.expire(self._key(sha256), self._ttl)
            await pipe.execute()


@contextmanager
def _unavailable(operation: str) -> Iterator[None]:
    try:
        yield
    except (RedisError, OSError) as exc:
        log.warning("Redis document %s failed: %s: %s", operation, type(exc).__name__, exc)
        raise StoreUnavailable(f"Redis document {operation} failed: {exc}") from exc
