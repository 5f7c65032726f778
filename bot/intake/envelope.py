"""The normalized form of one platform event, and what an adapter lends the intake."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from bot.conversation import ConversationKey, IncomingMessage
from bot.reply.sink import ReplySink


@dataclass(frozen=True, slots=True)
class Envelope:
    """One event as every platform describes it, before anything is fetched.

    `event_id` is the message's identity across redeliveries and twins (Slack sends a
    mention as two events): the intake claims it once. `text` is the message with the
    bot's own mention removed and nothing looked up, enough to spot an intake command.
    `reply_to` and `files` are the adapter's own objects; the core never looks inside.
    """

    platform: str
    event_id: str
    key: ConversationKey
    author_id: str
    author_name: str = ""
    text: str = ""
    is_mention: bool = False
    is_dm: bool = False
    is_command: bool = False  # a slash command: addressed to the bot by definition
    in_thread: bool = False  # inside a thread the bot may already hold
    is_bot: bool = False
    is_self: bool = False
    housekeeping: bool = False  # edits, joins, pins: events that are not a person writing
    reply_to: object = None
    files: tuple[object, ...] = ()
    roles: tuple[str, ...] = ()  # the author's Discord role ids, for the policy's role layer


class Source(Protocol):
    """What the adapter that submitted an envelope does for the intake."""

    async def read(self, env: Envelope) -> IncomingMessage:
        """The message in full: names resolved, files fetched, a thread seed attached."""

    def reply(self, env: Envelope) -> ReplySink:
        """Where the answer to `env` is written (a new sink each call)."""

    async def tell_privately(self, env: Envelope, text: str) -> None:
        """Tell only the author `text` (the policy refused them): Slack's ephemeral
        message, Discord's ephemeral reply to a command or a reaction to a mention."""

    async def holds_thread(self, env: Envelope) -> bool:
        """Whether the bot has written in `env`'s thread, asked of the platform itself.

        Used only when the store can't say (Redis is down), so a reply in a thread of
        the bot's gets its notice and other threads are left alone.
        """
