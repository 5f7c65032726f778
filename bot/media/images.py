"""Turning an attached image into bytes the API accepts, at the size the model uses.

The vision models look at an image at most 2048 pixels on its long side and 768 on its
short side (high detail); anything bigger is scaled down by the API anyway. So an image
within those bounds in JPEG, PNG or WebP passes through unchanged, once fully decoded
(a truncated file can pass Pillow's `verify()`, so only a complete decode proves it is
readable). Any other image is scaled down to the bounds and re-encoded: PNG when it has
transparency or compresses well (screenshots, diagrams), JPEG otherwise (photos).

Memory is bounded before any pixel is decoded: the header's size is checked against
`Limits.max_image_pixels` (the decompression-bomb guard), then the decode waits for its
pixels in the process-wide `PixelBudget`. Decoding itself is made cheap where the format
allows: a JPEG is decoded at 1/2, 1/4 or 1/8 scale by the decoder (`Image.draft`), and a
big image is box-reduced a band of rows at a time before the final resampling, so the only
full-size buffer is the decoded image itself: at most 4 bytes per budget pixel (images
within twice the model's bounds take a copy or two more, of 25 MB at most).
All pixel work runs in worker threads: it must never stall the event loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from PIL import ExifTags, Image, UnidentifiedImageError

from bot.conversation import Attachment
from bot.errors import ImageTooLarge, TooManyPixels, UnsupportedImage
from bot.media.pixel_budget import PixelBudget
from bot.settings import Limits

# Our own pixel check below replaces Pillow's global one, whose warning tier would
# otherwise fire from inside `Image.open` before we can answer the user.
Image.MAX_IMAGE_PIXELS = None

# Only the formats we promise. Pillow opens many more, some through other programs
# (EPS runs Ghostscript), and these are bytes anyone can send.
FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF")
JPEG_FORMATS = ("JPEG", "MPO")  # MPO: a camera's JPEG with more pictures appended
PASS_THROUGH = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}
LONG_SIDE = 2048  # what the model uses of an image, at most: high detail
SHORT_SIDE = 768
JPEG_QUALITY = 85
# PNG keeps text and lines sharp; an image whose PNG is this many times its JPEG is a
# photo, for which JPEG loses nothing the model would notice.
PHOTO_RATIO = 2
BAND_ROWS = 64  # output rows reduced at a time
DECODE_ERRORS = (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError)

# EXIF orientation -> the transpose that shows the image upright (re-encoding drops EXIF).
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


@dataclass(frozen=True, slots=True)
class NormalizedImage:
    name: str
    mime: str
    data: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass(slots=True)
class ImageBatch:
    """A message's images: those ready for the API, and the ones that couldn't be read."""

    images: list[NormalizedImage] = field(default_factory=list)
    unreadable: list[UnsupportedImage] = field(default_factory=list)


async def normalize_images(
    files: Sequence[Attachment], limits: Limits, budget: PixelBudget
) -> ImageBatch:
    """A message's images, normalized concurrently within the pixel budget.

    An image that can't be read (not an image, damaged, cut off) lands in `unreadable`,
    so the rest of the message can still be answered; any other refusal (too many bytes
    or pixels) is raised.
    """
    results = await asyncio.gather(
        *(normalize_image(f, limits, budget) for f in files), return_exceptions=True
    )
    batch = ImageBatch()
    for result in results:
        if isinstance(result, UnsupportedImage):
            batch.unreadable.append(result)
        elif isinstance(result, BaseException):
            raise result
        else:
            batch.images.append(result)
    return batch


async def normalize_image(
    file: Attachment, limits: Limits, budget: PixelBudget
) -> NormalizedImage:
    """The image ready for the API, or a `UserInputError` that says what is wrong."""
    if len(file.data) > limits.max_image_bytes:
        raise ImageTooLarge(file.name, limits.max_image_bytes)
    (width, height), pixels = await asyncio.to_thread(_probe, file, limits)
    if not budget.fits(pixels):
        raise TooManyPixels(file.name, width, height, budget.capacity)
    return await budget.run(pixels, lambda: _normalize(file, limits))


def fit(width: int, height: int) -> tuple[int, int]:
    """The largest size within the model's bounds with the same aspect ratio, never bigger."""
    long, short = max(width, height), min(width, height)
    scale = min(1.0, LONG_SIDE / long, SHORT_SIDE / short)
    if scale == 1.0:
        return width, height
    return max(1, round(width * scale)), max(1, round(height * scale))


