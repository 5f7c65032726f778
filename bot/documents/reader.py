"""What the engine calls: attached documents into turn parts, and back into text.

`DocumentReader.read` turns a message's text files and documents into parts for the
user turn: a `DocumentRef` per document (the text itself goes to the cache, not into
history), an `ImageRef` per scanned page, and a note per document that was not read
whole or not read at all. Each file is read once per content: a cached reading (or
refusal) is used as it is.

`DocumentReader.expand` is the other half, when a request is built: the text of every
document in the history that fits the context budget. The store has already left out
the oldest turns that do not fit; if the newest turn alone is still over the budget,
its documents are cut from the end, and the answer's footer says where.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from bot.conversation import Attachment, DocumentRef, ImageRef, Part, Turn
from bot.documents.cache import DocumentCache
from bot.documents.limits import DocumentLimits, Extraction
from bot.documents.worker import DocumentWorker
from bot.errors import DocumentError, DocumentTooComplex
from bot.media.attachments import human_size
from bot.settings import Limits
from bot.store import ConversationStore
from bot.tokens import estimate_tokens

log = logging.getLogger(__name__)

MARKER = re.compile(r'^## (Page \d+|Slide \d+|Sheet "[^"\n]*")$', re.MULTILINE)
CUT_NOTE = "\n\n[The rest of this document was left out to fit the model's context.]"


@dataclass(slots=True)
class ReadDocuments:
    parts: list[Part] = field(default_factory=list)
    images: dict[str, bytes] = field(default_factory=dict)  # scanned pages, for the store
    texts: dict[str, str] = field(default_factory=dict)  # sha256 -> text, this message's
    notes: list[str] = field(default_factory=list)


class DocumentReader:
    def __init__(
        self, cache: DocumentCache, limits: DocumentLimits, worker: DocumentWorker | None = None
    ) -> None:
        self._cache = cache
        self._limits = limits
        self._worker = worker or DocumentWorker()

    @classmethod
    def for_store(cls, store: ConversationStore, limits: Limits) -> DocumentReader:
        """A reader caching on the conversation store's Redis, with its TTL and prefix."""
        cache = DocumentCache(store.redis, limits.history_ttl, store.prefix)
        return cls(cache, DocumentLimits.from_limits(limits))

    async def read(self, files: Sequence[Attachment]) -> ReadDocuments:
        """Parts, images and notes for `files`; a file that can't be read gets a note."""
        result = ReadDocuments()
        readings = await asyncio.gather(*(self._read_one(f) for f in files))
        for file, (sha256, reading) in zip(files, readings, strict=True):
            if isinstance(reading, DocumentError):
                result.notes.append(reading.user_message)
                continue
            result.parts.append(DocumentRef(sha256, file.name, estimate_tokens(reading.text)))
            result.texts[sha256] = reading.text
            for png in reading.images:
                page = hashlib.sha256(png).hexdigest()
                result.parts.append(ImageRef(page, "image/png"))
                result.images[page] = png
            if reading.summary:
                result.notes.append(f"“{file.name}”: {reading.summary}.")
        return result

    async def _read_one(self, file: Attachment) -> tuple[str, Extraction | DocumentError]:
        if len(file.data) > self._limits.max_bytes:
            size, cap = human_size(len(file.data)), human_size(self._limits.max_bytes)
            return "", DocumentTooComplex(file.name, f"it is {size}, over the {cap} limit")
        sha256 = await asyncio.to_thread(lambda: hashlib.sha256(file.data).hexdigest())
        try:
            cached = await self._cache.get(sha256)
        except DocumentError as refused:
            return sha256, refused
        if cached is not None:
            return sha256, cached
        started = time.monotonic()
        try:
            reading = await self._worker.extract(file.data, file.name, file.mime, self._limits)
        except DocumentTooComplex as exc:
            log.info("document %s refused (not cached): %s", sha256[:12], exc)
            return sha256, exc  # the time or memory limit: the load may be to blame
        except DocumentError as exc:
            log.info("document %s refused: %s", sha256[:12], exc)
            await self._cache.put_refusal(sha256, exc)
            return sha256, exc
        log.info(
            "document %s read: %d bytes -> %d chars, %d images in %.2fs",
            sha256[:12],
            len(file.data),
            len(reading.text),
            len(reading.images),
            time.monotonic() - started,
        )
        await self._cache.put(sha256, reading)
        return sha256, reading

    async def expand(
        self,
        turns: Sequence[Turn],
        budget_tokens: int,
        known: Mapping[str, str],
        notes: list[str],
    ) -> dict[str, str]:
        """sha256 -> text of the documents in `turns`, cut to the budget; notes any cut."""
        refs = [ref for turn in turns for ref in turn.documents]
        if not refs:
            return {}
        texts = {ref.sha256: known[ref.sha256] for ref in refs if ref.sha256 in known}
        texts.update(await self._cache.texts([r.sha256 for r in refs if r.sha256 not in texts]))
        over = sum(turn.tokens for turn in turns) - budget_tokens
        for ref in reversed(turns[-1].documents):
            if over <= 0 or ref.sha256 not in texts:
                continue
            keep = max(ref.tokens - over, 0)
            texts[ref.sha256], where = cut_text(texts[ref.sha256], keep)
            over -= ref.tokens - keep
            notes.append(f"“{ref.name}” was cut to fit the model's context: {where}.")
        return texts


def cut_text(text: str, keep_tokens: int) -> tuple[str, str]:
    """`text` cut to about `keep_tokens` tokens, and where it ends in reader's terms."""
    kept = text.encode()[: keep_tokens * 4].decode(errors="ignore")
    markers = MARKER.findall(kept)
    if markers:
        last = markers[-1]
        where = f"read up to {last[0].lower()}{last[1:]}"
    else:
        where = f"read its first {len(kept):,} of {len(text):,} characters"
    return kept + CUT_NOTE, where
