"""Throwaway `redis-server` (and sentinel) processes on free loopback ports, for tests.

Each one keeps nothing on disk (no RDB, no AOF) and is killed by its owner at the end.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import redis

START_TIMEOUT = 30.0  # a loaded 2-core machine can take seconds to start a process


def free_port() -> int:
    """A loopback port nobody listens on right now (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def free_cluster_port() -> int:
    """A free port whose cluster bus port (10000 higher) is free too and exists."""
    while True:
        port = free_port()
        if port + 10000 > 65535:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
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


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    """Poll `condition` until it holds; generous, for a loaded machine."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting until {what}")
        time.sleep(0.05)


def info(process: RedisProcess, section: str) -> dict[str, str]:
    """One INFO section as text fields (or CLUSTER INFO with `section="cluster info"`)."""
    with process.client() as client:
        command = ("CLUSTER", "INFO") if section == "cluster info" else ("INFO", section)
        raw = client.execute_command(*command)
    if isinstance(raw, dict):
        return {str(k): str(v) for k, v in raw.items()}
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    return dict(line.split(":", 1) for line in text.splitlines() if ":" in line and line[0] != "#")
