"""Ratings of answers in a real Redis: one vote per person and answer, counts, comments."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import redis.asyncio as aioredis

from bot.metrics import Metrics
from bot.policy import Base, Place, Policy, parse_policy
from bot.usage.feedback import MAX_COMMENT_CHARS, FeedbackBook

ANA = Place("slack", "T1", "C1", "U1")
BEN = Place("slack", "T1", "C1", "U2")


def sample(metrics: Metrics, rating: str, model: str) -> float:
    value = metrics.registry.get_sample_value(
        "parley_feedback_total", {"rating": rating, "model": model}
    )
    return value or 0.0


async def test_one_vote_per_person_and_answer_that_can_move(
    redis_client: aioredis.Redis,
) -> None:
    metrics = Metrics()
    book = FeedbackBook(redis_client, metrics, clock=lambda: datetime(2026, 11, 30, 9, tzinfo=UTC))
    rate = {"model": "gpt-5.5", "persona": "channels:slack:C1"}
    assert await book.rate(answer_id="a1", place=ANA, rating="up", **rate)
    assert not await book.rate(answer_id="a1", place=ANA, rating="up", **rate)
    assert await book.rate(answer_id="a1", place=BEN, rating="up", **rate)
    assert await book.rate(
        answer_id="a2", place=ANA, rating="up", model="gpt-5.1", persona="default"
    )
    assert await book.rate(answer_id="a1", place=ANA, rating="down", comment=" too long ", **rate)

    counts = await book.read(["2026-11-29", "2026-11-30"])
    assert counts.rows("model") == [("gpt-5.5", 1, 1), ("gpt-5.1", 1, 0)]
    assert counts.rows("persona") == [("channels:slack:C1", 1, 1), ("default", 1, 0)]
    assert counts.rows("channel") == [("slack:C1", 2, 1)]
    assert counts.comments == [
        {
            "at": "2026-11-30T09:00:00+00:00",
            "channel": "slack:C1",
            "model": "gpt-5.5",
            "rating": "down",
            "comment": "too long",
        }
    ]
    assert sample(metrics, "up", "gpt-5.5") == 2  # ana's first vote and ben's
    assert sample(metrics, "down", "gpt-5.5") == 1  # ana's moved vote


async def test_comments_are_bounded_and_ratings_checked(redis_client: aioredis.Redis) -> None:
    book = FeedbackBook(redis_client, Metrics(), clock=lambda: datetime(2026, 1, 2, tzinfo=UTC))
    await book.rate(
        answer_id="a", place=ANA, model="m", persona="p", rating="down", comment="x" * 10**6
    )
    [comment] = (await book.read(["2026-01-02"])).comments
    assert len(comment["comment"]) == MAX_COMMENT_CHARS
    with pytest.raises(ValueError, match="rating must be one of"):
        await book.rate(answer_id="a", place=ANA, model="m", persona="p", rating="meh")


def test_the_persona_is_named_after_the_layer_that_set_the_system_prompt() -> None:
    policy = Policy(
        parse_policy(
            'default: {system_prompt: "general"}\n'
            'channels: {"slack:C1": {system_prompt: "support"}}\n'
            'users: {"slack:U1": {model: x}}\n'
        ),
        Base(),
    )
    assert policy.persona(ANA).name == "channels:slack:C1"
    assert policy.persona(Place("slack", "T1", "C2", "U1")).name == "default"
    assert Policy(base=Base()).persona(ANA).name == "settings"
