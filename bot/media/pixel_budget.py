"""How many decoded pixels may be in memory at once, across every message in the process.

A compressed image says little about what it costs to decode: a 250 KB TIFF can hold 40
megapixels, 160 MB of RGBA. A per-image limit does not bound a message with four of them,
or forty messages with one each; this budget does. The engine owns one (one engine per
process), and every decode waits for its pixels before it starts.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import ctypes
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

# glibc gives each thread a malloc arena of its own and keeps some of what a thread frees
# there for reuse: decodes spread over many threads would each leave a decoded image's
# worth behind, and the peak would grow with the threads, not with the budget. So pixel
# work runs on two threads of its own (both cores of a small machine), and each job ends
# with `malloc_trim`, which hands freed memory back. Other C libraries (musl) return large
# blocks by themselves and have no such function.
DECODE_THREADS = 2
_WORKERS = concurrent.futures.ThreadPoolExecutor(DECODE_THREADS, thread_name_prefix="pixels")
_malloc_trim: Callable[[int], int] | None = getattr(ctypes.CDLL(None), "malloc_trim", None)


class PixelBudget:
    """A first-come, first-served semaphore counted in pixels, used from one event loop.

    Waiters are served in arrival order, so a big image is never starved by a stream of
    small ones. A request larger than `capacity` could never be served: callers check
    `fits` first and refuse such an image.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("a pixel budget needs room for at least one pixel")
        self.capacity = capacity
        self._free = capacity
        self._waiters: collections.deque[tuple[int, asyncio.Future[None]]] = collections.deque()

    @property
    def in_use(self) -> int:
        return self.capacity - self._free

    @property
    def waiting(self) -> int:
        """Decodes waiting for room."""
        return len(self._waiters)

    def fits(self, pixels: int) -> bool:
        return pixels <= self.capacity

    async def run(self, pixels: int, work: Callable[[], T]) -> T:
        """`work()` on a pixel worker thread, holding `pixels` of the budget while it runs.

        The pixels are given back when the thread ends, not when the caller stops
        waiting: a cancelled caller cannot stop the thread, whose memory is still in use.
        """
        await self._acquire(pixels)
        try:
            thread = asyncio.get_running_loop().run_in_executor(
                _WORKERS, _returning_memory, work
            )
        except BaseException:
            self._release(pixels)
            raise
        thread.add_done_callback(lambda done: self._finished(pixels, done))
        return await asyncio.shield(thread)

    async def _acquire(self, pixels: int) -> None:
        if not self.fits(pixels):
            raise ValueError(f"{pixels} pixels can never fit a budget of {self.capacity}")
        if not self._waiters and pixels <= self._free:
            self._free -= pixels
            return
        entry = (pixels, asyncio.get_running_loop().create_future())
        self._waiters.append(entry)
        try:
            await entry[1]
        except asyncio.CancelledError:
            if entry[1].cancelled():
                with contextlib.suppress(ValueError):  # `_grant` may have dropped it already
                    self._waiters.remove(entry)
                self._grant()  # it may have been first in line, holding others back
            else:
                self._release(pixels)  # granted, but cancelled before it could start
            raise

    def _release(self, pixels: int) -> None:
        self._free += pixels
        self._grant()

    def _grant(self) -> None:
        while self._waiters and self._waiters[0][0] <= self._free:
            pixels, waiter = self._waiters.popleft()
            if waiter.cancelled():
                continue
            self._free -= pixels
            waiter.set_result(None)

    def _finished(self, pixels: int, thread: asyncio.Future[T]) -> None:
        self._release(pixels)
        if not thread.cancelled():
            thread.exception()  # retrieved here too, in case its caller was cancelled


def _returning_memory(work: Callable[[], T]) -> T:
    """`work()`, then the memory it freed handed back to the operating system."""
    try:
        return work()
    finally:
        if _malloc_trim is not None:
            _malloc_trim(0)
