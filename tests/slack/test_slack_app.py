"""End to end: signed Slack requests into `parley serve`, answers read from the fake Slack.

The real slack-bolt AsyncApp runs inside `bot.service.serve.Service`, with the real engine, Redis
and chat-completions client; only Slack's Web API and the model are fakes.
"""

from __future__ import annotations

import asyncio
import io
import json

import pytest
from PIL import Image
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse

from adapters.slack import status
from adapters.slack.platform import SlackPlatform
from adapters.slack.sink import FIRST_UPDATE_DELAY, MESSAGE_LIMIT, SlackSink
from adapters.slack.status import THINKING
from bot.intake import Envelope, Source
from bot.text.chunking import split_message
from tests.fakes.llm_server import Error, Reply
from tests.fakes.slack_api import BOT_ID, BOT_USER_ID
from tests.slack.conftest import SlackBot, wait_answer

CHANNEL = "C0GENERAL"
ALICE = "U0ALICE"
BOB = "U0BOB"
MENTION = f"<@{BOT_USER_ID}>"


@pytest.fixture(autouse=True)
def people(slack_bot: SlackBot) -> None:
    slack_bot.fake.add_user(ALICE, "Alice")
    slack_bot.fake.add_user(BOB, "Bob")


async def ask(bot: SlackBot, text: str, *, thread_ts: str | None = None, **kwargs: object) -> str:
    """Mention the bot in CHANNEL; the thread its answer goes to."""
    message, body = bot.fake.person_says(
        CHANNEL, f"{MENTION} {text}", user=ALICE, thread_ts=thread_ts, **kwargs
    )
    status, _, _ = await bot.post(body)
    assert status == 200
    return thread_ts or message.ts


async def answer_in(
    bot: SlackBot, thread: str | None, *, channel: str = CHANNEL, answers: int = 1
) -> str:
    return await wait_answer(bot.fake, thread, channel=channel, answers=answers)


async def settle(bot: SlackBot) -> None:
    """Everything posted before has been handled: a fresh mention got its answer."""
    thread = await ask(bot, "barrier")
    await answer_in(bot, thread)


async def test_mention_is_answered_in_its_thread_once(slack_bot: SlackBot) -> None:
    fake = slack_bot.fake
    message, mention = fake.person_says(CHANNEL, f"{MENTION} hello there", user=ALICE)
    twin = fake.event({**mention["event"], "type": "message", "channel_type": "channel"})
    results = await asyncio.gather(slack_bot.post(mention), slack_bot.post(twin))
    assert [status for status, _, _ in results] == [200, 200]

    assert await answer_in(slack_bot, message.ts) == "You said: Alice: hello there"
    await settle(slack_bot)
    assert len(fake.bot_messages(CHANNEL, message.ts)) == 1
    assert len(slack_bot.llm.requests) == 2  # this question and the barrier
    start = fake.calls_to("chat.startStream")[0].args
    assert start["recipient_user_id"] == ALICE and start["thread_ts"] == message.ts


