"""Which attached files the bot reads, and how big a download each kind may be.

Adapters call `skip_reason` before downloading, so nothing unreadable is fetched, and
`download_cap` for the byte limit of the download itself. Images go through
`bot.media.images`; text files and documents (PDF, Office files) through `bot.documents`.
"""

from __future__ import annotations

import mimetypes
from enum import StrEnum

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
DOCUMENT_SUFFIXES = frozenset(
    ".pdf .docx .docm .pptx .pptm .xlsx .xlsm .htm .tab "
    # Formats people attach that Parley does not read: the reader says what to do instead.
    ".doc .xls .ppt .odt .ods .odp .rtf .epub".split()
)
DOCUMENT_TYPES = frozenset(
    {
        "application/pdf",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "application/msword",
        "application/vnd.ms-excel",
        "application/vnd.ms-powerpoint",
    }
)


class FileKind(StrEnum):
    IMAGE = "image"
    TEXT = "text"
    DOCUMENT = "document"
    OTHER = "other"

    @property
    def readable(self) -> bool:
        """Text files and documents: what `bot.documents` reads."""
        return self in (FileKind.TEXT, FileKind.DOCUMENT)


def classify(name: str, mime: str) -> FileKind:
    mime = (mime or mimetypes.guess_type(name)[0] or "").split(";")[0].strip().lower()
    if mime in IMAGE_TYPES:
        return FileKind.IMAGE
    suffix = ("." + name.rsplit(".", 1)[-1].lower()) if "." in name else ""
    if mime in DOCUMENT_TYPES or suffix in DOCUMENT_SUFFIXES:
        return FileKind.DOCUMENT
    if mime.startswith("text/") or mime in TEXT_TYPES or suffix in TEXT_SUFFIXES:
        return FileKind.TEXT
    return FileKind.OTHER


def skip_reason(name: str, mime: str, size: int | None, limits: Limits) -> str | None:
    """None when the file should be downloaded; otherwise a note telling the user why not."""
    kind = classify(name, mime)
    if kind is FileKind.OTHER:
        return (
            f"Skipped “{name}”: I can read images, documents (PDF, Word, PowerPoint, Excel) "
            f"and text files, not {mime or 'this type'}."
        )
    cap = download_cap(name, mime, limits)
    if size is not None and size > cap:
        return (
            f"Skipped “{name}”: it is {human_size(size)}, "
            f"over the {human_size(cap)} limit for {kind} files."
        )
    return None


def download_cap(name: str, mime: str, limits: Limits) -> int:
    """The most bytes to download for this file."""
    kind = classify(name, mime)
    if kind is FileKind.IMAGE:
        return limits.max_image_bytes
    if kind is FileKind.DOCUMENT:
        return limits.max_document_bytes
    return limits.max_text_file_bytes


def human_size(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB" if size >= 1024 * 1024 else f"{size // 1024} KB"
