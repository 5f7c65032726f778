"""The policy, the usage meter and the quota ledger of one process, built together.

They share the conversation store's Redis client (one pool per process) and the live
policy (prices for the meter, caps for the ledger).
"""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as aioredis

from bot.policy import PolicySource
from bot.settings import Settings
from bot.usage.clock import Clock, utc_now
from bot.usage.meter import UsageMeter
from bot.usage.quota import QuotaLedger


@dataclass(frozen=True, slots=True)
class Governance:
    policy: PolicySource
    meter: UsageMeter
    ledger: QuotaLedger

    @classmethod
    def build(
        cls, policy: PolicySource, redis: aioredis.Redis, *, clock: Clock = utc_now
    ) -> Governance:
        return cls(
            policy=policy,
            meter=UsageMeter(redis, lambda: policy.policy.prices, clock=clock),
            ledger=QuotaLedger(redis, policy, clock=clock),
        )

    @classmethod
    def from_settings(cls, settings: Settings, redis: aioredis.Redis) -> Governance:
        """Raises `PolicyFileError` when `BOT_POLICY_FILE` is bad."""
        return cls.build(PolicySource.from_settings(settings), redis)