@contextmanager
def _opened(file: Attachment, limits: Limits) -> Iterator[tuple[Image.Image, tuple[int, int]]]:
    """The image, not decoded yet but set to decode at the smallest scale that still
    covers its target size, and its size as the header gives it."""
    try:
        with Image.open(io.BytesIO(file.data), formats=FORMATS) as image:
            width, height = image.size
            if width * height > limits.max_image_pixels:
                raise TooManyPixels(file.name, width, height, limits.max_image_pixels)
            target = fit(width, height)
            if image.format in JPEG_FORMATS and target != image.size:
                image.draft(None, target)
            yield image, (width, height)
    except DECODE_ERRORS as exc:
        raise UnsupportedImage(file.name, "not an image I can decode") from exc


def _probe(file: Attachment, limits: Limits) -> tuple[tuple[int, int], int]:
    """The image's size, and how many pixels decoding it will hold, from its header."""
    with _opened(file, limits) as (image, size):
        return size, image.width * image.height


def _normalize(file: Attachment, limits: Limits) -> NormalizedImage:
    with _opened(file, limits) as (image, size):
        target = fit(*size)
        fmt = image.format or ""
        try:
            image.load()
        except DECODE_ERRORS as exc:
            raise UnsupportedImage(file.name, "the file is damaged or incomplete") from exc
        if fmt in PASS_THROUGH and size == target:
            return NormalizedImage(file.name, PASS_THROUGH[fmt], file.data)
        orientation = image.getexif().get(ExifTags.Base.Orientation, 1)
        small = _downscale(image, target)
        if orientation in _UPRIGHT:
            small = small.transpose(_UPRIGHT[orientation])
        normalized = _encode(small, file.name, photo=fmt in JPEG_FORMATS)
    if len(normalized.data) > limits.max_image_bytes:
        raise ImageTooLarge(file.name, limits.max_image_bytes)
    return normalized


def _downscale(image: Image.Image, target: tuple[int, int]) -> Image.Image:
    """`image` at `target` size, in a mode JPEG or PNG can hold; `image` is closed."""
    mode = _working_mode(image)
    # Box-reduce to about twice the target, then resample: as sharp as resampling the
    # whole image, for a fraction of the work. Any image twice the target or more is
    # reduced, so only small ones (within 4096x1536) are converted or resampled whole.
    ratio = min(image.width // target[0], image.height // target[1])
    factor = max(2, ratio // 2) if ratio >= 2 else 1
    if factor > 1:
        frame = _reduce(image, factor, mode)
    elif image.mode != mode:
        frame = image.convert(mode)
    else:
        frame = image
    if frame.size != target:
        frame = frame.resize(target, Image.Resampling.LANCZOS)
    elif frame is image:
        frame = image.copy()  # already small: kept past the original's closing
    image.close()  # the full-size decode, freed before encoding
    return frame


def _reduce(image: Image.Image, factor: int, mode: str) -> Image.Image:
    """`image` box-reduced by `factor` into `mode`, a band of rows at a time.

    Reducing the whole image at once would first copy all of it: to convert its mode,
    or, with transparency, to premultiply alpha. A band's copies are a few rows.
    """
    width, height = image.size
    reduced = Image.new(mode, (-(-width // factor), -(-height // factor)))
    rows = factor * BAND_ROWS
    for top in range(0, height, rows):
        band = image.crop((0, top, width, min(top + rows, height)))
        if band.mode != mode:
            band = band.convert(mode)
        reduced.paste(band.reduce(factor), (0, top // factor))
    return reduced


def _working_mode(image: Image.Image) -> str:
    if image.mode in ("L", "LA", "RGB", "RGBA"):
        return image.mode
    if image.mode == "1":
        return "L"
    return "RGBA" if _has_alpha(image) else "RGB"


def _encode(image: Image.Image, name: str, *, photo: bool) -> NormalizedImage:
    stem = name.rsplit(".", 1)[0] if "." in name else name
    if _has_alpha(image):
        return NormalizedImage(f"{stem}.png", "image/png", _save(image, "PNG"))
    jpeg = _save(image, "JPEG")
    if not photo:
        png = _save(image, "PNG")
        if len(png) <= PHOTO_RATIO * len(jpeg):
            return NormalizedImage(f"{stem}.png", "image/png", png)
    return NormalizedImage(f"{stem}.jpg", "image/jpeg", jpeg)


def _save(image: Image.Image, fmt: str) -> bytes:
    out = io.BytesIO()
    if fmt == "JPEG":
        image.save(out, format="JPEG", quality=JPEG_QUALITY, optimize=True)
    else:
        image.save(out, format="PNG")
    return out.getvalue()


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