async def test_a_short_answer_is_posted_whole_in_one_call(
    slack_bot: SlackBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(SlackSink, "first_update_delay", FIRST_UPDATE_DELAY)
    fake = slack_bot.fake
    thread = await ask(slack_bot, "hello there")
    assert await answer_in(slack_bot, thread) == "You said: Alice: hello there"
    answering = [c.method for c in fake.calls if c.args.get("thread_ts") == thread]
    assert answering.count("chat.postMessage") == 1
    assert not [m for m in answering if m.endswith("Stream") or m == "chat.update"]


async def test_follow_up_in_the_thread_is_answered_with_history(slack_bot: SlackBot) -> None:
    fake = slack_bot.fake
    thread = await ask(slack_bot, "my name is Alice")
    await answer_in(slack_bot, thread)
    _, body = fake.person_says(
        CHANNEL, "what is my name?", user=ALICE, thread_ts=thread, kind="message"
    )
    await slack_bot.post(body)

    await answer_in(slack_bot, thread, answers=2)
    history = slack_bot.llm.requests[-1].body["messages"]
    assert [m["role"] for m in history[1:]] == ["user", "assistant", "user"]
    assert history[1]["content"] == "Alice: my name is Alice"
    assert history[3]["content"] == "Alice: what is my name?"
    assert not fake.calls_to("conversations.replies")  # history is in Redis, not Slack


async def test_plain_messages_elsewhere_are_left_alone(slack_bot: SlackBot) -> None:
    fake = slack_bot.fake
    root = fake.add_message(CHANNEL, "a thread without the bot", user=BOB)
    _, in_thread = fake.person_says(
        CHANNEL, "chatter", user=ALICE, thread_ts=root.ts, kind="message"
    )
    _, top = fake.person_says(CHANNEL, "more chatter", user=ALICE, kind="message")
    for body in (in_thread, top):
        assert (await slack_bot.post(body))[0] == 200
    await settle(slack_bot)
    assert len(slack_bot.llm.requests) == 1


async def test_mention_inside_a_thread_seeds_it_from_slack_once(slack_bot: SlackBot) -> None:
    fake = slack_bot.fake
    root = fake.add_message(CHANNEL, "Shall we ship on Friday?", user=BOB)
    fake.add_message(CHANNEL, "I'd rather wait for the fix", user=ALICE, thread_ts=root.ts)
    await ask(slack_bot, "what do you think?", thread_ts=root.ts)
    await answer_in(slack_bot, root.ts)

    history = slack_bot.llm.requests[-1].body["messages"]
    assert [m["content"] for m in history[1:]] == [
        "Bob: Shall we ship on Friday?",
        "Alice: I'd rather wait for the fix",
        "Alice: what do you think?",
    ]
    _, body = fake.person_says(CHANNEL, "and Monday?", user=BOB, thread_ts=root.ts, kind="message")
    await slack_bot.post(body)
    await answer_in(slack_bot, root.ts, answers=2)
    assert len(fake.calls_to("conversations.replies")) == 1
    assert len(slack_bot.llm.requests[-1].body["messages"]) == 6


async def test_direct_message_is_answered(slack_bot: SlackBot) -> None:
    fake = slack_bot.fake
    message, body = fake.person_says(
        "D0ALICE", "hi in private", user=ALICE, kind="message", channel_type="im"
    )
    await slack_bot.post(body)
    assert await answer_in(slack_bot, None, channel="D0ALICE") == "You said: Alice: hi in private"
    assert fake.reactions[("D0ALICE", message.ts)] == set()  # the thinking reaction is gone


async def test_image_reaches_the_model_as_a_data_url(slack_bot: SlackBot) -> None:
    png = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(png, format="PNG")
    image = slack_bot.fake.add_file("red.png", "image/png", png.getvalue())
    pdf = slack_bot.fake.add_file("spec.pdf", "application/pdf", b"%PDF-1.4")
    thread = await ask(slack_bot, "what colour is this?", files=[image, pdf])
    text = await answer_in(slack_bot, thread)

    (url,) = slack_bot.llm.requests[-1].image_urls
    assert url.startswith("data:image/")
    assert text.startswith("You said: Alice: what colour is this? [image]")
    assert "spec.pdf" in text  # the skipped file is noted under the answer


async def test_redelivery_is_acked_and_not_answered_again(slack_bot: SlackBot) -> None:
    message, body = slack_bot.fake.person_says(CHANNEL, f"{MENTION} once please", user=ALICE)
    assert (await slack_bot.post(body))[0] == 200
    await answer_in(slack_bot, message.ts)
    for attempt in (1, 2):
        status, _, _ = await slack_bot.post(body, retry_num=attempt)
        assert status == 200
    await settle(slack_bot)
    assert len(slack_bot.fake.bot_messages(CHANNEL, message.ts)) == 1
    assert len(slack_bot.llm.requests) == 2


async def test_bad_or_stale_signature_is_refused(slack_bot: SlackBot) -> None:
    _, body = slack_bot.fake.person_says(CHANNEL, f"{MENTION} forged", user=ALICE)
    status, _, _ = await slack_bot.post(body, secret="not-the-secret")
    assert status == 401
    raw, headers = slack_bot.fake.signed_request(body)
    headers["X-Slack-Request-Timestamp"] = str(int(headers["X-Slack-Request-Timestamp"]) - 600)
    status, _, _ = await slack_bot.post(raw, headers=headers)
    assert status == 401
    await settle(slack_bot)
    assert len(slack_bot.llm.requests) == 1


async def test_bots_and_housekeeping_are_ignored(slack_bot: SlackBot) -> None:
    fake = slack_bot.fake
    events = [
        {
            "type": "message",
            "channel": "D0ALICE",
            "channel_type": "im",
            "ts": "1.1",
            "user": BOT_USER_ID,
            "bot_id": BOT_ID,
            "text": "my own answer",
        },
        {
            "type": "message",
            "channel": "D0ALICE",
            "channel_type": "im",
            "ts": "1.2",
            "subtype": "bot_message",
            "bot_id": "B0OTHER",
            "text": f"{MENTION} from a bot",
        },
        {
            "type": "app_mention",
            "channel": CHANNEL,
            "ts": "1.3",
            "user": "U0OTHERBOT",
            "bot_id": "B0OTHER",
            "text": f"{MENTION} hi from another bot",
        },
        {
            "type": "message",
            "channel": "D0ALICE",
            "channel_type": "im",
            "ts": "1.4",
            "subtype": "message_changed",
            "message": {"text": "edited"},
        },
        {
            "type": "message",
            "channel": "D0ALICE",
            "channel_type": "im",
            "ts": "1.5",
            "subtype": "message_deleted",
            "deleted_ts": "1.1",
        },
        {"type": "reaction_added", "user": ALICE, "reaction": "tada"},
    ]
    for event in events:
        status, _, _ = await slack_bot.post(fake.event(event))
        assert status == 200
    await settle(slack_bot)
    assert len(slack_bot.llm.requests) == 1


def stopped(bot: SlackBot, reason: str) -> float:
    value = bot.service.metrics.registry.get_sample_value(
        "parley_intake_stopped_total", {"reason": reason}
    )
    return value or 0.0


async def test_the_bots_own_messages_are_stopped_by_the_intake(slack_bot: SlackBot) -> None:
    """Bolt's self-event filter is off, so the intake's ignore step is what drops them,
    even in a thread the bot holds, where a person's reply would be answered."""
    thread = await ask(slack_bot, "start a thread")
    await answer_in(slack_bot, thread)
    in_thread = {"channel": CHANNEL, "channel_type": "channel", "thread_ts": thread}
    own = [
        {**in_thread, "ts": "2.1", "user": BOT_USER_ID, "bot_id": BOT_ID, "text": "my answer"},
        {
            **in_thread,
            "ts": "2.2",
            "subtype": "bot_message",
            "bot_id": BOT_ID,
            "text": "as the app",
        },
        {
            "channel": "D0ALICE",
            "channel_type": "im",
            "ts": "2.3",
            "user": BOT_USER_ID,
            "text": "hi",
        },
    ]
    for event in own:
        status, _, _ = await slack_bot.post(slack_bot.fake.event({"type": "message", **event}))
        assert status == 200
    await slack_bot.fake.wait_for(lambda: stopped(slack_bot, "self") >= len(own), what="stops")
    await settle(slack_bot)
    assert stopped(slack_bot, "self") == len(own)
    assert len(slack_bot.llm.requests) == 2  # the thread's first question and the barrier


async def test_ack_is_immediate_while_the_model_thinks_for_10s(slack_bot: SlackBot) -> None:
    slack_bot.llm.enqueue(Reply(text="slow", first_token_delay=10))
    message, body = slack_bot.fake.person_says(CHANNEL, f"{MENTION} take your time", user=ALICE)
    status, ack_seconds, _ = await slack_bot.post(body)
    assert status == 200
    assert ack_seconds < 3.0
    await slack_bot.fake.wait_for(
        lambda: slack_bot.fake.status(CHANNEL, message.ts) == "is thinking…", what="status"
    )


async def test_model_rate_limit_is_retried(
    slack_bot: SlackBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    slept: list[float] = []

    async def no_sleep(seconds: float) -> None:
        slept.append(seconds)

    monkeypatch.setattr(slack_bot.service.engine.llm, "_sleep", no_sleep)
    slack_bot.llm.enqueue(Error(429, retry_after=1), Reply(text="worth the wait"))
    thread = await ask(slack_bot, "busy?")
    assert await answer_in(slack_bot, thread) == "worth the wait"
    assert len(slack_bot.llm.requests) == 2 and slept


async def test_quota_error_is_explained_and_status_cleared(slack_bot: SlackBot) -> None:
    slack_bot.llm.enqueue(Error(402))
    thread = await ask(slack_bot, "anything")
    text = await answer_in(slack_bot, thread)
    assert "quota" in text and "top up" in text
    assert slack_bot.fake.status(CHANNEL, thread) == ""


async def test_status_refused_uses_a_reaction_that_is_removed_on_error(slack_bot: SlackBot) -> None:
    slack_bot.fake.refuse_status = "missing_scope"
    slack_bot.llm.enqueue(Error(402))
    thread = await ask(slack_bot, "anything")
    await slack_bot.fake.wait_for(
        lambda: slack_bot.fake.bot_messages(CHANNEL, thread), what="error"
    )
    assert slack_bot.fake.calls_to("reactions.add")
    await slack_bot.fake.wait_for(
        lambda: slack_bot.fake.reactions[(CHANNEL, thread)] == set(), what="reaction removed"
    )


async def test_60000_character_answer_arrives_whole(slack_bot: SlackBot) -> None:
    paragraph = "lorem ipsum dolor sit amet " * 36 + "\n\n"
    text = (paragraph * 70)[:60_000].rstrip()
    slack_bot.llm.enqueue(Reply(text=text, chunk_size=2_000))
    thread = await ask(slack_bot, "write a lot")
    assert await answer_in(slack_bot, thread) == text
    shown = [m.text for m in slack_bot.fake.bot_messages(CHANNEL, thread)]
    assert shown == split_message(text, MESSAGE_LIMIT) and len(shown) >= 5


async def test_50_mentions_in_50_threads_are_all_answered_in_place(slack_bot: SlackBot) -> None:
    fake = slack_bot.fake
    asked = [fake.person_says(CHANNEL, f"{MENTION} question {i}", user=ALICE) for i in range(50)]
    results = await asyncio.gather(*(slack_bot.post(body) for _, body in asked))
    assert all(status == 200 for status, _, _ in results)
    answers = await asyncio.gather(*(answer_in(slack_bot, m.ts) for m, _ in asked))
    assert answers == [f"You said: Alice: question {i}" for i in range(50)]


async def test_refused_streaming_falls_back_to_post_and_update(slack_bot: SlackBot) -> None:
    slack_bot.fake.refuse_streaming = "method_not_supported_for_channel_type"
    slack_bot.llm.enqueue(Reply(text="streamed the old way", chunk_size=3))
    thread = await ask(slack_bot, "old workspace")
    assert await answer_in(slack_bot, thread) == "streamed the old way"
    assert slack_bot.fake.calls_to("chat.postMessage")


async def test_too_long_question_gets_a_plain_answer(slack_bot: SlackBot) -> None:
    thread = await ask(slack_bot, "x" * 20_000)
    text = await answer_in(slack_bot, thread)
    assert "characters long" in text
    assert not slack_bot.llm.requests


async def test_too_many_images_get_a_plain_answer(slack_bot: SlackBot) -> None:
    png = io.BytesIO()
    Image.new("RGB", (4, 4), "blue").save(png, format="PNG")
    images = [slack_bot.fake.add_file(f"{i}.png", "image/png", png.getvalue()) for i in range(5)]
    thread = await ask(slack_bot, "compare these", files=images)
    assert "5 images" in await answer_in(slack_bot, thread)
    assert not slack_bot.llm.requests


async def test_after_stop_intake_events_are_refused_for_redelivery(slack_bot: SlackBot) -> None:
    (platform,) = slack_bot.service.platforms
    await platform.stop_intake()
    _, body = slack_bot.fake.person_says(CHANNEL, f"{MENTION} too late", user=ALICE)
    status, _, _ = await slack_bot.post(body)
    assert status == 503  # Slack retries it, and another replica answers
    assert not slack_bot.fake.calls_to("assistant.threads.setStatus")


async def test_slash_command_posts_the_question_and_answers_in_its_thread(
    slack_bot: SlackBot,
) -> None:
    fake = slack_bot.fake
    body = fake.slash_command("/parley", "what is 2+2?", user=ALICE, channel=CHANNEL)
    status, ack_seconds, _ = await slack_bot.post(body)
    assert status == 200 and ack_seconds < 3.0
    await fake.wait_for(lambda: fake.bot_messages(CHANNEL), what="the question")
    question = fake.bot_messages(CHANNEL)[0]
    assert question.thread_ts is None and "what is 2+2?" in question.text
    assert await answer_in(slack_bot, question.ts) == "You said: Alice: what is 2+2?"

    empty = fake.slash_command("/parley", "  ", user=ALICE, channel=CHANNEL)
    assert (await slack_bot.post(empty))[0] == 200
    await fake.wait_for(lambda: fake.responses, what="the usage hint")
    assert "/parley your question" in fake.responses[0]["text"]


async def test_assistant_thread_gets_suggested_prompts(slack_bot: SlackBot) -> None:
    event = {
        "type": "assistant_thread_started",
        "assistant_thread": {
            "user_id": ALICE,
            "channel_id": "D0ALICE",
            "thread_ts": "5.5",
            "context": {},
        },
        "event_ts": "5.6",
    }
    assert (await slack_bot.post(slack_bot.fake.event(event)))[0] == 200
    await slack_bot.fake.wait_for(lambda: slack_bot.fake.suggested_prompts, what="prompts")
    (sent,) = slack_bot.fake.suggested_prompts
    assert sent["thread_ts"] == "5.5" and len(sent["prompts"]) >= 1
    # A message in that assistant thread streams into it, with the assistant status.
    _, body = slack_bot.fake.person_says(
        "D0ALICE", "hello assistant", user=ALICE, thread_ts="5.5", kind="message", channel_type="im"
    )
    await slack_bot.post(body)
    assert (
        await answer_in(slack_bot, "5.5", channel="D0ALICE") == "You said: Alice: hello assistant"
    )
    assert "recipient_user_id" not in slack_bot.fake.calls_to("chat.startStream")[0].args


async def test_url_verification_challenge(slack_bot: SlackBot) -> None:
    body = {"type": "url_verification", "challenge": "abc123", "token": "x"}
    status, _, text = await slack_bot.post(body)
    assert status == 200 and json.loads(text)["challenge"] == "abc123"


async def test_readiness_reports_slack(slack_bot: SlackBot) -> None:
    url = f"http://127.0.0.1:{slack_bot.service.port}/readyz"
    async with slack_bot.http.get(url) as response:
        checks = (await response.json())["checks"]
    assert checks["slack"] is True


async def test_a_mentions_message_twin_never_reaches_the_intake(
    slack_bot: SlackBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake, intake = slack_bot.fake, slack_bot.service.intake
    submitted: list[str] = []
    submit = intake.submit

    async def noted(env: Envelope, source: Source) -> None:
        submitted.append(env.event_id)
        await submit(env, source)

    monkeypatch.setattr(intake, "submit", noted)
    alone, mention = fake.person_says(CHANNEL, f"{MENTION} only the twin comes", user=ALICE)
    twin = fake.event({**mention["event"], "type": "message", "channel_type": "channel"})
    status, _, _ = await slack_bot.post(twin)
    assert status == 200

    message, mention = fake.person_says(CHANNEL, f"{MENTION} hello there", user=ALICE)
    twin = fake.event({**mention["event"], "type": "message", "channel_type": "channel"})
    results = await asyncio.gather(slack_bot.post(twin), slack_bot.post(mention))
    assert [status for status, _, _ in results] == [200, 200]
    assert await answer_in(slack_bot, message.ts) == "You said: Alice: hello there"

    assert submitted == [f"slack:{fake.team_id}:{CHANNEL}:{message.ts}"]
    assert fake.bot_messages(CHANNEL, alone.ts) == []


async def test_a_signed_twin_is_acknowledged_before_bolt_and_an_unsigned_one_refused(
    slack_bot: SlackBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    (platform,) = slack_bot.service.platforms
    assert isinstance(platform, SlackPlatform)
    dispatched: list[str] = []
    dispatch = platform.app.async_dispatch

    async def noted(req: AsyncBoltRequest) -> BoltResponse:
        dispatched.append(req.body["event"]["type"])
        return await dispatch(req)

    monkeypatch.setattr(platform.app, "async_dispatch", noted)
    fake = slack_bot.fake
    message, mention = fake.person_says(CHANNEL, f"{MENTION} hello there", user=ALICE)
    twin = fake.event({**mention["event"], "type": "message", "channel_type": "channel"})
    assert (await slack_bot.post(twin, secret="not-the-secret"))[0] == 401
    raw, headers = fake.signed_request(twin)
    headers["X-Slack-Request-Timestamp"] = str(int(headers["X-Slack-Request-Timestamp"]) - 600)
    assert (await slack_bot.post(raw, headers=headers))[0] == 401
    assert (await slack_bot.post(twin))[0] == 200
    assert dispatched == []

    assert (await slack_bot.post(mention))[0] == 200
    assert await answer_in(slack_bot, message.ts) == "You said: Alice: hello there"
    assert dispatched == ["app_mention"]


async def test_a_message_mentioning_the_bot_in_a_dm_is_answered(slack_bot: SlackBot) -> None:
    _, body = slack_bot.fake.person_says(
        "D0ALICE", f"{MENTION} hi in private", user=ALICE, kind="message", channel_type="im"
    )
    await slack_bot.post(body)
    assert await answer_in(slack_bot, None, channel="D0ALICE") == "You said: Alice: hi in private"


async def test_a_fast_answer_shows_no_thinking_status(
    slack_bot: SlackBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(status, "STATUS_GRACE", 30.0)  # the answer starts well within it
    fake = slack_bot.fake
    thread = await ask(slack_bot, "quick one")
    await fake.wait_for(
        lambda: any(not m.streaming for m in fake.bot_messages(CHANNEL, thread)), what="answer"
    )
    await slack_bot.service.engine.drain(10)  # the answer's work has ended
    assert fake.thread_text(CHANNEL, thread) == "You said: Alice: quick one"
    assert not fake.calls_to("assistant.threads.setStatus")
    assert not fake.calls_to("reactions.add") and not fake.calls_to("reactions.remove")


async def test_a_slow_answer_shows_thinking_and_clears_it(
    slack_bot: SlackBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(status, "STATUS_GRACE", 0.1)
    slack_bot.llm.enqueue(Reply("Hmm. Yes.", first_token_delay=3.0))  # well past the grace
    thread = await ask(slack_bot, "hard one")
    assert await answer_in(slack_bot, thread) == "Hmm. Yes."
    assert slack_bot.fake.statuses[(CHANNEL, thread)] == [THINKING, ""]
