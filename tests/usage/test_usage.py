"""Usage metering and quotas against a real Redis: counters, caps across replicas, resets."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr
from redis.crc import key_slot

from bot.conversation import ConversationKey, IncomingMessage
from bot.engine import Engine, EngineConfig
from bot.errors import QuotaExceeded
from bot.llm.client import ChatClient
from bot.llm.types import Usage
from bot.metrics import Metrics
from bot.policy import Base, Place, PolicySource
from bot.settings import Limits
from bot.store import ConversationStore
from bot.usage import Governance, QuotaLedger, UsageMeter, read_daily_totals, read_usage
from bot.usage.meter import DIMENSIONS, usage_key
from tests.fakes.llm_server import FakeLLM, Reply
from tests.test_engine import RecordingSink

PRICES = "prices:\n  gpt-5.5: {prompt: 1.25, completion: 10.0, cached: 0.125}\n"
HERE = Place("slack", "T1", "C1", "U1")


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def policy_source(tmp_path: Path, text: str) -> PolicySource:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    source = PolicySource(path, Base())
    source.load()
    return source


@pytest.fixture
async def second_client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    """Another connection pool, as a second replica has."""
    client: aioredis.Redis = aioredis.from_url(redis_url)
    yield client
    await client.aclose()


async def test_every_answer_is_counted_per_day_and_dimension_with_its_cost(
    redis_client: aioredis.Redis, tmp_path: Path
) -> None:
    clock = Clock(datetime(2026, 11, 30, 23, 59, tzinfo=UTC))
    source = policy_source(tmp_path, PRICES)
    meter = UsageMeter(redis_client, lambda: source.policy.prices, clock=clock)
    key = ConversationKey("slack", "T1", "C1", "1700.1")
    used = Usage(prompt_tokens=1000, completion_tokens=500, reasoning_tokens=200, cached_tokens=400)
    await meter.record(key, "U1", "gpt-5.5", used)
    await meter.record(key, "U2", "gpt-5.5", Usage(prompt_tokens=10, estimated=True))
    clock.now += timedelta(minutes=2)  # the next day
    await meter.record(key, "U1", "other-model", Usage(prompt_tokens=7, completion_tokens=3))

    day1 = await read_usage(redis_client, ["2026-11-30"], "user")
    assert [r.key for r in day1] == ["slack:U1", "slack:U2"]
    u1 = day1[0]
    assert (u1.requests, u1.prompt_tokens, u1.completion_tokens) == (1, 1000, 500)
    assert (u1.reasoning_tokens, u1.cached_tokens) == (200, 400)
    assert u1.cost_usd == pytest.approx((600 * 1.25 + 400 * 0.125 + 500 * 10.0) / 1e6)

    both = await read_usage(redis_client, ["2026-11-30", "2026-12-01"], "model")
    assert {r.key: r.requests for r in both} == {"gpt-5.5": 2, "other-model": 1}
    assert both[-1].cost_usd == 0  # no price for it
    channel = await read_usage(redis_client, ["2026-11-30", "2026-12-01"], "channel")
    assert [(r.key, r.requests, r.prompt_tokens) for r in channel] == [("slack:C1", 3, 1017)]
    assert [r.key for r in await read_usage(redis_client, ["2026-12-01"], "workspace")] == [
        "slack:T1"
    ]
    day1_users = usage_key("parley:", "2026-11-30", "user")
    assert await redis_client.hget(day1_users, "slack:U2|estimated") == b"1"

    totals = await read_daily_totals(redis_client, ["2026-11-29", "2026-11-30", "2026-12-01"])
    assert [(t.key, t.requests) for t in totals] == [
        ("2026-11-29", 0),
        ("2026-11-30", 2),
        ("2026-12-01", 1),
    ]

    keys = [usage_key("parley:", "2026-11-30", d) for d in DIMENSIONS]
    assert len({key_slot(k.encode()) for k in keys}) == 1  # one script, one Cluster slot
    ttl = await redis_client.ttl(keys[0])
    assert 90 * 86400 < ttl <= 91 * 86400


async def test_a_redis_failure_while_recording_is_logged_not_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    dead: aioredis.Redis = aioredis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=1)
    meter = UsageMeter(dead, dict)
    await meter.record(ConversationKey("slack", "T", "C", "t"), "U", "m", Usage(prompt_tokens=1))
    assert "could not record usage" in caplog.text
    await dead.aclose()


async def test_two_replicas_at_the_cap_pass_at_most_one_reservation(
    redis_client: aioredis.Redis, second_client: aioredis.Redis, tmp_path: Path
) -> None:
    source = policy_source(tmp_path, "default: {quota: {user_tokens_per_day: 10000}}\n")
    clock = Clock(datetime(2026, 11, 30, 12, tzinfo=UTC))
    replicas = [QuotaLedger(c, source, clock=clock) for c in (redis_client, second_client)]
    warm = await replicas[0].reserve(HERE, 9000)
    await warm.settle(Usage(prompt_tokens=9500))  # 500 left

    async def attempt(ledger: QuotaLedger) -> bool:
        try:
            await ledger.reserve(HERE, 800)
        except QuotaExceeded:
            return False
        return True

    admitted = await asyncio.gather(*(attempt(replicas[i % 2]) for i in range(40)))
    assert sum(admitted) == 1
    counters = [k async for k in redis_client.scan_iter("parley:quota:*")]
    assert len(counters) == 1
    assert int(await redis_client.get(counters[0])) == 9500 + 800  # over by one reservation


async def test_settle_replaces_the_estimate_and_release_gives_it_back(
    redis_client: aioredis.Redis, tmp_path: Path
) -> None:
    source = policy_source(
        tmp_path,
        "default:\n  quota: {user_tokens_per_day: 100000, channel_tokens_per_day: 100000,"
        " workspace_tokens_per_day: 100000}\n",
    )
    ledger = QuotaLedger(redis_client, source, clock=Clock(datetime(2026, 11, 30, tzinfo=UTC)))
    first = await ledger.reserve(HERE, 5000)
    await first.settle(Usage(prompt_tokens=1200, completion_tokens=300))
    await first.settle(Usage(prompt_tokens=99999))  # only the first settle counts
    second = await ledger.reserve(HERE, 5000)
    await second.release()
    keys = sorted([k.decode() async for k in redis_client.scan_iter("parley:quota:*")])
    assert [k.rsplit(":", 3)[1] for k in keys] == ["channel", "user", "workspace"]
    assert [int(await redis_client.get(k)) for k in keys] == [1500, 1500, 1500]
    assert len({key_slot(k.encode()) for k in keys}) == 1  # one script, one Cluster slot


async def test_over_a_cap_the_message_names_it_and_it_resets_at_midnight(
    redis_client: aioredis.Redis, tmp_path: Path
) -> None:
    source = policy_source(tmp_path, "default: {quota: {channel_tokens_per_day: 1000}}\n")
    clock = Clock(datetime(2026, 11, 30, 22, 30, tzinfo=UTC))
    ledger = QuotaLedger(redis_client, source, clock=clock)
    turn = await ledger.reserve(HERE, 100)
    await turn.settle(Usage(prompt_tokens=1000, completion_tokens=234))
    with pytest.raises(QuotaExceeded) as caught:
        await ledger.reserve(Place("slack", "T1", "C1", "someone-else"), 100)
    assert caught.value.user_message == (
        "This channel's daily limit of 1,000 tokens is used up (1,234 used today). "
        "It resets at 00:00 UTC, in 1 h 30 min."
    )
    await ledger.reserve(Place("slack", "T1", "C2", "U1"), 100)  # another channel is fine
    clock.now = datetime(2026, 11, 30, 23, 59, 59, tzinfo=UTC)
    with pytest.raises(QuotaExceeded):
        await ledger.reserve(HERE, 100)
    clock.now = datetime(2026, 12, 1, 0, 0, 0, tzinfo=UTC)
    await ledger.reserve(HERE, 100)


async def test_reset_hour_utc_moves_the_quota_day(
    redis_client: aioredis.Redis, tmp_path: Path
) -> None:
    source = policy_source(
        tmp_path, "default: {quota: {user_tokens_per_day: 50, reset_hour_utc: 6}}\n"
    )
    clock = Clock(datetime(2026, 12, 1, 5, 0, tzinfo=UTC))
    ledger = QuotaLedger(redis_client, source, clock=clock)
    await ledger.reserve(HERE, 60)  # counted in the day that began 2026-11-30 06:00
    clock.now = datetime(2026, 12, 1, 5, 59, 59, tzinfo=UTC)
    with pytest.raises(QuotaExceeded) as caught:
        await ledger.reserve(HERE, 1)
    assert "Your daily limit of 50 tokens" in caught.value.user_message
    assert "resets at 06:00 UTC, in 1 min" in caught.value.user_message
    clock.now = datetime(2026, 12, 1, 6, 0, tzinfo=UTC)
    await ledger.reserve(HERE, 1)


async def test_past_downgrade_at_the_cheaper_model_answers_and_says_so(
    redis_client: aioredis.Redis, tmp_path: Path
) -> None:
    source = policy_source(
        tmp_path,
        "default:\n  quota: {user_tokens_per_day: 1000, workspace_tokens_per_day: 100000,"
        " downgrade_model: gpt-5.1, downgrade_at: 0.5}\n",
    )
    ledger = QuotaLedger(redis_client, source, clock=Clock(datetime(2026, 11, 30, tzinfo=UTC)))
    below = await ledger.reserve(HERE, 500)
    assert below.model is None and below.note is None
    past = await ledger.reserve(HERE, 100)
    assert past.model == "gpt-5.1"
    assert past.note == "Answered by gpt-5.1: your daily token limit is 50% used."
    await past.settle(Usage(prompt_tokens=500))
    with pytest.raises(QuotaExceeded):  # the cap itself still holds
        await ledger.reserve(HERE, 1)


async def test_without_caps_a_reservation_touches_no_redis(tmp_path: Path) -> None:
    dead: aioredis.Redis = aioredis.from_url("redis://127.0.0.1:1/0")
    ledger = QuotaLedger(dead, PolicySource(None, Base()))
    reservation = await ledger.reserve(HERE, 10**9)
    await reservation.settle(Usage(prompt_tokens=5))
    assert reservation.model is None
    # Only a workspace cap, and a Discord DM has no workspace: nothing to reserve either.
    only_workspace = policy_source(tmp_path, "default: {quota: {workspace_tokens_per_day: 9}}")
    ledger = QuotaLedger(dead, only_workspace)
    dm = Place("discord", "", "D1", "U1", is_dm=True)
    assert (await ledger.reserve(dm, 10**9)).amount == 0
    await dead.aclose()


async def test_the_engine_meters_each_finished_answer(
    fake_llm: FakeLLM, redis_client: aioredis.Redis, tmp_path: Path
) -> None:
    source = policy_source(tmp_path, "prices:\n  gpt-5.5: {prompt: 2.0, completion: 8.0}\n")
    llm = ChatClient(api_key=SecretStr(fake_llm.api_key or ""), base_url=fake_llm.base_url)
    engine = Engine(
        store=ConversationStore(redis_client, Limits()),
        llm=llm,
        config=EngineConfig(model="gpt-5.5"),
        governance=Governance.build(
            source, redis_client, Metrics(), clock=Clock(datetime(2026, 5, 1, tzinfo=UTC))
        ),
    )
    usage = {
        "prompt_tokens": 120,
        "completion_tokens": 30,
        "prompt_tokens_details": {"cached_tokens": 20},
        "completion_tokens_details": {"reasoning_tokens": 10},
    }
    fake_llm.enqueue(Reply("Hello.", usage=usage))
    sink = RecordingSink()
    key = ConversationKey("slack", "T1", "C1", "1700.2")
    await engine.handle(IncomingMessage(key=key, text="hi", author_id="U7"), sink)
    await llm.aclose()
    assert sink.final is not None and sink.final.text == "Hello."
    today = "2026-05-01"
    [user] = await read_usage(redis_client, [today], "user")
    assert (user.key, user.requests, user.prompt_tokens, user.completion_tokens) == (
        "slack:U7",
        1,
        120,
        30,
    )
    assert (user.reasoning_tokens, user.cached_tokens) == (10, 20)
    assert user.cost_usd == pytest.approx((120 * 2.0 + 30 * 8.0) / 1e6)
    [model] = await read_usage(redis_client, [today], "model")
    assert model.key == "gpt-5.5"


async def test_a_user_sees_their_own_use_today_and_their_caps(
    redis_client: aioredis.Redis, tmp_path: Path
) -> None:
    source = policy_source(
        tmp_path,
        "default: {quota: {user_tokens_per_day: 5000, reset_hour_utc: 4}}\n"
        'channels: {"slack:C1": {quota: {channel_tokens_per_day: 90000}}}\n',
    )
    governance = Governance.build(
        source, redis_client, Metrics(), clock=Clock(datetime(2026, 11, 30, 12, tzinfo=UTC))
    )
    key = ConversationKey("slack", "T1", "C1", "t")
    for prompt in (1000, 234):
        turn = await governance.ledger.reserve(HERE, 10)
        used = Usage(prompt_tokens=prompt, completion_tokens=100)
        await turn.settle(used)
        await governance.meter.record(key, "U1", "gpt-5.5", used)
    assert await governance.own_usage(HERE) == (
        "Today (UTC) you used 1,434 tokens in 2 answers. "
        "Your daily cap: 5,000 tokens, 3,566 left. "
        "This channel's daily cap: 90,000 tokens, 88,566 left. Caps reset at 04:00 UTC."
    )
    newcomer = Place("slack", "T1", "C2", "U9", is_dm=True)
    assert await governance.own_usage(newcomer) == (
        "Today (UTC) you used 0 tokens in 0 answers. "
        "Your daily cap: 5,000 tokens, 5,000 left. Caps reset at 04:00 UTC."
    )


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    cap=st.integers(1, 5000),
    already=st.integers(0, 6000),
    amounts=st.lists(st.integers(1, 3000), min_size=1, max_size=12),
)
async def test_concurrent_reservations_never_pass_a_cap_by_more_than_one(
    redis_client: aioredis.Redis, tmp_path: Path, cap: int, already: int, amounts: list[int]
) -> None:
    prefix = f"parley-prop:{uuid.uuid4().hex}:"
    source = policy_source(tmp_path, f"default: {{quota: {{user_tokens_per_day: {cap}}}}}")
    ledger = QuotaLedger(redis_client, source, prefix=prefix)
    if already:
        await (await ledger.reserve(HERE, already)).settle(Usage(prompt_tokens=already))

    async def attempt(amount: int) -> int:
        try:
            await ledger.reserve(HERE, amount)
        except QuotaExceeded as exc:
            assert exc.used >= cap
            return 0
        return amount

    admitted = [a for a in await asyncio.gather(*map(attempt, amounts)) if a]
    [counter] = [k async for k in redis_client.scan_iter(f"{prefix}quota:*")]
    total = int(await redis_client.get(counter))
    assert total == already + sum(admitted)
    if admitted:
        assert total < cap + max(admitted)  # past the cap by one turn's reservation at most
    await redis_client.delete(counter)
