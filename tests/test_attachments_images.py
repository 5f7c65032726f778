from __future__ import annotations

import io

import pytest
from PIL import Image

from bot.attachments import FileKind, classify, download_cap, skip_reason
from bot.conversation import Attachment
from bot.errors import ImageTooLarge, UnsupportedImage
from bot.images import normalize_image
from bot.settings import Limits


def _image_bytes(fmt: str, size: tuple[int, int] = (8, 6), mode: str = "RGB") -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, color=0).save(out, format=fmt)
    return out.getvalue()


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


@pytest.mark.parametrize(
    ("fmt", "mime"), [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("WEBP", "image/webp")]
)
async def test_supported_formats_pass_through_unchanged(fmt: str, mime: str) -> None:
    data = _image_bytes(fmt)
    image = await normalize_image(Attachment(f"x.{fmt.lower()}", mime, data), Limits())
    assert image.data == data and image.mime == mime


@pytest.mark.parametrize("fmt", ["GIF", "BMP", "TIFF"])
async def test_other_formats_become_png(fmt: str) -> None:
    data = _image_bytes(fmt, mode="RGB" if fmt != "GIF" else "P")
    image = await normalize_image(Attachment(f"x.{fmt.lower()}", "image/x", data), Limits())
    assert image.mime == "image/png" and image.name == "x.png"
    with Image.open(io.BytesIO(image.data)) as decoded:
        assert decoded.format == "PNG" and decoded.size == (8, 6)


async def test_oversized_image_is_refused_with_its_name() -> None:
    data = _image_bytes("PNG")
    with pytest.raises(ImageTooLarge) as caught:
        await normalize_image(Attachment("big.png", "image/png", data), Limits(max_image_bytes=10))
    assert "“big.png”" in caught.value.user_message


async def test_decompression_bomb_is_refused_before_decoding() -> None:
    bomb = _image_bytes("PNG", size=(20_000, 20_000), mode="1")  # 400 MP in a few KB
    assert len(bomb) < 200_000
    with pytest.raises(UnsupportedImage) as caught:
        await normalize_image(Attachment("bomb.png", "image/png", bomb), Limits())
    assert "too many" in caught.value.user_message


async def test_garbage_is_not_an_image() -> None:
    with pytest.raises(UnsupportedImage) as caught:
        await normalize_image(Attachment("x.png", "image/png", b"not an image"), Limits())
    assert "couldn't read" in caught.value.user_message
