from __future__ import annotations

import pytest

from bot.attachments import FileKind, classify, skip_reason, text_part
from bot.conversation import Attachment
from bot.settings import Limits


@pytest.mark.parametrize(
    ("name", "mime", "kind"),
    [
        ("cat.png", "image/png", FileKind.IMAGE),
        ("cat.gif", "", FileKind.IMAGE),
        ("notes.txt", "text/plain", FileKind.TEXT),
        ("main.py", "application/octet-stream", FileKind.TEXT),
        ("data.json", "application/json", FileKind.TEXT),
        ("report.pdf", "application/pdf", FileKind.OTHER),
        ("song.mp3", "audio/mpeg", FileKind.OTHER),
    ],
)
def test_classify(name: str, mime: str, kind: FileKind) -> None:
    assert classify(name, mime) is kind


def test_skip_reason_explains_unsupported_and_oversized_files() -> None:
    limits = Limits()
    assert skip_reason("a.png", "image/png", 1000, limits) is None
    assert "images and text files" in (skip_reason("a.pdf", "application/pdf", 10, limits) or "")
    too_big = skip_reason("a.png", "image/png", 11 * 1024 * 1024, limits) or ""
    assert "11.0 MB" in too_big and "10.0 MB" in too_big


def test_text_part_fences_and_truncates() -> None:
    limits = Limits(max_text_file_bytes=10)
    part = text_part(Attachment("a.txt", "text/plain", b"0123456789abcdef"), limits)
    assert "“a.txt”" in part.text and "0123456789" in part.text
    assert "abcdef" not in part.text and "[file truncated]" in part.text
