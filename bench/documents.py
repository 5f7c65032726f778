"""Reading documents: time and peak memory for large generated files.

Three documents, generated here (no fixtures on disk): a 300-page text PDF, a 50-page
scanned PDF (every page an image, so every page is rendered to PNG) and a 10-sheet
workbook of 2,000 rows by 8 columns each. Limits are raised so each is read whole.

For each: *parse* is `extract` alone, timed inside a fresh process whose peak resident
memory (`ru_maxrss`) is *peak RSS*, interpreter and libraries included; *worker* is the
whole trip the engine makes through `DocumentWorker` (start a child, send the bytes,
read, return the text and images), the median of `--runs`.

    python -m bench.documents [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import resource
import statistics
import time
from collections.abc import Callable
from dataclasses import replace

from bench.stats import ms
from bot.documents.limits import DocumentLimits
from bot.documents.worker import DocumentWorker
from tests.fakes.documents import pdf, xlsx_file

LIMITS = DocumentLimits(max_chars=10_000_000, max_pages=1_000, max_page_images=50, max_rows=10_000)
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def text_pdf() -> bytes:
    line = "The quick brown fox jumps over the lazy dog, page {n}, line {i}."
    pages: list[str | None] = [
        "\n".join(line.format(n=n, i=i) for i in range(45)) for n in range(1, 301)
    ]
    return pdf(pages)


def scanned_pdf() -> bytes:
    return pdf([None] * 50, scan_size=(850, 1100))


def workbook() -> bytes:
    return xlsx_file(
        {
            f"Sheet {s}": [[f"r{r}c{c}" if c % 2 else r * c for c in range(8)] for r in range(2000)]
            for s in range(1, 11)
        }
    )


CASES: dict[str, tuple[Callable[[], bytes], str, str]] = {
    "300-page text PDF": (text_pdf, "text.pdf", "application/pdf"),
    "50-page scanned PDF": (scanned_pdf, "scans.pdf", "application/pdf"),
    "10-sheet workbook (2,000 x 8 each)": (workbook, "book.xlsx", XLSX),
}


def _parse_in_fresh_process(data: bytes, name: str, mime: str, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    from bot.documents.formats import extract

    started = time.perf_counter()
    result = extract(data, name, mime, LIMITS)
    elapsed = time.perf_counter() - started
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out.put((elapsed, peak_kb, len(result.text), len(result.images)))


async def worker_times(data: bytes, name: str, mime: str, runs: int) -> list[float]:
    worker = DocumentWorker()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        await worker.extract(data, name, mime, replace(LIMITS, timeout=300))
        times.append(time.perf_counter() - started)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    context = multiprocessing.get_context("spawn")
    rows = []
    for label, (make, name, mime) in CASES.items():
        data = make()
        queue = context.Queue()
        child = context.Process(target=_parse_in_fresh_process, args=(data, name, mime, queue))
        child.start()
        parse, peak_kb, chars, images = queue.get()
        child.join()
        trip = statistics.median(asyncio.run(worker_times(data, name, mime, args.runs)))
        rows.append(
            f"| {label} | {len(data) / 2**20:.1f} | {chars:,} | {images} | {ms(parse)} "
            f"| {ms(trip)} | {peak_kb / 1024:.0f} |"
        )
    print("| document | size MB | text chars | images | parse ms | worker ms | peak RSS MB |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
