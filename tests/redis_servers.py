"""Throwaway `redis-server` (and sentinel) processes on free loopback ports, for tests.

Each one keeps nothing on disk (no RDB, no AOF) and is killed by its owner at the end.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import redis

START_TIMEOUT = 30.0  # a loaded 2-core machine can take seconds to start a process


def free_port() -> int:
    """A loopback port nobody listens on right now (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def have_redis_server() -> bool:
    return shutil.which("redis-server") is not None


class RedisProcess:
    """One `redis-server` (or `redis-server --sentinel`) on 127.0.0.1:`port`."""

    def __init__(self, port: int, *args: str, workdir: Path | None = None) -> None:
        self.port = port
        self.url = f"redis://127.0.0.1:{port}"
        command = [
            "redis-server",
            *(["--port", str(port)] if "--sentinel" not in args else []),
            *args,
        ]
        if "--sentinel" not in args:
            command += ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self._process = subprocess.Popen(
            command,
            cwd=workdir,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._wait_until_up()

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=10)

    def _wait_until_up(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self._process.poll() is not None:
                raise RuntimeError(f"redis-server on {self.port} exited at start")
            try:
                with self.client() as client:
                    client.ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"redis-server on {self.port} did not start") from None
                time.sleep(0.02)

    @property
    def running(self) -> bool:
        return self._process.poll() is None

    def stop(self) -> None:
        if self._process.poll() is None:
            self._process.kill()
        self._process.wait(timeout=30)
