"""The intake's policy step: who may use Parley here, with which persona, within which caps.

It runs after the claim (so a refusal is told once per message) and before anything is
fetched. A refused message makes no model call and no public reply: its author is told
privately, once per place and day. A message over a cap is answered with the cap, the
use and the reset time, in the thread (it's the asker's own business; nobody else's
message is refused). Otherwise the turn's estimated cost is reserved against every cap,
the persona (and a downgraded model near a cap) rides on the message to the engine, and
after the answer the reservation is settled with the real usage, or given back.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from bot.errors import StoreUnavailable
from bot.intake.envelope import Envelope
from bot.intake.pipeline import Context, Next, Stop
from bot.llm.types import Usage
from bot.policy import Persona, Place
from bot.tokens import estimate_tokens

log = logging.getLogger(__name__)

# What a turn reserves for its answer when the policy sets no `max_tokens`; the real
# usage replaces the estimate after the answer.
DEFAULT_ANSWER_TOKENS = 4096
DISCORD_DM_WORKSPACE = "dm"  # how a Discord DM's ConversationKey names its workspace
WHERE = {
    "default": "here",
    "workspace": "in this workspace",
    "channel": "in this channel",
    "role": "with your role",
    "user": "for your account",
}


def denied_text(reason: str | None) -> str:
    where = WHERE.get(reason or "", "here")
    return (
        f"Parley isn't available {where}: the operator's policy doesn't allow it. "
        "Ask the people who run Parley if you think that's a mistake."
    )


def place_of(env: Envelope) -> Place:
    """Where `env` was written, as the policy sees it: a thread is its channel's place,
    a DM has no channel layer, a Discord DM no workspace."""
    workspace = env.key.workspace
    if env.platform == "discord" and env.is_dm and workspace == DISCORD_DM_WORKSPACE:
        workspace = ""
    return Place(
        platform=env.platform,
        workspace=workspace,
        channel=env.key.channel,
        user=env.author_id,
        roles=env.roles,
        is_dm=env.is_dm,
    )


def estimate(persona: Persona, text: str) -> int:
    """A turn's cost before it runs: the system prompt, the message, the longest answer."""
    answer = persona.generation.max_tokens or DEFAULT_ANSWER_TOKENS
    return estimate_tokens(persona.system_prompt) + estimate_tokens(text) + answer


async def policy(env: Envelope, ctx: Context, next: Next) -> None:
    """Access, persona and quota, as the operator's policy file says (`BOT_POLICY_FILE`)."""
    governance = ctx.engine.governance
    if governance is None:
        await next()
        return
    place = place_of(env)
    decision = governance.check_access(place)
    if not decision.allowed:
        ctx.engine.metrics.policy_denied.labels(decision.reason or "default").inc()
        try:
            first = await governance.notices.first(place)
        except StoreUnavailable:
            first = True  # better told twice than left wondering
        if first or env.is_command:  # a command always gets its answer
            await ctx.source.tell_privately(env, denied_text(decision.reason))
        raise Stop("policy_denied")
    persona = governance.persona(place)
    reservation = await governance.reserve(place, estimate(persona, env.text))
    ctx.persona = persona
    if reservation.model is not None:  # near a cap: the cheaper model beats any choice
        ctx.persona = replace(persona, model=reservation.model)
        ctx.model = reservation.model
        ctx.notes.append(reservation.note or "")
    try:
        await next()
    finally:
        try:
            await reservation.settle(ctx.usage or Usage())  # no usage: given back
        except StoreUnavailable as exc:
            log.warning("could not settle the quota of %s: %s", env.event_id, exc)
