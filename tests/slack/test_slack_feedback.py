"""👍/👎 under Slack answers, pressed through the real slack-bolt app."""

from __future__ import annotations

from datetime import UTC, datetime

import redis.asyncio as aioredis

from bot.intake.feedback import MAX_VALUE, Rating, decode
from tests.fakes.llm_server import FakeLLM
from tests.fakes.slack_api import FakeSlack, Message
from tests.slack.conftest import SlackBot, wait_answer
from tests.slack.test_slack_policy import ALICE, BOB, MENTION, SUPPORT, Start, mention, start
from tests.waiting import until

__all__ = ["start"]  # the fixture

POLICY = f'channels:\n  "slack:{SUPPORT}": {{system_prompt: "You are the support desk."}}\n'


def rated(bot: SlackBot, rating: str, model: str) -> float:
    value = bot.service.metrics.registry.get_sample_value(
        "parley_feedback_total", {"rating": rating, "model": model}
    )
    return value or 0.0


def with_buttons(fake: FakeSlack, channel: str) -> list[Message]:
    return [m for m in fake.bot_messages(channel) if m.blocks]


async def test_a_streamed_answer_carries_buttons_that_count_a_vote(
    start: Start, fake_slack: FakeSlack, fake_llm: FakeLLM, redis_client: aioredis.Redis
) -> None:
    async with start(POLICY) as bot:
        thread = await mention(bot, SUPPORT, "help me")
        await wait_answer(fake_slack, thread, channel=SUPPORT)
        (answer,) = with_buttons(fake_slack, SUPPORT)
        assert answer.text == "You said: Alice: help me"  # the buttons sit on the answer
        (stop,) = fake_slack.calls_to("chat.stopStream")
        assert stop.args["blocks"][0]["type"] == "context_actions"

        await bot.post(fake_slack.press_feedback(answer, user=ALICE, positive=True))
        await fake_slack.wait_for(lambda: rated(bot, "up", "gpt-5.5") == 1, what="the 👍")
        await bot.post(fake_slack.press_feedback(answer, user=ALICE, positive=False))
        await fake_slack.wait_for(lambda: rated(bot, "down", "gpt-5.5") == 1, what="the 👎")
        await bot.post(fake_slack.press_feedback(answer, user=BOB, positive=False))
        await fake_slack.wait_for(lambda: rated(bot, "down", "gpt-5.5") == 2, what="Bob's 👎")
        # Each 👎 opens the short "what went wrong?" form; Bob fills his in.
        await fake_slack.wait_for(lambda: len(fake_slack.views) == 2, what="the forms")
        form = fake_slack.views[-1]
        assert form["title"]["text"] == "What went wrong?"
        await bot.post(fake_slack.submit_view(form, user=BOB, values={"comment": "Too vague."}))

        governance = bot.service.engine.governance
        assert governance is not None
        today = [datetime.now(UTC).date().isoformat()]

        async def commented() -> bool:
            return bool((await governance.feedback.read(today)).comments)

        await until(commented)
        counts = await governance.feedback.read(today)
    # Alice moved her vote: one person, one vote per answer.
    assert counts.rows("model") == [("gpt-5.5", 0, 2)]
    assert counts.rows("persona") == [(f"channels:slack:{SUPPORT}", 0, 2)]
    assert counts.rows("channel") == [(f"slack:{SUPPORT}", 0, 2)]
    [comment] = counts.comments
    assert comment["comment"] == "Too vague." and comment["rating"] == "down"
    assert comment["channel"] == f"slack:{SUPPORT}" and comment["model"] == "gpt-5.5"


async def test_an_answer_not_streamed_carries_its_buttons_in_blocks(
    start: Start, fake_slack: FakeSlack, fake_llm: FakeLLM, redis_client: aioredis.Redis
) -> None:
    async with start("{}") as bot:
        _, body = fake_slack.person_says(
            "D0ALICE", "hi in private", user=ALICE, kind="message", channel_type="im"
        )
        await bot.post(body)
        await fake_slack.wait_for(lambda: with_buttons(fake_slack, "D0ALICE"), what="buttons")
        (answer,) = fake_slack.bot_messages("D0ALICE")
        assert answer.text == "You said: Alice: hi in private" and answer.markdown
        assert [b["type"] for b in answer.blocks] == ["markdown", "context_actions"]
        await bot.post(fake_slack.press_feedback(answer, user=ALICE, positive=True))
        await fake_slack.wait_for(lambda: rated(bot, "up", "gpt-5.5") == 1, what="the 👍")


async def test_help_and_refusals_carry_no_buttons(
    start: Start, fake_slack: FakeSlack, fake_llm: FakeLLM, redis_client: aioredis.Redis
) -> None:
    async with start("{}") as bot:
        _, body = fake_slack.person_says(SUPPORT, MENTION, user=ALICE)
        await bot.post(body)
        await fake_slack.wait_for(lambda: fake_slack.bot_messages(SUPPORT), what="the help")
        thread = await mention(bot, SUPPORT, "a question")
        await wait_answer(fake_slack, thread, channel=SUPPORT)
    assert len(with_buttons(fake_slack, SUPPORT)) == 1


def test_a_button_value_is_bounded_and_read_back() -> None:
    long = Rating("up", "m" * 300, "p|" * 300)
    value = long.encode()
    assert len(value) <= MAX_VALUE
    back = decode(value)
    assert back is not None and back.rating == "up" and back.model == "m" * 40
    for junk in (None, 7, "", "up", "sideways|m|p", "up||p", "x" * 500, "up|m|p|q"):
        assert decode(junk) is None
