from __future__ import annotations

import pytest

from bot.media.attachments import FileKind, classify, download_cap, skip_reason
from bot.settings import Limits


@pytest.mark.parametrize(
    ("name", "mime", "kind"),
    [
        ("cat.png", "image/png", FileKind.IMAGE),
        ("cat.gif", "", FileKind.IMAGE),
        ("notes.txt", "text/plain", FileKind.TEXT),
        ("main.py", "application/octet-stream", FileKind.TEXT),
        ("data.json", "application/json", FileKind.TEXT),
        ("report.pdf", "application/pdf", FileKind.DOCUMENT),
        ("deck.pptx", "", FileKind.DOCUMENT),
        ("old.doc", "application/msword", FileKind.DOCUMENT),
        ("song.mp3", "audio/mpeg", FileKind.OTHER),
    ],
)
def test_classify(name: str, mime: str, kind: FileKind) -> None:
    assert classify(name, mime) is kind


def test_skip_reason_explains_unsupported_and_oversized_files() -> None:
    limits = Limits()
    assert skip_reason("a.png", "image/png", 1000, limits) is None
    assert skip_reason("a.pdf", "application/pdf", 10, limits) is None
    assert "documents (PDF, Word" in (skip_reason("a.mp3", "audio/mpeg", 10, limits) or "")
    too_big = skip_reason("a.png", "image/png", 11 * 1024 * 1024, limits) or ""
    assert "11.0 MB" in too_big and "10.0 MB" in too_big


def test_download_cap_fits_the_kind() -> None:
    limits = Limits()
    assert download_cap("a.png", "image/png", limits) == limits.max_image_bytes
    assert download_cap("a.pdf", "", limits) == limits.max_document_bytes
    assert download_cap("a.txt", "text/plain", limits) == limits.max_text_file_bytes
