"""The Slack sink and thinking indicator, through the real AsyncWebClient against the fake."""

from __future__ import annotations

import asyncio

import pytest
from slack_sdk.http_retry import builtin_async_handlers
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.sink import MESSAGE_LIMIT, ReplyTarget, SlackSink
from adapters.slack.status import LOADING_MESSAGES, REACTION, ThinkingIndicator
from adapters.slack.users import UserDirectory
from bot.metrics import Metrics
from bot.reply.sink import FinalReply
from bot.text.chunking import split_message
from tests.fakes.slack_api import FakeSlack

CHANNEL = "C0CHAN"
USER = "U0ALICE"


def make_sink(
    client: AsyncWebClient, fake: FakeSlack, *, channel: str = CHANNEL, thread: bool = True
) -> tuple[SlackSink, str]:
    question = fake.add_message(channel, "question", user=USER)
    dm = channel.startswith("D")
    target = ReplyTarget(
        channel=channel,
        thread_ts=question.ts if thread else None,
        question_ts=question.ts,
        recipient_user_id=None if dm else USER,
        recipient_team_id=None if dm else fake.team_id,
    )
    indicator = ThinkingIndicator(
        client, channel=channel, thread_ts=target.thread_ts, question_ts=question.ts
    )
    sink = SlackSink(client, target, indicator, users=UserDirectory(client), metrics=Metrics())
    return sink, question.ts


async def test_streams_into_the_thread_and_ends_exact(
    fake_slack: FakeSlack, slack_client: AsyncWebClient
) -> None:
    sink, thread = make_sink(slack_client, fake_slack)
    await sink.start()
    await fake_slack.wait_for(lambda: fake_slack.status(CHANNEL, thread) == "is thinking…")
    status_call = fake_slack.calls_to("assistant.threads.setStatus")[0]
    assert status_call.args["loading_messages"] == LOADING_MESSAGES
    await sink.update("Hello")
    await sink.update("Hello, **world**")
    await sink.finish(FinalReply("Hello, **world**!\n\n```py\nprint(1)\n```"))

    start = fake_slack.calls_to("chat.startStream")[0].args
    assert start["thread_ts"] == thread
    assert start["recipient_user_id"] == USER
    assert start["recipient_team_id"] == fake_slack.team_id
    assert start["markdown_text"] == "Hello"
    assert [c.args["markdown_text"] for c in fake_slack.calls_to("chat.appendStream")] == [
        ", **world**"
    ]
    (message,) = fake_slack.bot_messages(CHANNEL, thread)
    assert message.text == "Hello, **world**!\n\n```py\nprint(1)\n```"
    assert message.markdown and not message.streaming
    assert fake_slack.status(CHANNEL, thread) == ""


async def test_refused_streaming_posts_once_then_edits(
    fake_slack: FakeSlack, slack_client: AsyncWebClient
) -> None:
    fake_slack.refuse_streaming = "method_not_supported_for_channel_type"
    sink, thread = make_sink(slack_client, fake_slack)
    await sink.start()
    await sink.update("one")
    await sink.update("one two")
    await sink.finish(FinalReply("one two three"))

    assert len(fake_slack.calls_to("chat.postMessage")) == 1
    assert [c.args["markdown_text"] for c in fake_slack.calls_to("chat.update")] == [
        "one two",
        "one two three",
    ]
    assert fake_slack.thread_text(CHANNEL, thread) == "one two three"
    assert len(fake_slack.calls_to("chat.startStream")) == 1  # tried once, not per update


async def test_stream_ended_by_slack_is_finished_with_chat_update(
    fake_slack: FakeSlack, slack_client: AsyncWebClient
) -> None:
    fake_slack.stream_lifetime = 1  # like a stream that outlived Slack's ~5 minutes
    sink, thread = make_sink(slack_client, fake_slack)
    await sink.start()
    for text in ("a", "a b", "a b c", "a b c d"):
        await sink.update(text)
    await sink.finish(FinalReply("a b c d e"))

    (message,) = fake_slack.bot_messages(CHANNEL, thread)
    assert message.text == "a b c d e"
    assert fake_slack.calls_to("chat.update")[-1].args["ts"] == message.ts


async def test_long_answer_continues_in_more_messages(
    fake_slack: FakeSlack, slack_client: AsyncWebClient
) -> None:
    paragraph = "word " * 199 + "end.\n\n"
    text = (paragraph * 60)[:60_000]
    sink, thread = make_sink(slack_client, fake_slack)
    await sink.start()
    for end in range(5_000, 60_000, 7_000):
        await sink.update(text[:end])
    await sink.finish(FinalReply(text))

    shown = [m.text for m in fake_slack.bot_messages(CHANNEL, thread)]
    assert shown == split_message(text, MESSAGE_LIMIT)
    assert all(len(piece) <= MESSAGE_LIMIT for piece in shown)
    assert "".join(shown) == text


async def test_code_block_split_is_closed_and_reopened(
    fake_slack: FakeSlack, slack_client: AsyncWebClient
) -> None:
    code = "```python\n" + "x = 1\n" * 3_000 + "```\n"
    sink, thread = make_sink(slack_client, fake_slack)
    await sink.start()
    await sink.finish(FinalReply(code))

    shown = [m.text for m in fake_slack.bot_messages(CHANNEL, thread)]
    assert len(shown) == 2
    assert shown[0].endswith("```") and shown[1].startswith("```python\n")


