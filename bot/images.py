"""Turning an attached image into bytes the API accepts.

The API takes JPEG, PNG and WebP up to 10 MB. Those pass through unchanged once Pillow
has checked them; GIF (first frame), BMP and TIFF become PNG. Dimensions are checked
from the header before any pixel is decoded, which is the decompression-bomb guard.
All of it runs in a worker thread: decoding must never stall the event loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from bot.conversation import Attachment
from bot.errors import ImageTooLarge, UnsupportedImage
from bot.settings import Limits

# Our own pixel check below replaces Pillow's global one, whose warning tier would
# otherwise fire from inside `Image.open` before we can answer the user.
Image.MAX_IMAGE_PIXELS = None

PASS_THROUGH = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}


@dataclass(frozen=True, slots=True)
class NormalizedImage:
    name: str
    mime: str
    data: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


async def normalize_image(file: Attachment, limits: Limits) -> NormalizedImage:
    """The image ready for the API, or a `UserInputError` that says what is wrong."""
    return await asyncio.to_thread(_normalize, file, limits)


def _normalize(file: Attachment, limits: Limits) -> NormalizedImage:
    if len(file.data) > limits.max_image_bytes:
        raise ImageTooLarge(file.name, limits.max_image_bytes)
    try:
        with Image.open(io.BytesIO(file.data)) as image:
            width, height = image.size
            if width * height > limits.max_image_pixels:
                raise UnsupportedImage(file.name, f"{width}x{height} pixels is too many")
            fmt = image.format or ""
            if fmt in PASS_THROUGH:
                image.verify()
                return NormalizedImage(file.name, PASS_THROUGH[fmt], file.data)
            image.seek(0)
            frame = image.convert("RGBA" if _has_alpha(image) else "RGB")
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise UnsupportedImage(file.name, "not an image I can decode") from exc
    out = io.BytesIO()
    frame.save(out, format="PNG", optimize=False)
    data = out.getvalue()
    if len(data) > limits.max_image_bytes:
        raise ImageTooLarge(file.name, limits.max_image_bytes)
    return NormalizedImage(_png_name(file.name), "image/png", data)


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info


def _png_name(name: str) -> str:
    stem = name.rsplit(".", 1)[0] if "." in name else name
    return f"{stem}.png"
