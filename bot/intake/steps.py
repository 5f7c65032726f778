"""The intake's steps, in the order they run (`STEPS`).

Each answers one question and stops the chain with a reason when the answer is no. The
store is asked at most twice per message: whether it holds the thread (only for a reply
in a thread that doesn't mention the bot) and the claim; the answer to the first is
passed on, so neither the seed nor the engine asks again.
"""

from __future__ import annotations

import re

from bot.conversation import Role, Turn
from bot.errors import StoreUnavailable
from bot.intake.envelope import Envelope
from bot.intake.pipeline import Context, Next, Step, Stop
from bot.intake.policy import policy
from bot.reply.sink import FinalReply

RESET_WORDS = frozenset({"reset", "start over"})
RESET_DONE = "Started a fresh conversation: I've forgotten what we talked about before."


async def refuse_while_draining(env: Envelope, ctx: Context, next: Next) -> None:
    """After shutdown began, new messages are left to the replicas still running."""
    if not ctx.intake.open:
        raise Stop("draining")
    await next()


async def ignore_bots_and_housekeeping(env: Envelope, ctx: Context, next: Next) -> None:
    """The bot's own messages, other bots', and events that are not a person writing."""
    if env.is_self:
        raise Stop("self")
    if env.is_bot:
        raise Stop("bot")
    if env.housekeeping:
        raise Stop("housekeeping")
    await next()


async def addressed(env: Envelope, ctx: Context, next: Next) -> None:
    """A mention, a DM, a slash command, or a reply in a thread the bot already holds.

    Only the last needs the store (one EXISTS). When Redis is down the platform is
    asked instead whether the bot wrote in that thread, so a reply there still gets
    its "temporarily unavailable" notice and other threads hear nothing.
    """
    if not (env.is_mention or env.is_dm or env.is_command):
        if not env.in_thread:
            raise Stop("not_addressed")
        try:
            ctx.held = await ctx.engine.has_history(env.key)
        except StoreUnavailable:
            if not await ctx.source.holds_thread(env):
                raise Stop("not_addressed") from None
        else:
            if not ctx.held:
                raise Stop("not_addressed")
    ctx.addressed = True
    await next()


async def claim_once(env: Envelope, ctx: Context, next: Next) -> None:
    """Answer each message once across redeliveries, twins and replicas (one SET NX).

    Without Redis the claim falls back to this process's memory, so the first copy
    tells the person Redis is down and the copies after it say nothing.
    """
    try:
        first = await ctx.engine.claim_event(env.event_id)
    except StoreUnavailable:
        if not ctx.intake.claims.claim(env.event_id):
            raise Stop("duplicate") from None
        raise
    if not first:
        raise Stop("duplicate")
    await next()


async def intake_commands(env: Envelope, ctx: Context, next: Next) -> None:
    """`reset` or `start over`, alone in a thread or DM: forget the conversation."""
    if (env.in_thread or env.is_dm) and _command_text(env.text) in RESET_WORDS:
        await ctx.engine.reset(env.key)
        # The confirmation starts the new history: the thread stays the bot's (replies
        # need no mention) and is never seeded again from the platform's old messages.
        await ctx.engine.store.extend(env.key, [Turn.text(Role.ASSISTANT, RESET_DONE)])
        await ctx.source.reply(env).finish(FinalReply(RESET_DONE))
        return
    await next()


async def translate(env: Envelope, ctx: Context, next: Next) -> None:
    """Read the message in full: files fetched, the thread seeded once if it is new."""
    message = await ctx.source.read(env)
    message.event_id = env.event_id
    if ctx.held:
        message.seed = None  # the store has the thread already
    message.persona = ctx.persona
    message.model = ctx.model or message.model
    message.notes.extend(ctx.notes)
    ctx.message = message
    await next()


async def hand_over(env: Envelope, ctx: Context, next: Next) -> None:
    """The engine answers; from here on it tells the person about any failure itself."""
    assert ctx.message is not None, "translate runs before hand_over"
    ctx.sink = ctx.source.reply(env)
    ctx.usage = await ctx.engine.handle(ctx.message, ctx.sink)
    await next()


def _command_text(text: str) -> str:
    return " ".join(re.sub(r"[.!]+$", "", text.strip().lower()).split())


STEPS: tuple[Step, ...] = (
    refuse_while_draining,
    ignore_bots_and_housekeeping,
    addressed,
    claim_once,
    policy,
    intake_commands,
    translate,
    hand_over,
)