async def test_fail_keeps_partial_text_adds_the_error_and_clears_status(
    fake_slack: FakeSlack, slack_client: AsyncWebClient
) -> None:
    sink, thread = make_sink(slack_client, fake_slack)
    await sink.start()
    await sink.update("Partial ans")
    await sink.fail("The answer was cut off because the connection to the model broke.")

    partial, error = fake_slack.bot_messages(CHANNEL, thread)
    assert partial.text == "Partial ans" and not partial.streaming
    assert "cut off" in error.text
    assert fake_slack.status(CHANNEL, thread) == ""


async def test_status_refused_falls_back_to_a_reaction(
    fake_slack: FakeSlack, slack_client: AsyncWebClient
) -> None:
    fake_slack.refuse_status = "missing_scope"
    sink, question = make_sink(slack_client, fake_slack)
    await sink.start()
    await fake_slack.wait_for(lambda: fake_slack.reactions[(CHANNEL, question)] == {REACTION})
    await sink.progress("Using web_search…")  # nothing to show it on; must not fail
    await sink.fail("The model service is temporarily unavailable.")
    assert fake_slack.reactions[(CHANNEL, question)] == set()


async def test_dm_top_level_posts_plain_messages(
    fake_slack: FakeSlack, slack_client: AsyncWebClient
) -> None:
    sink, question = make_sink(slack_client, fake_slack, channel="D0DM", thread=False)
    await sink.start()
    await sink.update("Hi")
    await sink.finish(FinalReply("Hi there"))

    assert not fake_slack.calls_to("chat.startStream")
    assert not fake_slack.calls_to("assistant.threads.setStatus")  # needs a thread
    (message,) = fake_slack.bot_messages("D0DM")
    assert message.thread_ts is None and message.text == "Hi there"
    assert fake_slack.reactions[("D0DM", question)] == set()


async def test_rate_limited_calls_wait_and_succeed(
    fake_slack: FakeSlack, slack_client: AsyncWebClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    class NoJitter:
        @staticmethod
        def random() -> float:
            return 0.0

    monkeypatch.setattr(builtin_async_handlers, "random", NoJitter)
    fake_slack.refuse_streaming = "not_allowed"
    fake_slack.rate_limit("chat.postMessage", times=2, retry_after=0)
    sink, thread = make_sink(slack_client, fake_slack)
    await sink.start()
    await sink.finish(FinalReply("after the wait"))

    assert len(fake_slack.calls_to("chat.postMessage")) == 3
    assert fake_slack.thread_text(CHANNEL, thread) == "after the wait"


async def test_notes_follow_the_answer(fake_slack: FakeSlack, slack_client: AsyncWebClient) -> None:
    sink, thread = make_sink(slack_client, fake_slack)
    await sink.start()
    await sink.finish(FinalReply("Answer.", notes=("Skipped “a.pdf”: not readable.",)))
    assert fake_slack.thread_text(CHANNEL, thread) == (
        "Answer.\n\n> Skipped “a.pdf”: not readable."
    )


async def test_cancelled_update_still_lands_before_finish(
    fake_slack: FakeSlack, slack_client: AsyncWebClient
) -> None:
    sink, thread = make_sink(slack_client, fake_slack)
    await sink.start()
    pending = asyncio.create_task(sink.update("streaming text"))
    await asyncio.sleep(0)
    pending.cancel()  # the engine stops its pusher this way
    with pytest.raises(asyncio.CancelledError):
        await pending
    await sink.finish(FinalReply("streaming text, done"))

    (message,) = fake_slack.bot_messages(CHANNEL, thread)
    assert message.text == "streaming text, done"


async def test_status_is_refreshed_before_slack_drops_it(
    fake_slack: FakeSlack, slack_client: AsyncWebClient
) -> None:
    question = fake_slack.add_message(CHANNEL, "hard question", user=USER)
    indicator = ThinkingIndicator(
        slack_client, channel=CHANNEL, thread_ts=question.ts, question_ts=question.ts, refresh=0.02
    )
    await indicator.show()
    await fake_slack.wait_for(
        lambda: len(fake_slack.statuses[(CHANNEL, question.ts)]) >= 3, what="status refreshes"
    )
    await indicator.show("Thinking… step 2")
    await indicator.quiet()
    sent = len(fake_slack.statuses[(CHANNEL, question.ts)])
    await asyncio.sleep(0.06)
    assert len(fake_slack.statuses[(CHANNEL, question.ts)]) == sent
    assert fake_slack.status(CHANNEL, question.ts) == "Thinking… step 2"
    await indicator.clear()
    assert fake_slack.status(CHANNEL, question.ts) == ""


async def test_thinking_waits_its_grace_and_an_explicit_status_does_not(
    fake_slack: FakeSlack, slack_client: AsyncWebClient
) -> None:
    question = fake_slack.add_message(CHANNEL, "question", user=USER)

    def indicator() -> ThinkingIndicator:
        return ThinkingIndicator(
            slack_client,
            channel=CHANNEL,
            thread_ts=question.ts,
            question_ts=question.ts,
            grace=30.0,
        )

    quick = indicator()
    await quick.show()
    await quick.quiet()  # the answer showed within the grace
    await quick.clear()
    assert not fake_slack.calls_to("assistant.threads.setStatus")

    tool = indicator()
    await tool.show()
    await tool.show("Using fake__lookup…")  # a step to show: at once, not after the grace
    assert fake_slack.statuses[(CHANNEL, question.ts)] == ["Using fake__lookup…"]
    await tool.clear()
    assert fake_slack.statuses[(CHANNEL, question.ts)] == ["Using fake__lookup…", ""]
