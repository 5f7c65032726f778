"""What the model writes can't ping a channel or preview a link it made up (issue 13).

End to end through `parley serve` (the real slack-bolt app, engine, Redis and
chat-completions client) with the fake model answering chosen text: the posted text
shows the words, and no call to Slack carries notifying syntax or unfurls a link
nobody in the thread wrote.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from bot.text.neutralize import JOINER
from tests.fakes.llm_server import FakeLLM, Reply
from tests.fakes.slack_api import BOT_USER_ID, FakeSlack
from tests.slack.conftest import SlackBot, slack_settings, started_service, wait_answer

CHANNEL = "C0GENERAL"
ALICE = "U0ALICE"
BOB = "U0BOB"
CAROL = "U0CAROL"
MENTION = f"<@{BOT_USER_ID}>"
# Slack reads `<@…` and `<!…` as mentions (a `<!date^…>` only formats a date); a Markdown
# renderer might read the plain words too.
NOTIFYING = re.compile(r"<(?:@|!(?!date\^))|(?<![\w@])@(?:channel|here|everyone)\b")
TEXT_METHODS = (
    "chat.startStream",
    "chat.appendStream",
    "chat.stopStream",
    "chat.postMessage",
    "chat.update",
)
SPECIALS = (
    "<!channel> look, <!here|here> and <!everyone|@everyone>, "
    "<!subteam^S0ONCALL|@oncall> and <!subteam^S0OPS>, plain @here"
)
SPECIALS_SHOWN = "@channel look, @here and @everyone, @oncall and @team, plain @here"


@pytest.fixture(autouse=True)
def people(slack_bot: SlackBot) -> None:
    for user, name in ((ALICE, "Alice"), (BOB, "Bob"), (CAROL, "Carol")):
        slack_bot.fake.add_user(user, name)


async def ask(bot: SlackBot, text: str, *, user: str = ALICE) -> str:
    """Mention the bot in CHANNEL; the thread its answer goes to."""
    message, body = bot.fake.person_says(CHANNEL, f"{MENTION} {text}", user=user)
    status, _, _ = await bot.post(body)
    assert status == 200
    return message.ts


async def answer(bot: SlackBot, model_text: str, question: str, **reply: object) -> str:
    """The model answers `model_text` to `question`; the thread as a reader sees it."""
    bot.llm.enqueue(Reply(text=model_text, **reply))  # type: ignore[arg-type]
    thread = await ask(bot, question)
    shown = await wait_answer(bot.fake, thread, channel=CHANNEL)
    return shown.replace(JOINER, "")


def sent_texts(fake: FakeSlack, *methods: str) -> list[str]:
    """Every text Parley sent Slack with the given methods (all posting ones by default)."""
    return [
        str(call.args.get("markdown_text") or call.args.get("text") or "")
        for method in methods or TEXT_METHODS
        for call in fake.calls_to(method)
    ]


def assert_nothing_notifies(fake: FakeSlack, *, except_users: set[str] = frozenset()) -> None:
    for text in sent_texts(fake):
        left = re.sub(r"<@(U0ALICE|U0CAROL)>", "", text) if except_users else text
        assert not NOTIFYING.search(left), text
    for method in TEXT_METHODS:
        for call in fake.calls_to(method):
            assert "link_names" not in call.args and "parse" not in call.args


def neutralized(bot: SlackBot, kind: str) -> float:
    value = bot.service.metrics.registry.get_sample_value(
        "parley_output_neutralized_total", {"kind": kind}
    )
    return value or 0.0


async def test_special_mentions_stream_as_words(
    slack_bot: SlackBot, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="bot.reply.audience")
    # Three characters a chunk: every mention arrives cut in pieces mid-stream.
    shown = await answer(slack_bot, SPECIALS, "announce it", chunk_size=3, chunk_delay=0.05)
    assert shown == SPECIALS_SHOWN
    # An operator can see the attempt, and where it happened.
    [logged] = [r.getMessage() for r in caplog.records if r.name == "bot.reply.audience"]
    assert "4 special_mention" in logged and "slack:T" in logged and CHANNEL in logged
    assert slack_bot.fake.calls_to("chat.startStream")
    assert_nothing_notifies(slack_bot.fake)
    assert neutralized(slack_bot, "special_mention") == 4
    assert neutralized(slack_bot, "group_mention") == 2


async def test_special_mentions_on_the_fallback_path(slack_bot: SlackBot) -> None:
    slack_bot.fake.refuse_streaming = "method_not_supported_for_channel_type"
    shown = await answer(slack_bot, SPECIALS, "announce it", chunk_size=3)
    assert shown == SPECIALS_SHOWN
    assert slack_bot.fake.calls_to("chat.postMessage")
    assert_nothing_notifies(slack_bot.fake)


async def test_only_people_in_the_thread_stay_mentioned(slack_bot: SlackBot) -> None:
    # Alice writes and mentions Carol; Bob never took part.
    text = f"<@{ALICE}> and <@{CAROL}> should ask <@{BOB}> or <@U0NOBODY|zed>."
    shown = await answer(slack_bot, text, f"who knows? maybe <@{CAROL}>", chunk_size=5)
    assert shown == f"<@{ALICE}> and <@{CAROL}> should ask @Bob or @zed."
    assert_nothing_notifies(slack_bot.fake, except_users={ALICE, CAROL})
    assert neutralized(slack_bot, "user_mention") == 2


async def test_people_who_wrote_before_the_bot_joined_count(slack_bot: SlackBot) -> None:
    """The thread's earlier messages (the seed) say who is in it and which links people
    wrote there."""
    fake = slack_bot.fake
    root = fake.add_message(CHANNEL, "the runbook: <https://wiki.example.com/run>", user=BOB)
    text = f"<@{BOB}> wrote https://wiki.example.com/run and <@{CAROL}> may know."
    slack_bot.llm.enqueue(Reply(text=text, chunk_size=10_000))
    _, body = fake.person_says(CHANNEL, f"{MENTION} summarise", user=ALICE, thread_ts=root.ts)
    await slack_bot.post(body)
    shown = await wait_answer(fake, root.ts, channel=CHANNEL)
    assert shown.replace(JOINER, "") == (
        f"<@{BOB}> wrote https://wiki.example.com/run and @Carol may know."
    )
    assert neutralized(slack_bot, "link_preview") == 0


async def test_mentions_in_code_are_shown_as_written(slack_bot: SlackBot) -> None:
    text = "Use `<!channel>` like this:\n\n```\nping <!here> <@U0BOB>\n```\n\nthen <!here>."
    shown = await answer(slack_bot, text, "how do I ping?", chunk_size=4)
    assert shown == text.replace("then <!here>", "then @here")
    assert neutralized(slack_bot, "special_mention") == 1


async def test_status_lines_do_not_notify(slack_bot: SlackBot) -> None:
    reasoning = "I should ping <!channel> now, then write the answer."
    shown = await answer(slack_bot, "Done.", "think first", reasoning=reasoning, chunk_delay=0.1)
    assert shown == "Done."
    statuses = [
        str(c.args.get("status")) for c in slack_bot.fake.calls_to("assistant.threads.setStatus")
    ]
    assert any("ping" in status for status in statuses)
    assert not any(NOTIFYING.search(status) for status in statuses)


async def test_a_split_long_answer_is_neutralized_in_every_message(slack_bot: SlackBot) -> None:
    paragraph = "<!channel> heads up, " + "lorem ipsum dolor sit amet " * 40 + "\n\n"
    text = (paragraph * 40).rstrip()
    shown = await answer(slack_bot, text, "write a lot", chunk_size=2_000)
    assert shown.replace("\n\n", "") == text.replace("<!channel>", "@channel").replace("\n\n", "")
    assert len(slack_bot.fake.bot_messages(CHANNEL)) >= 2
    assert_nothing_notifies(slack_bot.fake)
    assert neutralized(slack_bot, "special_mention") == 40


# --- link previews ---------------------------------------------------------------------


def filler(n: int) -> str:
    return ("lorem ipsum dolor sit amet " * n).strip()


def _text_of(args: dict[str, object]) -> str:
    return str(args.get("markdown_text") or args["text"])


async def test_invented_links_are_not_unfurled(slack_bot: SlackBot) -> None:
    """Each message of a split answer unfurls only if people wrote all of its links."""
    typed = "https://docs.example.com/guide"
    invented = "https://evil.example/collect?d=secret"
    text = "\n\n".join(
        [
            f"The guide is at {typed}. " + filler(400),
            f"Also see [this]({invented}). " + filler(400),
            "That's all.",
        ]
    )
    slack_bot.fake.refuse_streaming = "method_not_supported_for_channel_type"
    # Slack sends a link a person typed as `<url>`.
    shown = await answer(slack_bot, text, f"where is the guide? <{typed}>", chunk_size=50_000)
    assert invented in shown and typed in shown  # links stay as written: clickable
    posts = slack_bot.fake.calls_to("chat.postMessage")
    # The last message carries the feedback buttons, so its text is a block's.
    by_text = {_text_of(c.args)[:20]: c.args for c in posts}
    guide = by_text["The guide is at http"]
    assert guide["unfurl_links"] is True and guide["unfurl_media"] is True
    evil = by_text["Also see [this](http"]
    assert evil["unfurl_links"] is False and evil["unfurl_media"] is False
    for call in posts:
        if invented in _text_of(call.args) or not call.args.get("unfurl_links"):
            assert call.args["unfurl_links"] is False and call.args["unfurl_media"] is False
    assert neutralized(slack_bot, "link_preview") == 1


async def test_a_growing_message_never_unfurls(slack_bot: SlackBot) -> None:
    slack_bot.fake.refuse_streaming = "method_not_supported_for_channel_type"
    text = "See https://evil.example/x?d=1 for more. " + filler(30)
    shown = await answer(slack_bot, text, "links?", chunk_size=3)
    assert shown == text
    for call in slack_bot.fake.calls_to("chat.postMessage"):
        assert call.args["unfurl_links"] is False and call.args["unfurl_media"] is False
    assert neutralized(slack_bot, "link_preview") == 1


# --- the channel's policy ----------------------------------------------------------------


@pytest.fixture
async def allowing_bot(
    fake_slack: FakeSlack, fake_llm: FakeLLM, redis_url: str, tmp_path: Path
) -> AsyncIterator[SlackBot]:
    policy = tmp_path / "policy.yaml"
    policy.write_text(f'channels:\n  "slack:{CHANNEL}": {{allow_mentions: true}}\n')
    settings = slack_settings(fake_slack, fake_llm, redis_url, bot_policy_file=str(policy))
    service = await started_service(settings)
    try:
        async with aiohttp.ClientSession() as http:
            yield SlackBot(fake_slack, fake_llm, service, http)
    finally:
        await service.shutdown()


async def test_policy_may_allow_special_mentions_in_a_channel(
    slack_bot: SlackBot, allowing_bot: SlackBot
) -> None:
    await slack_bot.service.shutdown()  # one app at a time answers the fake Slack
    text = f"<!here> and <@{BOB}>"
    shown = await answer(allowing_bot, text, "tell everyone")
    assert shown == "<!here> and @Bob"  # people not in the thread are still not pinged
    assert neutralized(allowing_bot, "special_mention") == 0
