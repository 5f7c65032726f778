"""How much memory a pod needs: the document readers at their cap, plus the app.

A document reader is a child process whose address space is capped
(`DocumentLimits.memory_bytes`, 1 GiB); up to `DocumentWorker`'s concurrency (2) run at
once, in the same container as the app. This starts a child under the same cap with the
same parsers imported, has it allocate and touch memory until the cap refuses more, and
reports its peak resident memory (MiB): the most one reader can hold. The pod's limit must
cover the app's own peak (`--app-mb`, from `python -m bench.images`) plus that many
readers, or Kubernetes ends the whole container, answers in flight included.

    python -m bench.pod_memory [--app-mb 262]
"""

from __future__ import annotations

import argparse
import inspect
import subprocess
import sys

from bot.documents.limits import DocumentLimits
from bot.documents.worker import DocumentWorker

# Readers at once per process: DocumentWorker's default, as the engine builds it.
READERS: int = inspect.signature(DocumentWorker).parameters["concurrency"].default

_CHILD = """
import resource, sys
cap = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
import bot.documents.formats, docx, pptx, openpyxl, pypdfium2  # what a reader loads
blocks = []
try:
    while True:
        block = bytearray(8 * 1024 * 1024)
        block[::4096] = b"x" * len(range(0, len(block), 4096))  # resident, not just mapped
        blocks.append(block)
except MemoryError:
    pass
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
"""


def reader_peak_mb(cap: int) -> int:
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(cap)], capture_output=True, text=True, check=True
    )
    return int(done.stdout.strip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--app-mb", type=int, default=262, help="the app's own peak RSS, MiB")
    args = parser.parse_args()
    cap = DocumentLimits().memory_bytes
    peak = reader_peak_mb(cap)
    need = args.app_mb + READERS * peak
    print(f"reader address-space cap: {cap // 2**20} MiB")
    print(f"one reader at its cap: {peak} MiB resident")
    print(f"app {args.app_mb} MiB + {READERS} readers = {need} MiB: the pod's limit at least")


if __name__ == "__main__":
    main()
