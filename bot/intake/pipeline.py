"""The chain runner: each step is `async def step(env, ctx, next)`, like bolt middleware.

A step calls `await next()` to pass the message on, returns without calling it when it
has dealt with the message itself, or raises `Stop(reason)` when the message is not
for the bot. Whatever else goes wrong lands in `Intake.on_error`, the one place that
logs a failure with its context and tells the person who wrote.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from bot.conversation import IncomingMessage
from bot.engine import RESTART_TEXT, Engine
from bot.errors import ParleyError
from bot.intake.claims import LocalClaims
from bot.intake.envelope import Envelope, Source
from bot.intake.turnstile import Turnstile
from bot.llm.types import Usage
from bot.policy import Persona
from bot.reply.sink import ReplySink

log = logging.getLogger(__name__)

Next = Callable[[], Awaitable[None]]
Step = Callable[[Envelope, "Context", Next], Awaitable[None]]


class Stop(Exception):
    """Ends the chain: the message is not for the bot (`reason` labels the metric)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(slots=True)
class Context:
    """What the steps learn about one message, passed along so nobody asks twice."""

    intake: Intake
    source: Source
    addressed: bool = False  # the bot was spoken to: a failure from here on is told
    held: bool = False  # the store already holds this conversation (no seed needed)
    message: IncomingMessage | None = None
    sink: ReplySink | None = None  # set once the engine has the message
    persona: Persona | None = None  # what the policy says the answer is made with
    model: str | None = None  # a model that wins over every choice (the quota's cheaper one)
    notes: list[str] = field(default_factory=list)  # the policy's notes for the answer
    usage: Usage | None = None  # what the model calls cost; None: no answer was written

    @property
    def engine(self) -> Engine:
        return self.intake.engine


class Intake:
    """Runs every platform's messages through the same steps (`build_intake` gives the usual)."""

    def __init__(self, engine: Engine, steps: Sequence[Step]) -> None:
        self.engine = engine
        self.open = True
        self.claims = LocalClaims()
        self._steps = tuple(steps)
        self._turnstile = Turnstile()

    def close(self) -> None:
        """Refuse new messages from now on (graceful shutdown, first step)."""
        self.open = False

    async def submit(self, env: Envelope, source: Source) -> None:
        """Take `env` through the chain. Never raises but for cancellation."""
        ctx = Context(self, source)
        with self.engine.track():
            try:
                await self._turnstile.through()  # a burst's acknowledgements go first
                await self._run(0, env, ctx)
            except Stop as stop:
                log.debug("%s event %s stopped: %s", env.platform, env.event_id, stop.reason)
                self.engine.metrics.intake_stopped.labels(stop.reason).inc()
            except asyncio.CancelledError:
                if ctx.addressed and ctx.sink is None:  # the engine tells its own users
                    await asyncio.shield(self._tell(env, ctx, RESTART_TEXT))
                raise
            except Exception as exc:  # the one catch-all: every platform's failures end here
                await self.on_error(exc, env, ctx)

    async def on_error(self, exc: Exception, env: Envelope, ctx: Context) -> None:
        """Log `exc` with its context and tell the person, if the bot was addressed.

        Override it (as with discord.py's `CommandTree.on_error`) to report elsewhere;
        an override should still call this one so nobody is left waiting.
        """
        where = f"{env.platform} event {env.event_id} in {env.key.id}"
        if isinstance(exc, ParleyError):
            log.warning("could not answer %s: %s (%s)", where, exc.kind, exc)
            message = exc.user_message
        else:
            log.error("could not answer %s", where, exc_info=exc)
            message = ParleyError().user_message
        kind = exc.kind if isinstance(exc, ParleyError) else "internal"
        self.engine.metrics.errors.labels(kind).inc()
        if ctx.addressed:
            await self._tell(env, ctx, message)

    async def _tell(self, env: Envelope, ctx: Context, message: str) -> None:
        sink = ctx.sink or ctx.source.reply(env)
        await sink.fail(message)

    async def _run(self, index: int, env: Envelope, ctx: Context) -> None:
        if index < len(self._steps):
            await self._steps[index](env, ctx, lambda: self._run(index + 1, env, ctx))
