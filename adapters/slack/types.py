"""The parts of Slack's payloads Parley reads, as typed dictionaries.

Slack sends many more fields; only the ones the adapter consumes are listed. Every field
Slack may leave out is `NotRequired`, so reading one without a default fails type checks.
"""

from __future__ import annotations

from typing import NotRequired, TypedDict


class SlackFile(TypedDict):
    id: str
    name: NotRequired[str]
    title: NotRequired[str]
    mimetype: NotRequired[str]
    size: NotRequired[int]
    mode: NotRequired[str]  # hosted, snippet, external, tombstone
    url_private: NotRequired[str]
    url_private_download: NotRequired[str]


class BotProfile(TypedDict):
    name: NotRequired[str]


class MessageEvent(TypedDict):
    """A `message` or `app_mention` event, and a message in `conversations.replies`."""

    type: str
    ts: str
    channel: NotRequired[str]  # absent in conversations.replies
    user: NotRequired[str]
    text: NotRequired[str]
    thread_ts: NotRequired[str]
    subtype: NotRequired[str]
    bot_id: NotRequired[str]
    bot_profile: NotRequired[BotProfile]
    username: NotRequired[str]
    channel_type: NotRequired[str]  # channel, group, im, mpim, app_home
    user_team: NotRequired[str]
    files: NotRequired[list[SlackFile]]


class AssistantThread(TypedDict):
    user_id: str
    channel_id: str
    thread_ts: str


class AssistantThreadStartedEvent(TypedDict):
    type: str
    assistant_thread: AssistantThread


class EventEnvelope(TypedDict):
    """The Events API body (`event_callback`), as HTTP and Socket Mode both deliver it."""

    type: str
    team_id: str
    event_id: str
    event: MessageEvent


class SlashCommand(TypedDict):
    command: str
    text: str
    user_id: str
    channel_id: str
    team_id: str
    response_url: str


class UserProfile(TypedDict):
    display_name: NotRequired[str]
    real_name: NotRequired[str]


class User(TypedDict):
    id: str
    name: NotRequired[str]
    real_name: NotRequired[str]
    profile: NotRequired[UserProfile]
