"""Slack messages turned into the intake's `Envelope` and the engine's `IncomingMessage`.

A conversation is a Slack thread: a mention at the top of a channel starts one on
itself, a message inside a thread belongs to that thread. DMs are the exception: at
their top level the whole DM is one conversation and answers are plain messages.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, cast

from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.calls import slack_call
from adapters.slack.files import FileFetcher
from adapters.slack.sink import ReplyTarget
from adapters.slack.text import mentioned_users, mentions, to_plain
from adapters.slack.types import MessageEvent, SlackFile
from adapters.slack.users import UserDirectory
from bot.conversation import ConversationKey, IncomingMessage, Role, Turn
from bot.intake import Envelope
from bot.settings import Limits

log = logging.getLogger(__name__)

PLATFORM = "slack"
# Message subtypes that are a person writing; the rest (edits, deletions, joins, bot
# posts, ...) are housekeeping the bot never answers.
PERSON_SUBTYPES: frozenset[str | None] = frozenset({None, "file_share", "thread_broadcast"})
# The fields of a message event Parley reads, and the type each must have.
_EVENT_FIELDS: dict[str, type] = {
    "type": str,
    "ts": str,
    "channel": str,
    "user": str,
    "text": str,
    "thread_ts": str,
    "subtype": str,
    "bot_id": str,
    "channel_type": str,
    "user_team": str,
    "files": list,
    "bot_profile": dict,
}
_FILE_FIELDS: dict[str, type] = {
    "id": str,
    "name": str,
    "title": str,
    "mimetype": str,
    "size": int,
    "mode": str,
    "url_private": str,
    "url_private_download": str,
}
_TS = re.compile(r"\d{1,12}(?:\.\d{1,9})?")
REPLIES_PAGE = 200
SEED_MAX_PAGES = 10  # a seed reads at most this many pages of a very long thread


@dataclass(frozen=True, slots=True)
class BotIdentity:
    """Who the bot is in this workspace, from `auth.test` (via bolt's context)."""

    user_id: str
    bot_id: str

    def wrote(self, message: MessageEvent) -> bool:
        return message.get("user") == self.user_id or (
            bool(self.bot_id) and message.get("bot_id") == self.bot_id
        )


@dataclass(frozen=True, slots=True)
class Place:
    """Where a message was written."""

    team: str
    channel: str
    ts: str
    thread_ts: str | None  # None: at the top level of the channel
    is_dm: bool

    @classmethod
    def of(cls, team: str, event: MessageEvent) -> Place:
        channel = event.get("channel", "")
        thread_ts = event.get("thread_ts")
        is_dm = event.get("channel_type") == "im" or channel.startswith("D")
        return cls(team, channel, event["ts"], thread_ts, is_dm)

    @property
    def in_thread(self) -> bool:
        return self.thread_ts is not None and self.thread_ts != self.ts

    @property
    def reply_thread(self) -> str | None:
        if self.is_dm:
            return self.thread_ts
        return self.thread_ts or self.ts

    @property
    def key(self) -> ConversationKey:
        return ConversationKey(PLATFORM, self.team, self.channel, self.reply_thread or self.channel)

    @property
    def claim_id(self) -> str:
        """The message's identity: Slack sends one mention as two events, and redelivers."""
        return f"{PLATFORM}:{self.team}:{self.channel}:{self.ts}"

    def target(self, user_team: str | None, user_id: str | None) -> ReplyTarget:
        return ReplyTarget(
            channel=self.channel,
            thread_ts=self.reply_thread,
            question_ts=self.ts,
            recipient_user_id=None if self.is_dm else user_id,
            recipient_team_id=None if self.is_dm else (user_team or self.team),
        )


def _well_typed(raw: Mapping[str, Any], fields: Mapping[str, type]) -> bool:
    return all(name not in raw or isinstance(raw[name], kind) for name, kind in fields.items())


def message_event(raw: object) -> MessageEvent | None:
    """`raw` as a message event, or None when Slack's shape isn't there (never a crash)."""
    if not isinstance(raw, dict) or not _well_typed(raw, _EVENT_FIELDS):
        return None
    if "ts" not in raw or "channel" not in raw:
        return None
    if not all(_TS.fullmatch(raw[name]) for name in ("ts", "thread_ts") if name in raw):
        return None  # Slack's timestamps are numbers; threads are ordered by them
    files = raw.get("files", [])
    if not all(isinstance(f, dict) and _well_typed(f, _FILE_FIELDS) for f in files):
        return None
    return cast(MessageEvent, raw)


def is_person_writing(event: MessageEvent, bot: BotIdentity) -> bool:
    return not (bot.wrote(event) or _by_a_bot(event) or _housekeeping(event))


def _by_a_bot(event: MessageEvent) -> bool:
    return "bot_id" in event or "bot_profile" in event


def _housekeeping(event: MessageEvent) -> bool:
    """Edits, deletions, joins: anything but a person's new message."""
    return event.get("subtype") not in PERSON_SUBTYPES or not event.get("user")


def envelope(event: MessageEvent, place: Place, bot: BotIdentity) -> Envelope:
    """What the intake needs to know about `event`, with nothing looked up yet."""
    text = event.get("text", "")
    user = event.get("user", "")
    return Envelope(
        platform=PLATFORM,
        event_id=place.claim_id,
        key=place.key,
        author_id=user,
        text=to_plain(text, bot_user_id=bot.user_id, names={}),
        is_mention=event.get("type") == "app_mention" or mentions(text, bot.user_id),
        is_dm=place.is_dm,
        in_thread=place.in_thread,
        is_self=bot.wrote(event),
        is_bot=_by_a_bot(event),
        housekeeping=_housekeeping(event),
        reply_to=place.target(event.get("user_team"), user),
        files=tuple(event.get("files", [])),
    )


class Translator:
    def __init__(
        self,
        client: AsyncWebClient,
        users: UserDirectory,
        files: FileFetcher,
        limits: Limits,
    ) -> None:
        self._client = client
        self.users = users
        self._files = files
        self._limits = limits

    async def plain_text(self, text: str, bot: BotIdentity) -> str:
        names = await self.users.names(mentioned_users(text) - {bot.user_id})
        return to_plain(text, bot_user_id=bot.user_id, names=names)

    async def holds_thread(self, place: Place, bot: BotIdentity) -> bool:
        """Whether the bot wrote in `place`'s thread, read from Slack (one page)."""
        out = await slack_call(
            self._client.conversations_replies,
            channel=place.channel,
            ts=place.thread_ts or place.ts,
            limit=REPLIES_PAGE,
        )
        return out.ok and any(bot.wrote(m) for m in out.get("messages") or [])

    async def message(self, event: MessageEvent, place: Place, bot: BotIdentity) -> IncomingMessage:
        return await self.incoming(
            event.get("text", ""), event.get("user", ""), place, bot, event.get("files", [])
        )

    async def incoming(
        self,
        text: str,
        user: str,
        place: Place,
        bot: BotIdentity,
        files: Sequence[SlackFile] = (),
    ) -> IncomingMessage:
        """What `user` wrote at `place`, with names resolved and files fetched."""
        plain = await self.plain_text(text, bot)
        attachments, notes = await self._files.fetch(files)
        return IncomingMessage(
            key=place.key,
            text=plain,
            author=await self.users.name(user) if user else "",
            author_id=user,
            mentions=frozenset(mentioned_users(text) - {bot.user_id}),
            files=attachments,
            notes=notes,
            seed=partial(self.seed, place, bot) if place.in_thread else None,
        )

    async def seed(self, place: Place, bot: BotIdentity) -> list[Turn]:
        """The thread's messages before `place`, read once when the bot joins a thread."""
        messages = await self._replies(place.channel, place.thread_ts or place.ts)
        earlier = [m for m in messages if float(m["ts"]) < float(place.ts)]
        turns = [await self._turn(m, bot) for m in earlier[-self._limits.history_turns :]]
        return [t for t in turns if t is not None]

    async def _replies(self, channel: str, thread_ts: str) -> list[MessageEvent]:
        messages: list[MessageEvent] = []
        cursor: str | None = None
        for _ in range(SEED_MAX_PAGES):
            out = await slack_call(
                self._client.conversations_replies,
                channel=channel,
                ts=thread_ts,
                limit=REPLIES_PAGE,
                cursor=cursor,
            )
            if not out.ok:
                break  # answer without the earlier messages rather than not at all
            messages.extend(out.get("messages") or [])
            cursor = (out.get("response_metadata") or {}).get("next_cursor") or None
            if cursor is None:
                break
        return messages

    async def _turn(self, message: MessageEvent, bot: BotIdentity) -> Turn | None:
        if bot.wrote(message):
            return Turn.text(Role.ASSISTANT, message.get("text", ""))
        if message.get("subtype") not in PERSON_SUBTYPES | {"bot_message"}:
            return None
        text = await self.plain_text(message.get("text", ""), bot)
        files = [f.get("name") or "a file" for f in message.get("files", [])]
        if files:
            text += "".join(f"\n[attached: {name}]" for name in files)
        if not text.strip():
            return None
        if "user" in message and not _by_a_bot(message):
            # A person's message: who wrote it and whom they mentioned may be mentioned back.
            raw = message.get("text", "")
            return Turn.text(
                Role.USER,
                text,
                await self.users.name(message["user"]),
                author_id=message["user"],
                mentions=mentioned_users(raw) - {bot.user_id},
            )
        author = message.get("bot_profile", {}).get("name") or message.get("username", "")
        return Turn.text(Role.USER, text, author)
