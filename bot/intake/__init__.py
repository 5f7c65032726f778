"""One intake for every platform: the chain of steps each incoming message passes.

An adapter turns a platform event into an `Envelope` and submits it with a `Source`
(how to read the message in full and where its answer goes); `Intake` runs the steps of
`bot.intake.steps` over it, in order, and hands the message to the engine. A step that
decides the message is not for the bot stops the chain with `Stop(reason)`, logged and
counted in `/metrics` as `parley_intake_stopped_total{reason}`. Anything else a step
raises lands in one error hook, which logs it and tells the user.
"""

from bot.engine import Engine
from bot.intake.envelope import Envelope, Source
from bot.intake.pipeline import Context, Intake, Stop
from bot.intake.steps import STEPS

__all__ = ["Context", "Envelope", "Intake", "Source", "Stop", "build_intake"]


def build_intake(engine: Engine) -> Intake:
    """The intake `parley serve` and `parley chat` run: every step, in order."""
    return Intake(engine, STEPS)
