"""Peak memory of one message with four big images, through `Engine.handle`.

The message of issue 8: four 6300x6300 RGBA TIFFs (here about 350 KB each; they compress
well and pass the 40-megapixel guard), answered by the engine with an in-process store
and the fake chat-completions server in a process of its own. The TIFFs are made in a
child process too, so this process's high-water mark is only what answering costs.

Reported: resident memory after start-up, the peak while answering (VmHWM from
/proc/self/status, the same as `resource.getrusage(...).ru_maxrss`), the peak of memory
Python itself allocated (tracemalloc; Pillow's pixel buffers are outside it), the wall
time, and what the model was sent. The target is a peak under 300 MB.

    python -m bench.images [--images 4] [--side 6300] [--messages 1]

With `--messages N`, N such messages arrive at once in different threads: the pixel
budget is the process's, so the peak stays that of one decode at a time.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from dataclasses import dataclass
from pathlib import Path

from fakeredis import FakeServer

from bench import engine as engine_bench
from bot.conversation import Attachment, ConversationKey, IncomingMessage
from bot.engine import Engine, EngineConfig
from bot.llm.client import ChatClient
from bot.reply.sink import FinalReply
from bot.settings import Limits
from bot.store import ConversationStore
from bot.store.client import EmbeddedRedis
from bot.store.memory import Keyspace

TARGET_MB = 300.0

# Run in a child process: building the pixels costs as much memory as decoding them.
_MAKE_TIFF = """
import sys
from PIL import Image, ImageDraw
side, path = int(sys.argv[1]), sys.argv[2]
image = Image.new("RGBA", (side, side), (255, 255, 255, 0))
draw = ImageDraw.Draw(image)
for i in range(0, side, side // 5):
    draw.ellipse((i // 2, i // 3, i, i), outline=(i % 256, 90, 200, 255), width=4)
image.save(path, format="TIFF", compression="tiff_adobe_deflate")
"""


@dataclass
class Sink(engine_bench.Sink):
    """The engine benchmark's sink, keeping the answer to show what the model was sent."""

    final: FinalReply | None = None

    async def finish(self, reply: FinalReply) -> None:
        await super().finish(reply)
        self.final = reply


def _status_mb(field: str) -> float:
    """A memory line of /proc/self/status (kB there) in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


def _make_tiffs(count: int, side: int, folder: Path) -> list[Attachment]:
    path = folder / "one.tiff"
    subprocess.run([sys.executable, "-c", _MAKE_TIFF, str(side), str(path)], check=True)
    data = path.read_bytes()
    # Distinct bytes per file, as four different uploads would be (the store dedups by hash).
    return [Attachment(f"scan-{i}.tiff", "image/tiff", data + bytes(i)) for i in range(count)]


async def _answer(files: list[Attachment], messages: int) -> tuple[list[Sink], float]:
    """`messages` messages with `files` each, at once, in threads of their own."""
    async with engine_bench.fake_model() as base_url:
        limits = Limits()
        llm = ChatClient(api_key=None, base_url=base_url)
        engine = Engine(
            store=ConversationStore(
                EmbeddedRedis(server=FakeServer(), conversations=Keyspace()), limits
            ),
            llm=llm,
            config=EngineConfig(system_prompt="Be brief.", limits=limits, tools=False),
        )
        try:
            await engine.handle(
                IncomingMessage(ConversationKey("bench", "w", "c", "t"), "warm up"), Sink()
            )
            sinks = [Sink() for _ in range(messages)]
            started = time.perf_counter()
            await asyncio.gather(
                *(
                    engine.handle(
                        IncomingMessage(
                            ConversationKey("bench", "w", "c", f"images-{i}"),
                            "What do these show?",
                            files=files,
                        ),
                        sink,
                    )
                    for i, sink in enumerate(sinks)
                )
            )
            return sinks, time.perf_counter() - started
        finally:
            await llm.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--side", type=int, default=6300)
    parser.add_argument("--messages", type=int, default=1, help="such messages at once")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        files = _make_tiffs(args.images, args.side, Path(folder))
    size_kb = sum(len(f.data) for f in files) / 1024
    tracemalloc.start()
    start_mb = _status_mb("VmRSS")
    sinks, seconds = asyncio.run(_answer(files, args.messages))
    _, python_peak = tracemalloc.get_traced_memory()
    peak_mb = _status_mb("VmHWM")
    maxrss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    answers = [sink.final.text for sink in sinks if sink.final]
    failures = {sink.failed for sink in sinks if sink.failed}
    outcome = f"{len(answers)} of {len(sinks)} answered, e.g. {answers[:1]}; failures: {failures}"
    verdict = "under" if peak_mb < TARGET_MB else "OVER"
    print(
        f"{args.messages} message(s) at once, each with {args.images} RGBA TIFFs of "
        f"{args.side}x{args.side} px, {size_kb:,.0f} KB in all\n"
        f"| RSS at start | peak RSS (VmHWM) | ru_maxrss | added | Python peak | time |\n"
        f"| ---: | ---: | ---: | ---: | ---: | ---: |\n"
        f"| {start_mb:.0f} MB | {peak_mb:.0f} MB | {maxrss_mb:.0f} MB "
        f"| {peak_mb - start_mb:.0f} MB | {python_peak / 2**20:.0f} MB | {seconds:.2f} s |\n"
        f"{outcome}\n"
        f"peak {verdict} the {TARGET_MB:.0f} MB target"
    )


if __name__ == "__main__":
    main()
