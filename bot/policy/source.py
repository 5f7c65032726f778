"""The live policy: `BOT_POLICY_FILE`, re-read when it changes, without a restart.

Each use of the policy checks, at most once per `CHECK_INTERVAL`, whether the file's
mtime, size or inode changed: one `stat` on the event loop (microseconds, no thread per
check). Only a change reads and parses the file, in a worker thread, and the new policy
replaces the old once it is valid. A bad edit keeps the last good policy and is logged
with its line; the check after the next change tries again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

from bot.errors import PolicyFileError
from bot.policy.loader import read_policy_file
from bot.policy.resolve import Base, Decision, Effective, Persona, Place, Policy
from bot.settings import Settings

log = logging.getLogger(__name__)

CHECK_INTERVAL = 1.0

_Signature = tuple[int, int, int, int]  # inode, device, size, mtime in ns


def _signature(path: Path) -> _Signature | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_ino, st.st_dev, st.st_size, st.st_mtime_ns)


class PolicySource:
    """The current `Policy`; without a file, the settings' behaviour (all allowed)."""

    def __init__(
        self, path: Path | None, base: Base, *, check_interval: float = CHECK_INTERVAL
    ) -> None:
        self.path = path
        self._base = base
        self._interval = check_interval
        self._policy = Policy(base=base)
        self._signature: _Signature | None = None
        self._next_check = 0.0
        self._reload: asyncio.Task[None] | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> PolicySource:
        """The policy of `BOT_POLICY_FILE`, read now; raises `PolicyFileError` if it is bad."""
        path = Path(settings.bot_policy_file) if settings.bot_policy_file else None
        source = cls(path, Base.from_settings(settings))
        source.load()
        return source

    def load(self) -> None:
        """Read the file now (blocking; for start-up). Raises `PolicyFileError`."""
        if self.path is None:
            return
        signature = _signature(self.path)
        self._policy = Policy(read_policy_file(self.path), self._base)
        self._signature = signature
        self._next_check = time.monotonic() + self._interval

    @property
    def policy(self) -> Policy:
        """The last good policy; starts a re-read in the background if the file changed."""
        if self.path is not None and time.monotonic() >= self._next_check:
            self._next_check = time.monotonic() + self._interval
            if _signature(self.path) != self._signature and self._reload is None:
                with_loop = _running_loop()
                if with_loop is not None:
                    self._reload = with_loop.create_task(self._background_reload())
        return self._policy

    async def reload(self) -> bool:
        """Re-read the file if it changed since the last read; whether a new policy applies."""
        if self.path is None:
            return False
        signature = _signature(self.path)
        if signature == self._signature:
            return False
        try:
            file = await asyncio.to_thread(read_policy_file, self.path)
        except PolicyFileError as exc:
            self._signature = signature  # report a bad edit once, not every second
            log.error("policy file not applied, keeping the last good policy: %s", exc)
            return False
        self._policy = Policy(file, self._base)
        self._signature = signature
        log.info("policy file %s re-read", self.path)
        return True

    async def _background_reload(self) -> None:
        try:
            await self.reload()
        finally:
            self._reload = None

    def effective(self, place: Place) -> Effective:
        return self.policy.effective(place)

    def check_access(self, place: Place) -> Decision:
        return self.policy.check_access(place)

    def persona(self, place: Place) -> Persona:
        return self.policy.persona(place)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def policy_problem(settings: Settings) -> str | None:
    """What is wrong with `BOT_POLICY_FILE`, as a message for the operator, or None."""
    if not settings.bot_policy_file:
        return None
    try:
        read_policy_file(Path(settings.bot_policy_file))
    except PolicyFileError as exc:
        return f"BOT_POLICY_FILE is not valid:\n{exc}\n"
    return None
