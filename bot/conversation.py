"""The platform-free conversation model.

A conversation is identified by a `ConversationKey` (platform, workspace or guild,
channel, thread) and is a list of `Turn`s. Adapters turn platform events into an
`IncomingMessage`; the engine turns stored turns into the API's `messages`.

Images are never inlined in stored turns: a turn holds an `ImageRef` (content hash and
MIME type) and the bytes live once in the store, keyed by that hash. Documents likewise:
a turn holds a `DocumentRef` and the extracted text lives once in the document cache
(`bot.documents.cache`), expanded into the request when it is built.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from bot.text.neutralize import UNTRUSTED_CONTENT_PROMPT, urls_in, wrap_untrusted
from bot.tokens import IMAGE_TOKENS, estimate_tokens

if TYPE_CHECKING:
    from bot.policy import Persona


class Role(StrEnum):
    USER = "user"
    ASSISTANT = "assistant"
    SYSTEM = "system"


@dataclass(frozen=True, slots=True)
class ConversationKey:
    """Where a conversation lives. `thread` is the channel itself for DMs without threads."""

    platform: str
    workspace: str
    channel: str
    thread: str

    @property
    def id(self) -> str:
        return f"{self.platform}:{self.workspace}:{self.channel}:{self.thread}"


@dataclass(frozen=True, slots=True)
class TextPart:
    text: str


@dataclass(frozen=True, slots=True)
class ImageRef:
    """An image whose bytes are in the store under `sha256`."""

    sha256: str
    mime: str


@dataclass(frozen=True, slots=True)
class ImageURL:
    """A public https image the API fetches itself."""

    url: str


@dataclass(frozen=True, slots=True)
class DocumentRef:
    """A document whose extracted text is cached under `sha256` (the file's hash).

    `tokens` is the text's estimated size, so the context budget counts it without
    reading it.
    """

    sha256: str
    name: str
    tokens: int


Part = TextPart | ImageRef | ImageURL | DocumentRef


@dataclass(frozen=True, slots=True)
class Turn:
    """One message of a conversation.

    A person's turn also says who wrote it (`author_id`) and whom they mentioned
    (`mentions`, platform user ids): the people an answer may still mention.
    """

    role: Role
    parts: tuple[Part, ...]
    author: str = ""
    tokens: int = 0  # estimated once, when the turn is made
    author_id: str = ""
    mentions: tuple[str, ...] = ()

    @classmethod
    def make(
        cls,
        role: Role,
        parts: Sequence[Part],
        author: str = "",
        *,
        author_id: str = "",
        mentions: Collection[str] = (),
    ) -> Turn:
        tokens = estimate_tokens(author) + sum(_part_tokens(p) for p in parts)
        return cls(
            role=role,
            parts=tuple(parts),
            author=author,
            tokens=tokens + 4,
            author_id=author_id,
            mentions=tuple(sorted(mentions)),
        )

    @classmethod
    def text(
        cls,
        role: Role,
        text: str,
        author: str = "",
        *,
        author_id: str = "",
        mentions: Collection[str] = (),
    ) -> Turn:
        return cls.make(role, [TextPart(text)], author, author_id=author_id, mentions=mentions)

    def with_parts(self, parts: Sequence[Part]) -> Turn:
        """The same message by the same person, holding `parts` instead."""
        return Turn.make(
            self.role, parts, self.author, author_id=self.author_id, mentions=self.mentions
        )

    @property
    def by_person(self) -> bool:
        """Written by a person the platform named (not the bot, not another bot)."""
        return self.role is Role.USER and bool(self.author_id)

    @property
    def plain_text(self) -> str:
        return "\n".join(p.text for p in self.parts if isinstance(p, TextPart))

    @property
    def image_hashes(self) -> list[str]:
        return [p.sha256 for p in self.parts if isinstance(p, ImageRef)]

    @property
    def documents(self) -> list[DocumentRef]:
        return [p for p in self.parts if isinstance(p, DocumentRef)]

    def to_json(self) -> str:
        parts: list[dict[str, str]] = []
        for p in self.parts:
            if isinstance(p, TextPart):
                parts.append({"t": p.text})
            elif isinstance(p, ImageRef):
                parts.append({"img": p.sha256, "mime": p.mime})
            elif isinstance(p, DocumentRef):
                parts.append({"doc": p.sha256, "name": p.name, "k": str(p.tokens)})
            else:
                parts.append({"url": p.url})
        data: dict[str, Any] = {"r": self.role.value, "a": self.author, "k": self.tokens}
        if self.author_id:
            data["i"] = self.author_id
        if self.mentions:
            data["m"] = list(self.mentions)
        data["p"] = parts
        return json.dumps(data, ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str | bytes) -> Turn:
        data = json.loads(raw)
        parts: list[Part] = []
        for p in data["p"]:
            if "t" in p:
                parts.append(TextPart(p["t"]))
            elif "img" in p:
                parts.append(ImageRef(p["img"], p["mime"]))
            elif "doc" in p:
                parts.append(DocumentRef(p["doc"], p["name"], int(p["k"])))
            else:
                parts.append(ImageURL(p["url"]))
        return cls(
            role=Role(data["r"]),
            parts=tuple(parts),
            author=data["a"],
            tokens=data["k"],
            author_id=str(data.get("i") or ""),
            mentions=tuple(str(m) for m in data.get("m") or ()),
        )


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file as the adapter downloaded it. The engine decides what it becomes."""

    name: str
    mime: str
    data: bytes


SeedLoader = Callable[[], Awaitable[list[Turn]]]


@dataclass(slots=True)
class IncomingMessage:
    """One message a person sent to the bot, normalized by an adapter."""

    key: ConversationKey
    text: str
    author: str = ""  # display name, shown to the model in multi-person threads
    author_id: str = ""
    mentions: frozenset[str] = frozenset()  # user ids the person mentioned (raw, not names)
    files: list[Attachment] = field(default_factory=list)
    image_urls: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what the adapter skipped, shown to the user
    event_id: str | None = None  # the event it came in as (the intake claimed it), for logs
    seed: SeedLoader | None = None  # earlier thread messages, read if the store has none
    model: str | None = None  # a per-message model choice (Discord's `/chat model:`)
    persona: Persona | None = None  # the policy's persona here; None: the engine's config


def people_in(turns: Iterable[Turn]) -> frozenset[str]:
    """The user ids of everyone who wrote in `turns` or was mentioned by a person there."""
    people: set[str] = set()
    for turn in turns:
        if turn.by_person:
            people.add(turn.author_id)
            people.update(turn.mentions)
    return frozenset(people)


def links_in(turns: Iterable[Turn]) -> frozenset[str]:
    """The URLs people wrote in `turns` (normalized as `bot.text.neutralize.urls_in` does)."""
    links: set[str] = set()
    for turn in turns:
        if turn.by_person:
            links |= urls_in(turn.plain_text)
    return frozenset(links)


def _part_tokens(part: Part) -> int:
    if isinstance(part, TextPart):
        return estimate_tokens(part.text)
    if isinstance(part, DocumentRef):
        return part.tokens
    return IMAGE_TOKENS


def to_api_messages(
    system_prompt: str,
    turns: Sequence[Turn],
    images: Mapping[str, bytes],
    documents: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """The API's `messages` for `turns`: the system message first (`system_text`), images
    as data URLs, documents as their text (`documents`: sha256 -> text) inside a block
    marked untrusted (`bot.text.neutralize.wrap_untrusted`). What people wrote is never wrapped.

    An image or document that has expired from the store is replaced by a short note,
    so an old thread still gets an answer.
    """
    documents = documents or {}
    messages: list[dict[str, Any]] = []
    messages.append({"role": "system", "content": system_text(system_prompt)})
    for turn in turns:
        prefix = f"{turn.author}: " if turn.role is Role.USER and turn.author else ""
        if all(isinstance(p, TextPart) for p in turn.parts):
            messages.append({"role": turn.role.value, "content": prefix + turn.plain_text})
            continue
        content: list[dict[str, Any]] = []
        if prefix:
            content.append({"type": "text", "text": prefix.rstrip()})
        for p in turn.parts:
            if isinstance(p, TextPart):
                content.append({"type": "text", "text": p.text})
            elif isinstance(p, ImageURL):
                content.append({"type": "image_url", "image_url": {"url": p.url}})
            elif isinstance(p, DocumentRef):
                text = documents.get(p.sha256)
                # What a file says is data from whoever wrote the file, not the person.
                shown = (
                    wrap_untrusted(f"document “{p.name}”", text)
                    if text
                    else f"[the document “{p.name}” has expired]"
                )
                content.append({"type": "text", "text": shown})
            elif p.sha256 in images:
                url = data_url(p.mime, images[p.sha256])
                content.append({"type": "image_url", "image_url": {"url": url}})
            else:
                content.append({"type": "text", "text": "[an image that has expired]"})
        messages.append({"role": turn.role.value, "content": content})
    return messages


def system_text(system_prompt: str) -> str:
    """The system message: the persona's prompt, then what to make of untrusted blocks.

    The second part is always there, not only when a request carries documents or tool
    results: the system message then stays the same all through a conversation (the
    API's prompt cache keeps it), and tool results join a request after it was built.
    """
    return (
        f"{system_prompt}\n\n{UNTRUSTED_CONTENT_PROMPT}"
        if system_prompt
        else UNTRUSTED_CONTENT_PROMPT
    )


def data_url(mime: str, data: bytes) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
