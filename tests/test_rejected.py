"""What is kept of a turn the model refused, and the store's replacement of that turn."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis
from hypothesis import given
from hypothesis import strategies as st

from bot.conversation import (
    ConversationKey,
    DocumentRef,
    ImageRef,
    ImageURL,
    Part,
    Role,
    TextPart,
    Turn,
)
from bot.errors import BadRequestError, LLMError, RequestTooLargeError
from bot.rejected import is_content_rejection, without_rejected
from bot.settings import Limits
from bot.store import ConversationStore

KEY = ConversationKey("test", "T1", "C1", "rejected")
IMAGE = ImageRef("ab" * 32, "image/png")

parts = st.lists(
    st.one_of(
        st.builds(TextPart, st.text(max_size=50)),
        st.just(IMAGE),
        st.builds(ImageURL, st.just("https://example.com/a.png")),
    ),
    max_size=6,
)
rejections = st.one_of(
    st.builds(RequestTooLargeError, st.just("too large")),
    st.builds(BadRequestError, st.just("bad image"), param=st.sampled_from([None, "content"])),
)


@pytest.mark.parametrize(
    ("error", "about_content"),
    [
        (BadRequestError("Invalid image"), True),
        (BadRequestError("bad", param="messages"), True),
        (RequestTooLargeError("Image file too large"), True),
        (BadRequestError("bad", param="temperature"), False),
        (BadRequestError("no tools", param="tools"), False),
        (LLMError(), False),
    ],
)
def test_what_counts_as_refused_content(error: LLMError, about_content: bool) -> None:
    assert is_content_rejection(error) is about_content


@given(parts, rejections)
def test_a_refused_turn_keeps_its_text_in_order_and_no_image(
    turn_parts: list[Part], error: LLMError
) -> None:
    turn = Turn.make(Role.USER, turn_parts, "ana")
    kept = without_rejected(turn, error)
    images = [p for p in turn_parts if not isinstance(p, TextPart)]
    if not images:
        assert kept is None  # text alone: nothing to blame
        return
    assert kept is not None and kept.turn.author == "ana" and kept.turn.role is Role.USER
    assert all(isinstance(p, TextPart) for p in kept.turn.parts)
    texts = [p.text for p in turn_parts if isinstance(p, TextPart)]
    assert [p.text for p in kept.turn.parts[:-1]] == texts
    note = kept.turn.parts[-1]
    assert isinstance(note, TextPart) and "removed" in note.text
    assert kept.removed == ("the image" if len(images) == 1 else f"the {len(images)} images")


def test_a_request_too_large_removes_the_documents_and_keeps_the_text() -> None:
    doc = DocumentRef("cd" * 32, "log.txt", 5_000)
    turn = Turn.make(Role.USER, [TextPart("why?"), doc], "ana")
    kept = without_rejected(turn, RequestTooLargeError("too large"))
    assert kept is not None and kept.removed == "the document “log.txt”"
    assert kept.turn.parts[0] == TextPart("why?")
    assert not any(isinstance(p, DocumentRef) for p in kept.turn.parts)
    assert kept.turn.tokens < turn.tokens
    # A 400 on content is about an image, never a document the API saw as text.
    assert without_rejected(turn, BadRequestError("bad")) is None


async def test_the_held_turn_is_replaced_only_while_it_is_still_the_last(
    redis_client: aioredis.Redis,
) -> None:
    store = ConversationStore(redis_client, Limits())
    await store.extend(KEY, [Turn.text(Role.USER, "earlier")])
    question = Turn.make(Role.USER, [TextPart("see"), IMAGE])
    kept = Turn.text(Role.USER, "see [removed]")
    async with store.turn(KEY, question, {IMAGE.sha256: b"png"}, 10_000) as held:
        assert await held.replace(question, kept)
        # Not the newest turn any more: nothing is overwritten.
        assert not await held.replace(question, kept)
        await store.reset(KEY)
        assert not await held.replace(kept, question)
    assert not await store.exists(KEY)
    async with store.turn(KEY, question, {IMAGE.sha256: b"png"}, 10_000) as held:
        await held.finish(Turn.text(Role.ASSISTANT, "a picture"))
    async with store.turn(KEY, Turn.text(Role.USER, "next"), {}, 10_000) as held:
        assert [t.plain_text for t in held.history.turns] == ["see", "a picture", "next"]
        # Once the lock is no longer ours, the turn is not ours to replace either.
        await redis_client.delete(*[k async for k in redis_client.scan_iter("parley:lock:*")])
        assert not await held.replace(Turn.text(Role.USER, "next"), kept)
