"""Running an extraction in a child process with a time and a memory limit.

Each document is read by a fresh `python -I -m bot.documents.worker` process: the
parsers are C and Python code fed hostile bytes, and a child is the one boundary that
bounds all of it at once. The child caps its own address space (`RLIMIT_AS`) and CPU
time (`RLIMIT_CPU`) before it imports a parser; the parent kills it when the wall-clock
limit passes. A crash, a kill or a memory error ends only that child and becomes a
plain refusal for that one file; nothing is left to recover, and the next document gets
a new process. The child gets an empty environment (no API keys, no tokens) and talks
over pipes: a JSON header line and the file's bytes in, one JSON line out.

A process per document costs about a quarter of a second to start; documents are read
once per content and then cached (`bot.documents.cache`), so that is paid once per file.
At most `concurrency` children run at a time per process.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import resource
import sys
from typing import Any

from bot.documents.limits import DocumentLimits, Extraction
from bot.errors import DocumentError, DocumentTooComplex

log = logging.getLogger(__name__)


class DocumentWorker:
    """Starts extraction children, at most `concurrency` at a time."""

    def __init__(self, concurrency: int = 2) -> None:
        self._slots = asyncio.Semaphore(concurrency)

    async def extract(
        self, data: bytes, name: str, mime: str, limits: DocumentLimits
    ) -> Extraction:
        """What the child read, or a `DocumentError` saying why it could not."""
        header = json.dumps(
            {"name": name, "mime": mime, "limits": dataclasses.asdict(limits)}
        ).encode()
        async with self._slots:
            child = await asyncio.create_subprocess_exec(
                sys.executable,
                "-I",
                "-m",
                __name__,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env={},
            )
            try:
                async with asyncio.timeout(limits.timeout):
                    out, err = await child.communicate(header + b"\n" + data)
            except TimeoutError:
                raise DocumentTooComplex(
                    name, f"reading it took longer than {limits.timeout:g} seconds"
                ) from None
            finally:
                if child.returncode is None:
                    with contextlib.suppress(ProcessLookupError):
                        child.kill()
                    await child.wait()
        return _answer(out, err, child.returncode, name, limits)


def _answer(
    out: bytes, err: bytes, status: int | None, name: str, limits: DocumentLimits
) -> Extraction:
    try:
        answer: dict[str, Any] = json.loads(out)
    except ValueError:
        answer = {}
    if "refusal" in answer:
        raise DocumentError(str(answer["refusal"]))
    if status == 0 and "extraction" in answer:
        return Extraction.from_dict(answer["extraction"])
    log.warning(
        "document reader for %r ended with status %s: %s",
        name,
        status,
        err.decode(errors="replace")[-500:],
    )
    if status is not None and status < 0:  # killed by a signal: the CPU limit, or a crash
        raise DocumentTooComplex(name, "the reader crashed or ran out of time on it")
    raise DocumentTooComplex(
        name, f"reading it needed more than {limits.memory_bytes // (1024 * 1024)} MB of memory"
    )


def _child() -> None:
    header = json.loads(sys.stdin.buffer.readline())
    limits = DocumentLimits(**header["limits"])
    resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
    cpu = int(limits.timeout) + 1
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
    data = sys.stdin.buffer.read()
    # Imported under the limits: the parsers load here.
    from bot.documents.formats import extract

    try:
        extraction = extract(data, header["name"], header["mime"], limits)
        answer: dict[str, Any] = {"extraction": extraction.to_dict()}
    except DocumentError as exc:
        answer = {"refusal": exc.user_message}
    except RecursionError:
        answer = {
            "refusal": DocumentTooComplex(
                header["name"], "its structure nests too deeply (a loop?)"
            ).user_message
        }
    except MemoryError:
        raise SystemExit(3) from None
    except Exception as exc:  # any parser failure on hostile bytes is a damaged file
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        answer = {"refusal": f"I can't read “{header['name']}”: the file is damaged or malformed."}
    sys.stdout.write(json.dumps(answer, ensure_ascii=False))


if __name__ == "__main__":
    _child()
