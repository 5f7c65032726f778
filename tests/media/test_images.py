"""Images: decoded in full, scaled to what the model uses, within a process-wide pixel budget."""

from __future__ import annotations

import asyncio
import io
import random
import threading
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import ExifTags, Image, ImageFile

from bot.conversation import Attachment
from bot.errors import ImageTooLarge, TooManyPixels, UnsupportedImage, UserInputError
from bot.media.images import LONG_SIDE, SHORT_SIDE, fit, normalize_image, normalize_images
from bot.media.pixel_budget import PixelBudget
from bot.settings import Limits

WAIT = 10.0  # generous: the machine is shared


def _image_bytes(
    fmt: str, size: tuple[int, int] = (8, 6), mode: str = "RGB", **save: object
) -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, color=0).save(out, format=fmt, **save)
    return out.getvalue()


def _noise(size: tuple[int, int], fmt: str, **save: object) -> bytes:
    """A photo-like image: every pixel different, so PNG compresses it badly."""
    rng = random.Random(7)
    image = Image.frombytes("RGB", size, rng.randbytes(size[0] * size[1] * 3))
    out = io.BytesIO()
    image.save(out, format=fmt, **save)
    return out.getvalue()


def _decoded(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


async def _normalize(name: str, data: bytes, budget: int = 40_000_000) -> Image.Image:
    image = await normalize_image(Attachment(name, "image/x", data), Limits(), PixelBudget(budget))
    return _decoded(image.data)


async def _wait_for(condition: Callable[[], object], what: str) -> None:
    try:
        async with asyncio.timeout(WAIT):
            while not condition():  # noqa: ASYNC110 - changed by worker threads
                await asyncio.sleep(0.005)
    except TimeoutError:
        pytest.fail(f"still waiting for: {what}")


@pytest.mark.parametrize(
    ("fmt", "mime"), [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("WEBP", "image/webp")]
)
async def test_supported_formats_within_bounds_pass_through_unchanged(fmt: str, mime: str) -> None:
    data = _image_bytes(fmt, size=(SHORT_SIDE, LONG_SIDE))
    image = await normalize_image(Attachment("x", mime, data), Limits(), PixelBudget(10**7))
    assert image.data == data and image.mime == mime


@pytest.mark.parametrize("fmt", ["GIF", "BMP", "TIFF"])
async def test_other_formats_become_png(fmt: str) -> None:
    data = _image_bytes(fmt, mode="RGB" if fmt != "GIF" else "P")
    image = await normalize_image(
        Attachment(f"x.{fmt.lower()}", "image/x", data), Limits(), PixelBudget(10**7)
    )
    assert image.mime == "image/png" and image.name == "x.png"
    decoded = _decoded(image.data)
    assert decoded.format == "PNG" and decoded.size == (8, 6)


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        ((6300, 6300), (768, 768)),
        ((4000, 3000), (1024, 768)),
        ((8000, 1000), (2048, 256)),
        ((1000, 8000), (256, 2048)),
        ((2048, 768), (2048, 768)),
        ((10, 10), (10, 10)),
    ],
)
def test_fit_keeps_the_aspect_within_the_models_bounds(
    size: tuple[int, int], expected: tuple[int, int]
) -> None:
    assert fit(*size) == expected


async def test_a_big_transparent_tiff_is_scaled_down_and_stays_transparent() -> None:
    image = Image.new("RGBA", (3000, 2000), (0, 0, 0, 0))
    image.paste((200, 30, 30, 255), (1000, 500, 2000, 1500))
    out = io.BytesIO()
    image.save(out, format="TIFF", compression="tiff_adobe_deflate")
    decoded = await _normalize("scan.tiff", out.getvalue())
    assert decoded.format == "PNG" and decoded.mode == "RGBA"
    assert decoded.size == (1152, 768)
    assert decoded.getpixel((0, 0)) == (0, 0, 0, 0)
    assert decoded.getpixel((576, 384)) == (200, 30, 30, 255)


async def test_a_big_photo_becomes_a_jpeg_and_line_art_a_png() -> None:
    photo = await _normalize("photo.png", _noise((1600, 1200), "PNG"))
    assert photo.format == "JPEG" and photo.size == (1024, 768)
    drawing = Image.new("RGB", (3000, 1500), "white")
    drawing.paste("black", (100, 100, 2900, 200))
    out = io.BytesIO()
    drawing.save(out, format="PNG")
    line_art = await _normalize("chart.png", out.getvalue())
    assert line_art.format == "PNG" and line_art.size == (1536, 768)


async def test_a_jpeg_is_decoded_at_reduced_scale_within_a_small_budget() -> None:
    # 4096x3072 is 12.6 megapixels; the decoder's 1/4 scale gives the 1024x768 needed.
    data = _noise((4096, 3072), "JPEG")
    decoded = await _normalize("photo.jpg", data, budget=1_000_000)
    assert decoded.format == "JPEG" and decoded.size == (1024, 768)
    with pytest.raises(TooManyPixels):  # the same pixels as PNG have no such shortcut
        await _normalize("photo.png", _image_bytes("PNG", (4096, 3072)), budget=1_000_000)


