"""`parley chat` as a newcomer meets it: the real command, piped or in a pty, against the
fake model, started from a copy of `.env.example` with no Redis anywhere."""

from __future__ import annotations

import asyncio
import io
import logging
import os
import pty
import shutil
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from bot.cli.chat_logs import DIM, MAX_HELD, HeldLogHandler
from bot.settings import Settings
from tests.cli.test_cli import _OURS, _env, _run
from tests.fakes.llm_server import Error, FakeLLM, Reply

ENV_EXAMPLE = Path(__file__).resolve().parents[2] / ".env.example"


def _model_env(fake_llm: FakeLLM, **more: str) -> dict[str, str]:
    return _env(EVOLINK_BASE_URL=fake_llm.base_url, EVOLINK_API_KEY=fake_llm.api_key or "", **more)


def test_env_example_holds_the_defaults_and_no_redis(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(_OURS):
            monkeypatch.delenv(name)
    copied = Settings(_env_file=ENV_EXAMPLE)  # type: ignore[call-arg]
    assert copied.redis_url is None
    # Every line is the default or empty: copying the file changes nothing but what you fill in.
    assert copied.model_dump() == Settings(_env_file=None).model_dump()  # type: ignore[call-arg]


async def test_chat_starts_from_a_copied_env_example_without_redis(
    fake_llm: FakeLLM, tmp_path: Path
) -> None:
    shutil.copy(ENV_EXAMPLE, tmp_path / ".env")
    code, out, err = await _run("chat", env=_model_env(fake_llm), stdin=b"hello\n", cwd=tmp_path)
    assert code == 0, err
    assert "You said: hello" in out
    assert "REDIS_URL is not set: using an in-process store" in err
    assert "Traceback" not in err


async def test_commands_say_once_what_happens_and_never_reach_the_model(
    fake_llm: FakeLLM, tmp_path: Path
) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("The meeting moved to THURSDAY.\n")
    blob = tmp_path / "data.bin"
    blob.write_bytes(b"\x00\x01")
    script = (
        "/model gpt-5.1\n"
        "/bogus now\n"
        "first question\n"
        "/reset\n"
        "second question\n"
        f"/image {notes}\n"
        f"/image {blob}\n"
        "when is the meeting?\n"
        "//etc/hosts is a path\n"
    )
    code, out, err = await _run(
        "chat", env=_model_env(fake_llm, USER="tester"), stdin=script.encode(), cwd=tmp_path
    )
    assert code == 0, err

    # An unknown command is answered with the list, never sent.
    assert "Unknown command /bogus. Commands: /image, /file, /model, /reset, /help, /quit." in out
    sent = [request.last_user_text for request in fake_llm.requests]
    assert not any("bogus" in text for text in sent)

    # /reset forgets the history but keeps the model, and says so.
    assert "Conversation reset. Still talking to gpt-5.1." in out
    assert [r.model for r in fake_llm.requests] == ["gpt-5.1"] * 4
    assert [m["role"] for m in fake_llm.requests[1].body["messages"]] == ["system", "user"]

    # /image on a text file says once that it goes as a text file, and it does.
    assert "notes.txt is not an image: it goes with your next message as a text file." in out
    assert "Not attached “data.bin”" in out
    # (The fake model echoes the message, document text included; the chat's own lines
    # would read "Attached notes.txt to your next message." and "Skipped “notes.txt”".)
    assert "Attached notes.txt" not in out and "Skipped “notes.txt”" not in out, out
    assert "THURSDAY" in sent[2] and "data.bin" not in sent[2]

    # `//` sends a line that starts with a slash.
    assert sent[3].endswith("/etc/hosts is a path")

    # The local account's name is never the author the model sees.
    for request in fake_llm.requests:
        assert "tester" not in str(request.body["messages"])


class Terminal:
    """`parley chat` in a pseudo-terminal: what a person sees, bytes as written."""

    def __init__(self, master: int, process: asyncio.subprocess.Process) -> None:
        self.master = master
        self.process = process
        self.screen = ""
        self._changed = asyncio.Event()

    def on_readable(self) -> None:
        try:
            data = os.read(self.master, 65536)
        except OSError:  # the child closed the terminal
            data = b""
        if not data:
            asyncio.get_running_loop().remove_reader(self.master)
        self.screen += data.decode(errors="replace")
        self._changed.set()

    async def shows(self, text: str, count: int = 1) -> None:
        """Wait until `text` is on the screen `count` times."""
        async with asyncio.timeout(60):
            while self.screen.count(text) < count:
                self._changed.clear()
                await self._changed.wait()

    def type(self, line: str) -> None:
        os.write(self.master, line.encode() + b"\n")


@asynccontextmanager
async def terminal(env: dict[str, str], cwd: Path) -> AsyncIterator[Terminal]:
    master, slave = pty.openpty()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "chat", stdin=slave, stdout=slave, stderr=slave,
        env=env, cwd=cwd,
    )  # fmt: skip
    os.close(slave)
    screen = Terminal(master, process)
    asyncio.get_running_loop().add_reader(master, screen.on_readable)
    try:
        yield screen
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()
        asyncio.get_running_loop().remove_reader(master)
        os.close(master)


async def test_log_lines_wait_for_the_end_of_the_answer(fake_llm: FakeLLM, tmp_path: Path) -> None:
    # A 429 then an answer: the client logs a warning while the answer is under way.
    fake_llm.enqueue(Error(429, retry_after="0"), Reply(text="PONG ANSWER"))
    async with terminal(_model_env(fake_llm), tmp_path) as screen:
        await screen.shows("you> ")
        screen.type("ping")
        await screen.shows("you> ", count=2)
        screen.type("/quit")
        async with asyncio.timeout(60):
            assert await screen.process.wait() == 0

    seen = screen.screen
    # The start-up warning came before the first prompt, on its own dimmed line.
    assert f"\n{DIM}" in seen[: seen.index("you> ")]
    assert "REDIS_URL is not set" in seen[: seen.index("you> ")]
    # The retry's warning came after the answer, on its own dimmed line, not inside it.
    answer = seen.index("PONG ANSWER")
    warning = seen.index("chat request failed")
    assert seen.index("parley> ") < answer < warning
    assert f"\n{DIM}" in seen[answer:warning]
    assert "chat request failed" not in seen[seen.index("parley> ") : answer]


def test_held_log_lines_are_bounded_and_each_on_its_own_line() -> None:
    stream = io.StringIO()
    handler = HeldLogHandler(stream, dim=False)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    log = logging.getLogger("tests.held")
    log.addHandler(handler)
    log.propagate = False
    try:
        for n in range(MAX_HELD + 10):
            log.warning("line %d", n)
        assert stream.getvalue() == ""  # nothing shown until the turn ends
        handler.show_held()
    finally:
        log.removeHandler(handler)
    lines = stream.getvalue().splitlines()
    assert lines[0] == "(10 earlier log lines not shown)"
    assert lines[1:] == [f"WARNING line {n}" for n in range(10, MAX_HELD + 10)]
    handler.show_held()
    assert len(stream.getvalue().splitlines()) == MAX_HELD + 1  # shown once
