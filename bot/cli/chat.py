"""`parley chat`: a conversation in the terminal, through the same engine and store.

Interactive: a prompt, answers streamed token by token, a "thinking" line while the
model has not written yet. Commands: `/image PATH-or-URL` attaches an image to the next
message, `/file PATH` a document (PDF, Office file, spreadsheet, text), `/reset` starts
over (keeping the model), `/model NAME` switches model, `/help`, `/quit`. Any other
`/word` is answered with the list of commands rather than sent; `//` sends a line that
starts with a slash. Log lines wait for the end of a turn (`bot.cli.chat_logs`).
Each tool call the model makes leaves one dim line (its name, arguments and outcome).
Piped stdin: each line is a message; the answers go to stdout, and it exits at EOF.

The model is not told the local account's name: the terminal has one person in it.

The conversation is kept in the store under the user's name, so with `REDIS_URL` set a
later `parley chat` carries on where this one left off (`--new` starts afresh).
"""

from __future__ import annotations

import asyncio
import getpass
import mimetypes
import re
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from bot.cli.chat_logs import held_log_handler
from bot.conversation import Attachment, ConversationKey, IncomingMessage
from bot.engine import Engine
from bot.intake import Envelope, build_intake
from bot.media.attachments import FileKind, classify, skip_reason
from bot.metrics import Metrics
from bot.reply import Audience
from bot.reply.sink import FinalReply
from bot.service.serve import build_engine, config_problem
from bot.settings import Limits, Settings
from bot.tools import ToolProgress

HELP = """\
Commands:
  /image PATH|URL  attach an image to your next message
  /file PATH       attach a document (PDF, Word, PowerPoint, Excel, CSV, HTML, text)
  /model NAME      switch model for this conversation (now: {model})
  /reset           forget this conversation and start over (the model stays)
  /help            this help
  /quit            leave (Ctrl-D works too)
Start a line with // to send a message that begins with a slash.
"""
COMMANDS = ("/image", "/file", "/model", "/reset", "/help", "/quit")
# A word like `/reset`; `/usr/bin/env is broken` has a second slash and is a message.
_COMMAND = re.compile(r"/[A-Za-z][\w-]*")


class TerminalSink:
    """Writes the answer to `out` as it grows; status lines go to `status` (a tty)."""

    min_update_interval = 0.0  # a terminal can show every token
    first_update_delay = 0.0  # and at once: showing costs nothing

    def __init__(self, out: TextIO, status: TextIO | None) -> None:
        self._out = out
        self._status = status
        self._shown = 0
        self._status_visible = False

    async def start(self) -> None:
        self._set_status("thinking…")

    def meet(self, audience: Audience) -> None:
        """A terminal notifies nobody and previews nothing: the text is shown as it is."""

    async def progress(self, status: str) -> None:
        if self._shown == 0:
            self._set_status(status)

    async def tool_progress(self, event: ToolProgress) -> None:
        """A dim line per finished call; the steps before it are the status line."""
        if event.state not in ("done", "error"):
            await self.progress(event.status_line())
            return
        if self._status is not None:
            self._clear_status()
            mark = "✓" if event.state == "done" else "✗"
            self._status.write(f"\x1b[2m🔧 {event.name} {mark} {event.summary}\x1b[0m\n")
            self._status.flush()

    async def update(self, text: str) -> None:
        self._clear_status()
        self._out.write(text[self._shown :])
        self._out.flush()
        self._shown = len(text)

    async def finish(self, reply: FinalReply) -> None:
        await self.update(reply.text)
        self._out.write("\n")
        for note in reply.notes:
            self._out.write(f"⚠ {note}\n")
        self._out.flush()

    async def fail(self, message: str) -> None:
        self._clear_status()
        if self._shown:
            self._out.write("\n")
        self._out.write(f"✖ {message}\n")
        self._out.flush()

    def _set_status(self, text: str) -> None:
        if self._status is None:
            return
        width = 78
        self._status.write("\r\x1b[2m" + text[:width].ljust(width) + "\x1b[0m")
        self._status.flush()
        self._status_visible = True

    def _clear_status(self) -> None:
        if self._status is not None and self._status_visible:
            self._status.write("\r\x1b[K")
            self._status.flush()
            self._status_visible = False


@dataclass(frozen=True, slots=True)
class TerminalSource:
    """The terminal as the intake sees it: the message is read already, answers go to one sink."""

    message: IncomingMessage
    sink: TerminalSink

    async def read(self, env: Envelope) -> IncomingMessage:
        return self.message

    def reply(self, env: Envelope) -> TerminalSink:
        return self.sink

    async def tell_privately(self, env: Envelope, text: str) -> None:
        await self.sink.fail(text)  # the terminal is private already

    async def holds_thread(self, env: Envelope) -> bool:
        return True  # the terminal's one conversation is always the bot's


