"""Which attached files the bot reads, and how each kind enters the conversation.

Adapters call `skip_reason` before downloading, so nothing unreadable is fetched; the
engine calls `text_part` for text files. Images go through `bot.images`.
"""

from __future__ import annotations

import mimetypes
from enum import StrEnum

from bot.conversation import Attachment, TextPart
from bot.settings import Limits

IMAGE_TYPES = frozenset(
    {"image/png", "image/jpeg", "image/webp", "image/gif", "image/bmp", "image/tiff"}
)
TEXT_SUFFIXES = frozenset(
    ".txt .md .markdown .rst .csv .tsv .json .yaml .yml .toml .ini .cfg .conf .log .xml "
    ".html .css .js .ts .tsx .jsx .py .rb .go .rs .java .kt .c .h .cpp .hpp .cs .php .sh "
    ".bash .sql .swift .scala .lua .pl .r .m .diff .patch .tex .env .dockerfile".split()
)
TEXT_TYPES = frozenset(
    {
        "application/json",
        "application/xml",
        "application/x-yaml",
        "application/yaml",
        "application/javascript",
        "application/x-sh",
        "application/sql",
    }
)


class FileKind(StrEnum):
    IMAGE = "image"
    TEXT = "text"
    OTHER = "other"


def classify(name: str, mime: str) -> FileKind:
    mime = (mime or mimetypes.guess_type(name)[0] or "").split(";")[0].strip().lower()
    if mime in IMAGE_TYPES:
        return FileKind.IMAGE
    suffix = ("." + name.rsplit(".", 1)[-1].lower()) if "." in name else ""
    if mime.startswith("text/") or mime in TEXT_TYPES or suffix in TEXT_SUFFIXES:
        return FileKind.TEXT
    return FileKind.OTHER


def skip_reason(name: str, mime: str, size: int | None, limits: Limits) -> str | None:
    """None when the file should be downloaded; otherwise a note telling the user why not."""
    kind = classify(name, mime)
    if kind is FileKind.OTHER:
        return f"Skipped “{name}”: I can read images and text files, not {mime or 'this type'}."
    cap = limits.max_image_bytes if kind is FileKind.IMAGE else limits.max_text_file_bytes
    if size is not None and size > cap:
        return (
            f"Skipped “{name}”: it is {human_size(size)}, "
            f"over the {human_size(cap)} limit for {kind} files."
        )
    return None


def text_part(file: Attachment, limits: Limits) -> TextPart:
    """A text file as a fenced block the model reads, cut at the size limit if need be."""
    raw = file.data[: limits.max_text_file_bytes]
    body = raw.decode("utf-8", errors="replace")
    note = "" if len(file.data) <= limits.max_text_file_bytes else "\n[file truncated]"
    return TextPart(f"Attached file “{file.name}”:\n```\n{body}\n```{note}")


def human_size(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB" if size >= 1024 * 1024 else f"{size // 1024} KB"