async def test_exif_orientation_is_applied_when_re_encoding() -> None:
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6  # stored sideways: shown rotated 90° clockwise
    decoded = await _normalize("phone.jpg", _noise((3000, 1000), "JPEG", exif=exif))
    assert decoded.size == (683, 2048)


async def test_a_camera_mpo_becomes_a_plain_jpeg() -> None:
    photo = Image.open(io.BytesIO(_noise((1600, 1200), "JPEG")))
    out = io.BytesIO()
    photo.save(out, format="MPO", save_all=True, append_images=[photo])
    decoded = await _normalize("IMG_0001.jpg", out.getvalue())
    assert decoded.format == "JPEG" and decoded.size == (1024, 768)


async def test_formats_outside_the_promised_ones_are_not_opened() -> None:
    out = io.BytesIO()
    Image.new("RGB", (8, 8)).save(out, format="EPS")  # Pillow would hand it to Ghostscript
    with pytest.raises(UnsupportedImage) as caught:
        await _normalize("x.png", out.getvalue())
    assert "not an image I can decode" in caught.value.user_message


async def test_a_truncated_jpeg_passes_verify_but_is_refused() -> None:
    whole = _noise((64, 64), "JPEG")
    cut = whole[: len(whole) // 2]
    Image.open(io.BytesIO(cut)).verify()  # what the old check relied on: it passes
    with pytest.raises(UnsupportedImage) as caught:
        await _normalize("cut.jpg", cut)
    assert caught.value.user_message.startswith(
        "I couldn't read the image “cut.jpg” (the file is damaged or incomplete)"
    )


async def test_oversized_image_is_refused_with_its_name() -> None:
    data = _image_bytes("PNG")
    with pytest.raises(ImageTooLarge) as caught:
        await normalize_image(
            Attachment("big.png", "image/png", data), Limits(max_image_bytes=10), PixelBudget(100)
        )
    assert "“big.png”" in caught.value.user_message


async def test_decompression_bomb_is_refused_before_decoding() -> None:
    bomb = _image_bytes("PNG", size=(20_000, 20_000), mode="1")  # 400 MP in a few KB
    assert len(bomb) < 200_000
    budget = PixelBudget(10**9)
    with pytest.raises(TooManyPixels) as caught:
        await normalize_image(Attachment("bomb.png", "image/png", bomb), Limits(), budget)
    assert caught.value.user_message.startswith(
        "The image “bomb.png” is 20000x20000 pixels; I can take up to 40 megapixels."
    )
    assert budget.in_use == 0


async def test_an_image_bigger_than_the_whole_budget_is_refused_before_decoding() -> None:
    budget = PixelBudget(2_000_000)
    data = _image_bytes("PNG", size=(2000, 1500))
    with pytest.raises(TooManyPixels) as caught:
        await normalize_image(Attachment("wide.png", "image/png", data), Limits(), budget)
    assert caught.value.user_message == (
        "The image “wide.png” is 2000x1500 pixels; I can take up to 2 megapixels. "
        "Please resize it and send it again."
    )
    assert budget.in_use == 0


async def test_garbage_is_not_an_image() -> None:
    with pytest.raises(UnsupportedImage) as caught:
        await _normalize("x.png", b"not an image")
    assert "couldn't read" in caught.value.user_message


async def test_unreadable_images_are_set_apart_and_the_rest_normalized() -> None:
    files = [
        Attachment("ok.png", "image/png", _image_bytes("PNG")),
        Attachment("cut.jpg", "image/jpeg", _noise((64, 64), "JPEG")[:300]),
    ]
    batch = await normalize_images(files, Limits(), PixelBudget(10**6))
    assert [image.name for image in batch.images] == ["ok.png"]
    assert ["“cut.jpg”" in error.user_message for error in batch.unreadable] == [True]


async def test_other_refusals_of_one_image_refuse_the_batch() -> None:
    files = [
        Attachment("ok.png", "image/png", _image_bytes("PNG")),
        Attachment("wide.png", "image/png", _image_bytes("PNG", size=(2000, 1500))),
    ]
    with pytest.raises(TooManyPixels):
        await normalize_images(files, Limits(), PixelBudget(1_000_000))


async def test_decodes_that_do_not_fit_together_run_one_after_the_other() -> None:
    """Two images of 1.5 MP in a 2 MP budget: the second decode waits for the first."""
    budget = PixelBudget(2_000_000)
    gate = threading.Event()
    # Held, not just their ids: a freed image's id can come back for the next one.
    started: dict[int, ImageFile.ImageFile] = {}
    original = ImageFile.ImageFile.load

    def load_when_allowed(image: ImageFile.ImageFile) -> object:
        started[id(image)] = image
        gate.wait(WAIT)
        return original(image)

    files = [
        Attachment(f"{i}.bmp", "image/bmp", _image_bytes("BMP", size=(1500, 1000)))
        for i in range(2)
    ]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ImageFile.ImageFile, "load", load_when_allowed)
        batch = asyncio.create_task(normalize_images(files, Limits(), budget))
        await _wait_for(lambda: started and budget.waiting == 1, "one decode, one waiting")
        assert len(started) == 1 and budget.in_use == 1_500_000
        gate.set()
        result = await asyncio.wait_for(batch, WAIT)
    assert len(result.images) == 2 and len(started) == 2
    assert budget.in_use == 0 and budget.waiting == 0