async def _read_line(stream: TextIO, prompt: str, interactive: bool) -> str | None:
    if interactive:
        sys.stdout.write(prompt)
        sys.stdout.flush()
    line = await asyncio.to_thread(stream.readline)
    return None if line == "" else line.rstrip("\n")


def _attachment(
    spec: str, limits: Limits, *, urls: bool
) -> tuple[Attachment | None, str | None, str]:
    """A file from a path, or (with `urls`) an image URL passed through; plus what will
    happen to it, said once: a file Parley can't read, or too big, is not attached."""
    if urls and spec.startswith(("https://", "http://")):
        return None, spec, f"Image URL attached to your next message: {spec}"
    path = Path(spec).expanduser()
    if not path.is_file():
        return None, None, f"No such file: {path}"
    mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    refused = skip_reason(path.name, mime, path.stat().st_size, limits)
    if refused:
        return None, None, refused.replace("Skipped", "Not attached", 1)
    attachment = Attachment(path.name, mime, path.read_bytes())
    kind = classify(path.name, mime)
    if urls and kind is not FileKind.IMAGE:
        said = f"{path.name} is not an image: it goes with your next message as a {kind} file."
    else:
        said = f"Attached {path.name} to your next message."
    return attachment, None, said


async def _reset(engine: Engine, key: ConversationKey) -> str:
    """Start the conversation over; the model chosen with /model stays."""
    model = await engine.model_for(key)
    await engine.reset(key)
    if await engine.model_for(key) != model:
        await engine.set_model(key, model)
    return f"Conversation reset. Still talking to {model}.\n"


def _unknown(command: str) -> str:
    return (
        f"Unknown command {command}. Commands: {', '.join(COMMANDS)}. "
        "Start with // to send a line beginning with a slash.\n"
    )


async def chat(
    settings: Settings,
    *,
    model: str | None = None,
    fresh: bool = False,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
) -> int:
    """Run the terminal conversation; the exit status."""
    stdin = stdin or sys.stdin
    out = stdout or sys.stdout
    problem = config_problem(settings, "parley chat")
    if problem:
        sys.stderr.write(problem)
        return 2
    interactive = stdin.isatty() and out.isatty()
    engine = build_engine(settings, Metrics())
    engine.toolbox.start()  # MCP servers connect while the person types
    intake = build_intake(engine)
    key = ConversationKey("cli", "local", getpass.getuser(), "default")
    pending_files: list[Attachment] = []
    pending_urls: list[str] = []
    logs = held_log_handler()
    limits = settings.limits()
    try:
        if fresh:
            await engine.reset(key)
        if model:
            await engine.set_model(key, model)
        if interactive:
            current = await engine.model_for(key)
            out.write(f"Parley chat with {current}. /help for commands, Ctrl-D to leave.\n")
        while True:
            out.flush()
            if logs:
                logs.show_held()
            line = await _read_line(stdin, "\nyou> ", interactive)
            if line is None or line.strip() in ("/quit", "/exit"):
                break
            command, _, arg = line.strip().partition(" ")
            if command.startswith("//"):
                line, command = line.lstrip()[1:], ""
            if command == "/help":
                out.write(HELP.format(model=await engine.model_for(key)))
            elif command == "/reset":
                out.write(await _reset(engine, key))
                pending_files.clear()
                pending_urls.clear()
            elif command == "/model":
                if arg.strip():
                    await engine.set_model(key, arg.strip())
                    out.write(f"Model set to {arg.strip()}.\n")
                else:
                    out.write(f"Model: {await engine.model_for(key)}. Usage: /model NAME\n")
            elif command in ("/image", "/file"):
                file, url, said = await asyncio.to_thread(
                    _attachment, arg.strip(), limits, urls=command == "/image"
                )
                pending_files.extend([file] if file else [])
                pending_urls.extend([url] if url else [])
                out.write(said + "\n")
            elif _COMMAND.fullmatch(command):
                out.write(_unknown(command))
            elif line.strip() or pending_files or pending_urls:
                if interactive:
                    out.write("\nparley> ")
                message = IncomingMessage(
                    key=key,
                    text=line,
                    files=pending_files,
                    image_urls=pending_urls,
                )
                pending_files, pending_urls = [], []
                status = sys.stderr if interactive else None
                env = Envelope(
                    platform=key.platform,
                    event_id=f"cli:{uuid.uuid4().hex}",
                    key=key,
                    author_id=getpass.getuser(),
                    text=line,
                    is_dm=True,
                )
                await intake.submit(env, TerminalSource(message, TerminalSink(out, status)))
    finally:
        out.flush()
        if logs:
            logs.show_held()
        await engine.llm.aclose()
        await engine.toolbox.aclose()
        await engine.store.aclose()
    return 0
