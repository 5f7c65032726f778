"""The policy, usage meter, quota ledger and feedback book of one process, built together.

The intake's policy step calls `check_access`, `persona` and `reserve` (then
`Reservation.settle` with the answer's usage, or `release` when no model was called);
the engine calls `meter.record` when an answer is finished; adapters call
`feedback.rate` when someone presses 👍 or 👎.

They share the conversation store's Redis client (one pool per process) and the live
policy (prices for the meter, caps for the ledger).
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.errors import QUOTA_OWNERS
from bot.metrics import Metrics
from bot.policy import Decision, Persona, Place, PolicySource
from bot.settings import Settings
from bot.store.client import Client
from bot.usage.clock import Clock, day_of, quota_window, utc_now
from bot.usage.feedback import FeedbackBook
from bot.usage.meter import UsageMeter
from bot.usage.notices import DenialNotices
from bot.usage.quota import QuotaLedger, Reservation
from bot.usage.report import read_one


@dataclass(frozen=True, slots=True)
class Governance:
    """Operators' controls for one process: policy, usage meter, quotas, feedback."""

    policy: PolicySource
    meter: UsageMeter
    ledger: QuotaLedger
    feedback: FeedbackBook
    notices: DenialNotices

    @classmethod
    def build(
        cls,
        policy: PolicySource,
        redis: Client,
        metrics: Metrics,
        *,
        clock: Clock = utc_now,
    ) -> Governance:
        return cls(
            policy=policy,
            meter=UsageMeter(redis, lambda: policy.policy.prices, clock=clock),
            ledger=QuotaLedger(redis, policy, clock=clock),
            feedback=FeedbackBook(redis, metrics, clock=clock),
            notices=DenialNotices(redis),
        )

    def check_access(self, place: Place) -> Decision:
        """Whether `place` may use the bot (before any model call)."""
        return self.policy.check_access(place)

    def persona(self, place: Place) -> Persona:
        """The model, system prompt, generation parameters and tools for `place`."""
        return self.policy.persona(place)

    async def reserve(self, place: Place, estimate: int) -> Reservation:
        """Hold a turn's estimated tokens against the caps; raises `QuotaExceeded`."""
        return await self.ledger.reserve(place, estimate)

    async def own_usage(self, place: Place) -> str:
        """What a user's `/parley usage` (Discord `/usage`) shows them: today and their cap."""
        now = self.meter.clock()
        row = await read_one(self.meter.redis, day_of(now), "user", place.scoped("user"))
        text = (
            f"Today (UTC) you used {row.tokens:,} tokens in {row.requests:,} "
            f"answer{'s' if row.requests != 1 else ''}."
        )
        for scope, used, cap in await self.ledger.headroom(place):
            left = max(cap - used, 0)
            text += f" {QUOTA_OWNERS[scope].capitalize()} daily cap: {cap:,} tokens, {left:,} left."
        rule = self.policy.effective(place).quota
        if rule.capped:
            _, resets_at = quota_window(now, rule.reset_hour_utc)
            text += f" Caps reset at {resets_at:%H:%M} UTC."
        return text

    @classmethod
    def from_settings(
        cls, settings: Settings, redis: Client, metrics: Metrics
    ) -> Governance:
        """Raises `PolicyFileError` when `BOT_POLICY_FILE` is bad."""
        return cls.build(PolicySource.from_settings(settings), redis, metrics)
