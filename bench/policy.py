"""What the policy and quota steps add to a turn, measured one turn at a time.

A policy with caps at every scope, 200 channels, 50 roles and 1,000 users; each turn is
a different place (user, channel, roles) drawn at random, so the resolution cache helps
only as much as real traffic would let it. Per turn:

- policy: `check_access` and `persona` (the file's layers resolved for the place);
- reserve: `QuotaLedger.reserve` against three caps (one Lua script on Redis);
- settle: `Reservation.settle` with the real usage (one more script), after the answer;
- meter: `UsageMeter.record` (one script), after the answer.

The policy step and `reserve` sit before the model call; `settle` and `meter` after it,
when the answer is already shown.

    python -m bench.policy [--turns 5000] [--redis-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import tempfile
import time
from pathlib import Path

import redis.asyncio as aioredis

from bench.stats import percentile
from bot.conversation import ConversationKey
from bot.llm.types import Usage
from bot.metrics import Metrics
from bot.policy import Base, Place, PolicySource
from bot.usage import Governance

CHANNELS, ROLES, USERS = 200, 50, 1000


def policy_text() -> str:
    lines = [
        "default:",
        "  allow: true",
        "  quota: {user_tokens_per_day: 1000000000, channel_tokens_per_day: 1000000000,",
        "          workspace_tokens_per_day: 1000000000, downgrade_model: mini}",
        "channels:",
        *(f'  "slack:C{n}": {{model: m{n % 3}, tools: [current_time]}}' for n in range(CHANNELS)),
        "roles:",
        *(f'  "slack:R{n}": {{temperature: 0.{n % 9}}}' for n in range(ROLES)),
        "users:",
        *(f'  "slack:U{n}": {{allow: {str(n % 97 != 0).lower()}}}' for n in range(USERS)),
        "prices:",
        "  m0: {prompt: 1.25, completion: 10.0, cached: 0.125}",
    ]
    return "\n".join(lines) + "\n"


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.3f}"


async def run(turns: int, redis_url: str) -> None:
    redis: aioredis.Redis = aioredis.from_url(redis_url)
    await redis.flushdb()
    folder = tempfile.TemporaryDirectory()
    path = Path(folder.name) / "policy.yaml"
    path.write_text(policy_text())
    source = PolicySource(path, Base())
    source.load()
    governance = Governance.build(source, redis, Metrics())
    rng = random.Random(10)
    times: dict[str, list[float]] = {"policy": [], "reserve": [], "settle": [], "meter": []}
    usage = Usage(prompt_tokens=1200, completion_tokens=300, cached_tokens=200)
    for _ in range(turns):
        user, channel = rng.randrange(USERS * 2), rng.randrange(CHANNELS * 2)
        roles = tuple(f"R{rng.randrange(ROLES * 2)}" for _ in range(rng.randrange(4)))
        place = Place("slack", "T1", f"C{channel}", f"U{user}", roles)

        key = ConversationKey("slack", "T1", place.channel, "t")
        t0 = time.perf_counter()
        source.check_access(place)
        source.persona(place)
        t1 = time.perf_counter()
        reservation = await governance.ledger.reserve(place, 4000)
        t2 = time.perf_counter()
        await reservation.settle(usage)
        t3 = time.perf_counter()
        await governance.meter.record(key, place.user, "m0", usage)
        t4 = time.perf_counter()
        for name, spent in zip(times, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
            times[name].append(spent)
    await redis.flushdb()
    await redis.aclose()
    folder.cleanup()
    print(f"{turns} turns, one at a time, Redis at {redis_url}\n")
    print("| step | p50 ms | p99 ms |\n| --- | ---: | ---: |")
    for name, samples in times.items():
        print(f"| {name} | {_ms(percentile(samples, 50))} | {_ms(percentile(samples, 99))} |")
    before = [a + b for a, b in zip(times["policy"], times["reserve"], strict=True)]
    print(
        f"| policy + reserve (before the model call) | {_ms(percentile(before, 50))} "
        f"| {_ms(percentile(before, 99))} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--turns", type=int, default=5000)
    parser.add_argument(
        "--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/14")
    )
    args = parser.parse_args()
    asyncio.run(run(args.turns, args.redis_url))


if __name__ == "__main__":
    main()
