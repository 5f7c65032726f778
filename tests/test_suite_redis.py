"""`make test` on a fresh machine: the suite starts its own Redis, or says what to install."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENV = "PARLEY_TEST_REDIS_URL"
# One test that needs Redis, run as a fresh pytest session.
NEEDS_REDIS = "tests/store/test_store.py::test_turns_read_back_oldest_first"


def _pytest(path: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != ENV}
    env["PATH"] = path
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-p", "no:cacheprovider",
         NEEDS_REDIS],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def test_with_redis_server_on_the_path_the_suite_starts_its_own() -> None:
    redis_server = shutil.which("redis-server")
    assert redis_server, "the suite starts its own Redis with redis-server from the PATH"
    done = _pytest(str(Path(redis_server).parent))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "passed" in done.stdout


def test_without_redis_the_suite_says_what_to_install(tmp_path: Path) -> None:
    done = _pytest(str(tmp_path))  # an empty PATH: no redis-server
    assert done.returncode == 4, done.stdout + done.stderr
    said = done.stdout + done.stderr
    assert "apt-get install redis-server" in said and ENV in said
    assert "ConnectionError" not in said and "Traceback" not in said
