"""How much of a document Parley reads, and the record of what it actually read.

This module and `Extraction` are all the parent process needs; the parsers are only
imported in the worker process.

`DocumentLimits` are the bounds one extraction runs under (chars, pages, scanned-page
images, archive size, spreadsheet rows and cells, wall-clock time, memory). `Reading`
collects Markdown under those bounds and remembers every cut, so the user is told
exactly what the model saw ("read pages 1-40 of 120; 3 scanned pages sent as images").
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # settings load pydantic; the worker process does not need them
    from bot.settings import Limits


@dataclass(frozen=True, slots=True)
class DocumentLimits:
    max_bytes: int = 25 * 1024 * 1024  # the file itself
    max_chars: int = 200_000  # BOT_MAX_DOCUMENT_CHARS, per document
    max_pages: int = 100  # BOT_MAX_DOCUMENT_PAGES: PDF pages, slides or sheets read
    max_page_images: int = 8  # scanned pages rendered and sent as images, per document
    page_image_dpi: int = 110  # enough to read body text; ~200-400 KB a page as PNG
    max_unzipped_bytes: int = 200 * 1024 * 1024  # an Office file's members, inflated
    max_zip_members: int = 10_000
    max_rows: int = 5_000  # per sheet
    max_columns: int = 256  # per sheet; a sheet may claim all 16,384
    max_cells: int = 500_000  # per workbook
    timeout: float = 60.0  # wall-clock seconds for one extraction
    memory_bytes: int = 1024 * 1024 * 1024  # address space of the worker process

    @classmethod
    def from_limits(cls, limits: Limits) -> DocumentLimits:
        return cls(
            max_bytes=limits.max_document_bytes,
            max_chars=limits.max_document_chars,
            max_pages=limits.max_document_pages,
        )


@dataclass(slots=True)
class Reading:
    """Markdown being written under a character cap, with what was left out.

    `unit` names what `total` counts ("page", "slide", "sheet"); `read` is how many of
    them made it into the text. Extractors call `add` and stop when it returns False.
    """

    max_chars: int
    unit: str = "page"
    total: int = 0
    read: int = 0
    chunks: list[str] = field(default_factory=list)
    images: list[bytes] = field(default_factory=list)
    image_pages: list[int] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    size: int = 0
    cut: bool = False

    def add(self, markdown: str) -> bool:
        """Append `markdown`; False once the cap is reached (the text is cut there)."""
        if self.cut:
            return False
        room = self.max_chars - self.size
        if len(markdown) > room:
            self.chunks.append(markdown[:room])
            self.size = self.max_chars
            self.cut = True
            return False
        self.chunks.append(markdown)
        self.size += len(markdown)
        return True

    @property
    def text(self) -> str:
        return "".join(self.chunks).strip()

    def summary(self) -> str | None:
        """What was read, when it was not everything; None for a document read whole."""
        said: list[str] = []
        if self.total and (self.read < self.total or self.cut):
            last = self.read if self.read else 1
            span = f"{self.unit}s 1-{last}" if last > 1 else f"{self.unit} 1"
            said.append(f"read {span} of {self.total}")
            if self.cut:
                said[-1] += f" (cut at {self.max_chars:,} characters)"
        elif self.cut:
            said.append(f"read the first {self.max_chars:,} characters")
        if self.image_pages:
            count = len(self.image_pages)
            plural = "s" if count > 1 else ""
            said.append(f"{count} scanned page{plural} sent as image{plural}")
        said.extend(self.notes)
        return "; ".join(said) if said else None


@dataclass(frozen=True, slots=True)
class Extraction:
    """What was read from one document: Markdown, scanned pages as PNG, what was left out."""

    text: str
    images: tuple[bytes, ...] = ()
    summary: str | None = None  # "read pages 1-40 of 120; ..." when not read whole

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields; the images as base64."""
        return {
            "text": self.text,
            "images": [base64.b64encode(i).decode("ascii") for i in self.images],
            "summary": self.summary,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Extraction:
        return cls(
            text=str(data["text"]),
            images=tuple(base64.b64decode(i) for i in data["images"]),
            summary=data["summary"] or None,
        )
