"""Slack messages into IncomingMessage: text, names, files, conversation keys and seeds."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.events import BotIdentity, Place, Translator, is_person_writing
from adapters.slack.files import FileFetcher
from adapters.slack.text import to_plain
from adapters.slack.types import MessageEvent
from adapters.slack.users import UserDirectory
from bot.conversation import ConversationKey, Role
from bot.settings import Limits
from tests.fakes.slack_api import BOT_ID, BOT_TOKEN, BOT_USER_ID, TEAM_ID, FakeSlack

BOT = BotIdentity(BOT_USER_ID, BOT_ID)
LIMITS = Limits(max_image_bytes=1_000_000, max_text_file_bytes=10_000)


@pytest.fixture
async def translator(
    fake_slack: FakeSlack, slack_client: AsyncWebClient
) -> AsyncIterator[Translator]:
    async with httpx.AsyncClient() as http:
        files = FileFetcher(http, token=BOT_TOKEN, allowed_hosts={"127.0.0.1"}, limits=LIMITS)
        yield Translator(slack_client, UserDirectory(slack_client), files, LIMITS)


def test_plain_text_resolves_slack_markup() -> None:
    text = (
        f"<@{BOT_USER_ID}> ask <@U0BOB> and <@U0EVE|eve> in <#C1|general> about "
        "<https://example.com|the docs> &amp; <mailto:a@b.io|a@b.io>, <!here> x &lt; y"
    )
    plain = to_plain(text, bot_user_id=BOT_USER_ID, names={"U0BOB": "Bob"})
    assert plain == (
        "ask @Bob and @eve in #general about the docs (https://example.com) & a@b.io, @here x < y"
    )


def test_place_keys_threads_and_dms() -> None:
    top: MessageEvent = {"type": "app_mention", "ts": "1.1", "channel": "C1"}
    reply: MessageEvent = {"type": "message", "ts": "1.5", "channel": "C1", "thread_ts": "1.1"}
    dm: MessageEvent = {"type": "message", "ts": "2.1", "channel": "D1", "channel_type": "im"}
    assert Place.of(TEAM_ID, top).key == ConversationKey("slack", TEAM_ID, "C1", "1.1")
    assert Place.of(TEAM_ID, top).reply_thread == "1.1"
    assert Place.of(TEAM_ID, reply).key == ConversationKey("slack", TEAM_ID, "C1", "1.1")
    assert Place.of(TEAM_ID, reply).in_thread
    assert Place.of(TEAM_ID, dm).key == ConversationKey("slack", TEAM_ID, "D1", "D1")
    assert Place.of(TEAM_ID, dm).reply_thread is None
    assert Place.of(TEAM_ID, top).claim_id != Place.of(TEAM_ID, reply).claim_id


@pytest.mark.parametrize(
    ("event", "person"),
    [
        ({"type": "message", "ts": "1", "user": "U1"}, True),
        ({"type": "message", "ts": "1", "user": "U1", "subtype": "file_share"}, True),
        ({"type": "message", "ts": "1", "user": BOT_USER_ID}, False),
        ({"type": "message", "ts": "1", "user": "U2", "bot_id": "B2"}, False),
        ({"type": "message", "ts": "1", "subtype": "bot_message", "bot_id": "B2"}, False),
        ({"type": "message", "ts": "1", "subtype": "message_changed"}, False),
        ({"type": "message", "ts": "1", "user": "U1", "subtype": "message_deleted"}, False),
        ({"type": "message", "ts": "1", "user": "U1", "subtype": "channel_join"}, False),
    ],
)
def test_only_people_writing_get_through(event: MessageEvent, person: bool) -> None:
    assert is_person_writing(event, BOT) is person


async def test_message_gets_names_and_files(fake_slack: FakeSlack, translator: Translator) -> None:
    fake_slack.add_user("U0ALICE", "Alice")
    fake_slack.add_user("U0BOB", "Bob")
    image = fake_slack.add_file("cat.png", "image/png", b"\x89PNG fake image bytes")
    notes_file = fake_slack.add_file("notes.md", "text/markdown", b"# Notes\nhello")
    song = fake_slack.add_file("song.mp3", "audio/mpeg", b"ID3")
    liar = fake_slack.add_file("big.png", "image/png", b"x" * 2_000_000, declared_size=10)
    foreign = dict(image, url_private_download="https://evil.example/x.png")
    _, body = fake_slack.person_says(
        "C1",
        f"<@{BOT_USER_ID}> what does <@U0BOB> see here?",
        user="U0ALICE",
        files=[image, notes_file, song, liar, foreign],
    )
    event = body["event"]
    message = await translator.message(event, Place.of(TEAM_ID, event), BOT)

    assert message.text == "what does @Bob see here?"
    assert message.author == "Alice" and message.author_id == "U0ALICE"
    assert [(f.name, f.data) for f in message.files] == [
        ("cat.png", b"\x89PNG fake image bytes"),
        ("notes.md", b"# Notes\nhello"),
    ]
    assert len(message.notes) == 3
    assert "song.mp3" in message.notes[0]
    assert "big.png" in message.notes[1] and "larger" in message.notes[1]
    assert "isn't hosted by the platform" in message.notes[2]
    assert message.seed is None and message.event_id is None


async def test_file_download_needs_the_bot_token(fake_slack: FakeSlack) -> None:
    image = fake_slack.add_file("cat.png", "image/png", b"png")
    async with httpx.AsyncClient() as http:
        fetcher = FileFetcher(http, token="xoxb-wrong", allowed_hosts={"127.0.0.1"}, limits=LIMITS)
        files, notes = await fetcher.fetch([image])
    assert files == [] and "couldn't download" in notes[0]


async def test_seed_reads_the_thread_once_before_the_mention(
    fake_slack: FakeSlack, translator: Translator
) -> None:
    fake_slack.add_user("U0ALICE", "Alice")
    fake_slack.add_user("U0BOB", "Bob")
    root = fake_slack.add_message("C1", "Shall we ship on Friday?", user="U0ALICE")
    fake_slack.add_message("C1", "Only if <@U0ALICE> signs off", user="U0BOB", thread_ts=root.ts)
    own = fake_slack.add_message("C1", "Friday works.", user=BOT_USER_ID, thread_ts=root.ts)
    own.bot_id = BOT_ID
    _, body = fake_slack.person_says(
        "C1", f"<@{BOT_USER_ID}> what do you think?", user="U0BOB", thread_ts=root.ts
    )
    fake_slack.add_message("C1", "a later message", user="U0ALICE", thread_ts=root.ts)
    event = body["event"]
    message = await translator.message(event, Place.of(TEAM_ID, event), BOT)
    assert message.seed is not None

    turns = await message.seed()
    assert [(t.role, t.author, t.plain_text) for t in turns] == [
        (Role.USER, "Alice", "Shall we ship on Friday?"),
        (Role.USER, "Bob", "Only if @Alice signs off"),
        (Role.ASSISTANT, "", "Friday works."),
    ]
    assert len(fake_slack.calls_to("conversations.replies")) == 1


async def test_seed_pages_through_long_threads(
    fake_slack: FakeSlack, translator: Translator
) -> None:
    root = fake_slack.add_message("C1", "root", user="U0ALICE")
    for i in range(450):
        fake_slack.add_message("C1", f"reply {i}", user="U0ALICE", thread_ts=root.ts)
    own = fake_slack.add_message("C1", "earlier answer", user=BOT_USER_ID, thread_ts=root.ts)
    own.bot_id = BOT_ID
    _, body = fake_slack.person_says("C1", "and now?", user="U0ALICE", thread_ts=root.ts)
    event = body["event"]
    message = await translator.message(event, Place.of(TEAM_ID, event), BOT)
    assert message.seed is not None
    turns = await message.seed()
    assert len(turns) == LIMITS.history_turns  # the newest ones: 450 replies, root, answer
    assert turns[0].plain_text == "reply 51"
    assert turns[-1].role is Role.ASSISTANT and turns[-1].plain_text == "earlier answer"
    assert len(fake_slack.calls_to("conversations.replies")) == 3


async def test_user_names_are_cached_and_shared(
    fake_slack: FakeSlack, slack_client: AsyncWebClient
) -> None:
    fake_slack.add_user("U0ALICE", "Alice")
    users = UserDirectory(slack_client)
    names = await asyncio.gather(*(users.name("U0ALICE") for _ in range(20)))
    assert set(names) == {"Alice"}
    assert await users.name("U0ALICE") == "Alice"
    assert await users.name("U0NOBODY") == "U0NOBODY"
    assert len(fake_slack.calls_to("users.info")) == 2
