"""The suite's Redis: `PARLEY_TEST_REDIS_URL` when given, else a throwaway `redis-server`.

The suite flushes its database around every test, so it never picks a Redis on its own
(a developer's 6379 holds their data): it uses the one it is given, or starts a private
server on a free loopback port with nothing saved to disk, or stops with what to install.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

ENV = "PARLEY_TEST_REDIS_URL"
DATABASE = 13
START_TIMEOUT = 30.0  # seconds for redis-server to answer PING on a loaded machine

NOT_FOUND = (
    "The tests need Redis and redis-server is not on the PATH. Install it (Debian/Ubuntu: "
    "apt install redis-server; macOS: brew install redis) and the suite starts a throwaway "
    f"server of its own, or set {ENV} to a Redis database the suite may flush before and "
    f"after every test, e.g. {ENV}=redis://127.0.0.1:6379/{DATABASE}."
)


@contextmanager
def suite_redis() -> Iterator[str]:
    """The URL of the Redis database the suite may flush, for the whole session."""
    given = os.environ.get(ENV)
    if given:
        yield given
        return
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.exit(NOT_FOUND, returncode=4)
    with tempfile.TemporaryDirectory(prefix="parley-test-redis-") as folder:
        port = _free_port()
        command = [binary, "--port", str(port), "--bind", "127.0.0.1"]
        command += ["--save", "", "--appendonly", "no", "--dir", folder]
        with subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        ) as process:
            try:
                _wait_until_it_answers(port, process)
                yield f"redis://127.0.0.1:{port}/{DATABASE}"
            finally:
                process.terminate()
                process.wait(timeout=30)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _wait_until_it_answers(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            error = process.stderr.read().decode(errors="replace") if process.stderr else ""
            pytest.exit(f"redis-server for the tests exited at start: {error.strip()}", 4)
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as connection:
                connection.sendall(b"PING\r\n")
                if connection.recv(16).startswith(b"+PONG"):
                    return
        except OSError:
            pass  # not listening yet
        time.sleep(0.02)
    process.kill()
    pytest.exit(f"redis-server for the tests did not answer within {START_TIMEOUT:.0f} s", 4)