async def test_the_budget_serves_in_arrival_order() -> None:
    budget = PixelBudget(10)
    release_first = threading.Event()
    first = asyncio.create_task(budget.run(6, lambda: release_first.wait(WAIT)))
    await _wait_for(lambda: budget.in_use == 6, "the first holds 6")
    big = asyncio.create_task(budget.run(10, lambda: "big"))
    await _wait_for(lambda: budget.waiting == 1, "the big one queued")
    small = asyncio.create_task(budget.run(2, lambda: "small"))
    await _wait_for(lambda: budget.waiting == 2, "the small one queued behind it")
    assert budget.in_use == 6  # 2 would fit, but the big one came first
    release_first.set()
    assert await asyncio.wait_for(asyncio.gather(first, big, small), WAIT) == [
        True,
        "big",
        "small",
    ]
    assert budget.in_use == 0


async def test_a_cancelled_decode_holds_its_pixels_until_its_thread_ends() -> None:
    budget = PixelBudget(10)
    gate = threading.Event()
    running = asyncio.create_task(budget.run(8, lambda: gate.wait(WAIT)))
    await _wait_for(lambda: budget.in_use == 8, "the decode holds 8")
    waiting = asyncio.create_task(budget.run(5, lambda: "never"))
    await _wait_for(lambda: budget.waiting == 1, "the second is queued")
    running.cancel()
    waiting.cancel()
    await asyncio.wait({running, waiting})
    assert budget.in_use == 8 and budget.waiting == 0  # the thread still runs
    gate.set()
    await _wait_for(lambda: budget.in_use == 0, "the thread ended")


def test_a_budget_needs_room() -> None:
    with pytest.raises(ValueError):
        PixelBudget(0)


@given(st.integers(1, 200_000), st.integers(1, 200_000))
def test_fit_is_within_bounds_never_larger_and_keeps_the_aspect(width: int, height: int) -> None:
    fitted = fit(width, height)
    assert max(fitted) <= LONG_SIDE and min(fitted) <= SHORT_SIDE
    assert fitted[0] <= width and fitted[1] <= height
    if max(width, height) <= LONG_SIDE and min(width, height) <= SHORT_SIDE:
        assert fitted == (width, height)
    # Each side is rounded by at most half a pixel (or raised to 1).
    scale = fitted[0] / width if width >= height else fitted[1] / height
    assert abs(fitted[0] - width * scale) <= 1 and abs(fitted[1] - height * scale) <= 1


def _seed_images() -> list[bytes]:
    seeds = [_noise((40, 30), fmt) for fmt in ("PNG", "JPEG", "BMP", "TIFF", "WEBP")]
    seeds.append(_image_bytes("GIF", size=(40, 30), mode="P"))
    seeds.append(_image_bytes("PNG", size=(40, 30), mode="RGBA"))
    return seeds


SEEDS = _seed_images()


# Pillow warns about some damage (a corrupt EXIF block) and reads on; so do we.
@pytest.mark.filterwarnings("ignore::UserWarning:PIL")
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.sampled_from(SEEDS),
    edits=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=8),
    cut=st.one_of(st.none(), st.integers(0, 10_000)),
)
def test_damaged_images_are_refused_or_normalized_never_crash(
    seed: bytes, edits: list[tuple[int, int]], cut: int | None
) -> None:
    """Whatever bytes arrive, the answer is an image the API takes, within the model's
    bounds, or a refusal the user can read; and the budget is whole again afterwards."""
    data = bytearray(seed)
    for position, value in edits:
        data[position % len(data)] = value
    damaged = bytes(data[:cut] if cut is not None else data)
    budget = PixelBudget(40_000_000)
    try:
        image = asyncio.run(normalize_image(Attachment("x", "image/x", damaged), Limits(), budget))
    except UserInputError as refusal:
        assert refusal.user_message
    else:
        assert image.mime in ("image/png", "image/jpeg", "image/webp")
        decoded = _decoded(image.data)
        assert decoded.size == fit(*decoded.size)
    assert budget.in_use == 0 and budget.waiting == 0


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 10), min_size=1, max_size=12), st.integers(10, 20))
def test_the_budget_never_overcommits_and_serves_everyone(sizes: list[int], capacity: int) -> None:
    budget = PixelBudget(capacity)
    peak = 0
    lock = threading.Lock()
    active = 0

    def work() -> int:
        nonlocal active, peak
        with lock:
            active += 1
        try:
            assert budget.in_use <= capacity
            peak = max(peak, budget.in_use)
            return active
        finally:
            with lock:
                active -= 1

    async def all_of_them() -> list[int]:
        return await asyncio.gather(*(budget.run(size, work) for size in sizes))

    assert len(asyncio.run(all_of_them())) == len(sizes)
    assert 0 < peak <= capacity and budget.in_use == 0
