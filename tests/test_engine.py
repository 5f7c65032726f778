"""The engine end to end: real Redis, real HTTP to the fake chat-completions server."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace

import pytest
import redis.asyncio as aioredis
from PIL import Image
from pydantic import SecretStr

from bot.conversation import Attachment, ConversationKey, IncomingMessage, Role, Turn
from bot.engine import HELP_TEXT, RESTART_TEXT, Engine, EngineConfig
from bot.llm.client import ChatClient
from bot.metrics import Metrics
from bot.reply import Audience
from bot.reply.sink import FinalReply
from bot.settings import Limits, RetryPolicy, Settings
from bot.store import ConversationStore
from bot.text.neutralize import UNTRUSTED_CONTENT_PROMPT, untrusted_tool_result
from tests.fakes.llm_server import Cut, Error, FakeLLM, FakeToolCall, Reply

KEY = ConversationKey("test", "T1", "C1", "thread-1")


@dataclass
class RecordingSink:
    """Our own ReplySink protocol, recorded: what a platform adapter would be told."""

    min_update_interval: float = 0.0
    first_update_delay: float = 0.0
    calls: list[str] = field(default_factory=list)
    updates: list[str] = field(default_factory=list)
    progress_seen: list[str] = field(default_factory=list)
    final: FinalReply | None = None
    failure: str | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)
    audience: Audience | None = None

    async def start(self) -> None:
        self.calls.append("start")

    def meet(self, audience: Audience) -> None:
        self.audience = audience

    async def progress(self, status: str) -> None:
        self.progress_seen.append(status)

    async def update(self, text: str) -> None:
        self.updates.append(text)

    async def finish(self, reply: FinalReply) -> None:
        self.calls.append("finish")
        self.final = reply
        self.done.set()

    async def fail(self, message: str) -> None:
        self.calls.append("fail")
        self.failure = message
        self.done.set()


async def _no_sleep(_: float) -> None:
    return None


@pytest.fixture
async def engine(fake_llm: FakeLLM, redis_client: aioredis.Redis) -> AsyncIterator[Engine]:
    limits = Limits(max_images=2, max_input_chars=500, context_budget=5_000)
    llm = ChatClient(
        api_key=SecretStr(fake_llm.api_key or ""),
        base_url=fake_llm.base_url,
        fallback_model="gpt-5.1",
        retry=RetryPolicy(max_attempts=3),
        sleep=_no_sleep,
    )
    engine = Engine(
        store=ConversationStore(redis_client, limits),
        llm=llm,
        config=EngineConfig(model="gpt-5.5", system_prompt="Be brief.", limits=limits),
        metrics=Metrics(),
    )
    yield engine
    await llm.aclose()


def _msg(text: str, **kwargs: object) -> IncomingMessage:
    return IncomingMessage(key=KEY, text=text, author="ana", **kwargs)  # type: ignore[arg-type]


def _png(color: str = "red", size: tuple[int, int] = (4, 4), fmt: str = "PNG") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, format=fmt)
    return out.getvalue()


async def test_the_sink_learns_who_is_in_the_conversation(engine: Engine) -> None:
    """Before any text is shown, the sink is told whom it may mention and which links
    people wrote; the next turn still knows them from the store."""
    first = RecordingSink()
    text = "see https://docs.example.com/a and ask Bo"
    await engine.handle(_msg(text, author_id="U1", mentions=frozenset({"U2"})), first)
    assert first.audience is not None
    assert first.audience.people == {"U1", "U2"}
    assert first.audience.links == {"https://docs.example.com/a"}
    assert first.audience.conversation == KEY.id and not first.audience.allow_mentions

    second = RecordingSink()
    await engine.handle(_msg("thanks", author_id="U3"), second)
    assert second.audience is not None and second.audience.people == {"U1", "U2", "U3"}


async def test_multi_turn_conversation_is_streamed_and_remembered(
    engine: Engine, fake_llm: FakeLLM
) -> None:
    first = RecordingSink()
    await engine.handle(_msg("What is Redis?"), first)
    assert first.calls == ["start", "finish"]
    assert first.final is not None and first.final.text == "You said: ana: What is Redis?"
    assert len(first.updates) > 1  # it streamed, each update the answer so far
    assert all(first.final.text.startswith(update) for update in first.updates)

    second = RecordingSink()
    await engine.handle(_msg("And in one line?"), second)
    sent = fake_llm.requests[-1].body["messages"]
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "user"]
    assert sent[0]["content"] == f"Be brief.\n\n{UNTRUSTED_CONTENT_PROMPT}"
    assert sent[2]["content"] == "You said: ana: What is Redis?"
    assert sent[3]["content"] == "ana: And in one line?"
    assert fake_llm.requests[-1].model == "gpt-5.5"
    assert fake_llm.requests[-1].stream


async def test_empty_message_gets_help_without_a_model_call(
    engine: Engine, fake_llm: FakeLLM
) -> None:
    sink = RecordingSink()
    await engine.handle(_msg("   "), sink)
    assert sink.final is not None and sink.final.text == HELP_TEXT
    assert fake_llm.requests == []


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (_msg("x" * 501), "Your message is 501 characters long; I can take up to 500."),
        (
            _msg("look", files=[Attachment(f"{i}.png", "image/png", _png()) for i in range(3)]),
            "You attached 3 images; I can look at up to 2 per message.",
        ),
        (
            _msg("", files=[Attachment("x.png", "image/png", b"garbage")]),
            "I couldn't read the image “x.png”",
        ),
        (
            _msg("look", files=[Attachment("huge.png", "image/png", b"0" * (11 * 2**20))]),
            "The image “huge.png” is larger than 10 MB.",
        ),
    ],
    ids=["too-long", "too-many-images", "unreadable-image", "oversized-image"],
)
async def test_bad_input_is_explained_without_a_model_call(
    engine: Engine, fake_llm: FakeLLM, message: IncomingMessage, expected: str
) -> None:
    sink = RecordingSink()
    await engine.handle(message, sink)
    assert sink.calls == ["start", "fail"]
    assert sink.failure is not None and sink.failure.startswith(expected)
    assert fake_llm.requests == []


async def test_images_reach_the_model_as_data_urls_and_are_stored_once(
    engine: Engine, fake_llm: FakeLLM, redis_client: aioredis.Redis
) -> None:
    gif = _png("blue", fmt="GIF")
    await engine.handle(
        _msg("what is this?", files=[Attachment("a.gif", "image/gif", gif)]), RecordingSink()
    )
    urls = fake_llm.requests[-1].image_urls
    assert len(urls) == 1 and urls[0].startswith("data:image/png;base64,")  # GIF became PNG
    sink = RecordingSink()
    await engine.handle(_msg("and again?", files=[Attachment("b.gif", "image/gif", gif)]), sink)
    assert sink.final is not None and "[image]" in sink.final.text
    image_keys = [k async for k in redis_client.scan_iter("parley:img:*")]
    assert len(image_keys) == 1  # same bytes, one copy
    history = await redis_client.lrange("parley:conv:{" + KEY.id + "}", 0, -1)
    assert all(len(raw) < 1000 for raw in history)  # turns refer to images, never inline them


async def test_text_files_are_read_and_other_files_noted(engine: Engine, fake_llm: FakeLLM) -> None:
    files = [
        Attachment("notes.md", "text/markdown", b"# Plan\nship it"),
        Attachment("deck.pdf", "application/pdf", b"%PDF"),
    ]
    sink = RecordingSink()
    await engine.handle(_msg("summarize", files=files), sink)
    content = fake_llm.requests[-1].last_user_text
    assert "“notes.md”" in content and "ship it" in content
    assert sink.final is not None
    assert any("deck.pdf" in note for note in sink.final.notes)


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (402, "The operator's model quota is used up"),
        (401, "I'm misconfigured"),
        (400, "The model rejected the request: Invalid request parameters"),
    ],
)
async def test_api_errors_become_actionable_messages(
    engine: Engine, fake_llm: FakeLLM, status: int, expected: str
) -> None:
    fake_llm.enqueue(Error(status))
    sink = RecordingSink()
    await engine.handle(_msg("hi"), sink)
    assert sink.failure is not None and sink.failure.startswith(expected)
    assert fake_llm.api_key not in sink.failure
    assert len(fake_llm.requests) == 1  # never retried


async def test_413_names_the_image(engine: Engine, fake_llm: FakeLLM) -> None:
    fake_llm.enqueue(Error(413))
    sink = RecordingSink()
    await engine.handle(
        _msg("see", files=[Attachment("cat.jpg", "image/jpeg", _png(fmt="JPEG"))]), sink
    )
    assert sink.failure is not None and sink.failure.startswith("The image “cat.jpg” is too large")


async def test_unavailable_model_falls_back_and_says_so(engine: Engine, fake_llm: FakeLLM) -> None:
    fake_llm.per_model["gpt-5.5"] = Error(404, fallback_suggestion="")
    sink = RecordingSink()
    await engine.handle(_msg("hi"), sink)
    assert sink.final is not None and sink.final.text.startswith("You said:")
    assert fake_llm.requests[-1].model == "gpt-5.1"
    assert any("gpt-5.1" in note for note in sink.final.notes)


async def test_stream_cut_after_text_keeps_the_text(engine: Engine, fake_llm: FakeLLM) -> None:
    fake_llm.enqueue(Cut(after_chunks=3, reply=Reply("one two three four five six seven")))
    sink = RecordingSink()
    await engine.handle(_msg("hi"), sink)
    assert sink.final is not None
    assert "one two three four five six seven".startswith(sink.final.text)
    assert sink.final.text
    assert any("cut off" in note for note in sink.final.notes)
    assert len(fake_llm.requests) == 1


async def test_reasoning_shows_as_progress_and_usage_is_counted(
    engine: Engine, fake_llm: FakeLLM
) -> None:
    fake_llm.enqueue(
        Reply(
            "42",
            reasoning="First, add.\nThen check.",
            chunk_delay=0.01,
            usage={
                "prompt_tokens": 9,
                "completion_tokens": 20,
                "total_tokens": 29,
                "completion_tokens_details": {"reasoning_tokens": 15},
            },
        )
    )
    sink = RecordingSink()
    await engine.handle(_msg("6*7?"), sink)
    assert sink.final is not None and sink.final.text == "42"
    assert sink.final.usage.reasoning_tokens == 15
    assert any(status.startswith("Thinking…") for status in sink.progress_seen)
    metrics = engine.metrics.render().decode()
    assert 'parley_tokens_total{kind="reasoning"} 15.0' in metrics


async def test_tool_calls_are_run_and_answered(engine: Engine, fake_llm: FakeLLM) -> None:
    fake_llm.enqueue(
        Reply(tool_calls=[FakeToolCall("calculate", '{"expression": "17*23"}', "call_1")]),
        Reply("It is 391."),
    )
    sink = RecordingSink()
    await engine.handle(_msg("17*23?"), sink)
    assert sink.final is not None and sink.final.text == "It is 391."
    follow_up = fake_llm.requests[-1].body["messages"]
    assert follow_up[-2]["tool_calls"][0]["function"]["name"] == "calculate"
    # A tool's result reaches the model marked as data from that tool.
    content = untrusted_tool_result("calculate", "391")
    assert follow_up[-1] == {"role": "tool", "tool_call_id": "call_1", "content": content}
    assert 'source="tool calculate"' in content and "\n391\n" in content
    assert any("calculate" in status for status in sink.progress_seen)


async def test_messages_in_one_thread_are_answered_in_order(
    engine: Engine, fake_llm: FakeLLM
) -> None:
    fake_llm.enqueue(Reply("first answer", first_token_delay=0.3))
    a, b = RecordingSink(), RecordingSink()
    first = asyncio.create_task(engine.handle(_msg("one"), a))
    await asyncio.sleep(0.05)
    await engine.handle(_msg("two"), b)
    await first
    second_request = fake_llm.requests[1].body["messages"]
    assert [m["content"] for m in second_request[1:]] == ["ana: one", "first answer", "ana: two"]


async def test_seed_fills_a_new_conversation_once(engine: Engine, fake_llm: FakeLLM) -> None:
    calls = 0

    async def seed() -> list[Turn]:
        nonlocal calls
        calls += 1
        return [Turn.text(Role.USER, "earlier question", "bo")]

    await engine.handle(_msg("what did bo ask?", seed=seed), RecordingSink())
    await engine.handle(_msg("and now?", seed=seed), RecordingSink())
    assert calls == 1
    first = fake_llm.requests[0].body["messages"]
    assert first[1]["content"] == "bo: earlier question"


async def test_model_override_and_reset(engine: Engine, fake_llm: FakeLLM) -> None:
    await engine.set_model(KEY, "gpt-5.1-thinking")
    await engine.handle(_msg("hi"), RecordingSink())
    assert fake_llm.requests[-1].model == "gpt-5.1-thinking"
    assert await engine.has_history(KEY)
    await engine.reset(KEY)
    assert not await engine.has_history(KEY)
    await engine.handle(_msg("hi", model="gpt-5.1-chat"), RecordingSink())
    assert fake_llm.requests[-1].model == "gpt-5.1-chat"
    assert len(fake_llm.requests[-1].body["messages"]) == 2


async def test_updates_are_throttled_to_the_sink_interval(
    engine: Engine, fake_llm: FakeLLM
) -> None:
    fake_llm.enqueue(Reply("word " * 60, chunk_size=5, chunk_delay=0.01))  # ~0.6 s of stream
    sink = RecordingSink(min_update_interval=0.2)
    await engine.handle(_msg("talk"), sink)
    assert sink.final is not None and sink.final.text == "word " * 60
    assert 2 <= len(sink.updates) <= 6


async def test_redis_down_gives_a_clear_reply(fake_llm: FakeLLM) -> None:
    store = ConversationStore.from_settings(Settings(redis_url="redis://127.0.0.1:1/0"))
    llm = ChatClient(api_key=SecretStr(fake_llm.api_key or ""), base_url=fake_llm.base_url)
    engine = Engine(store=store, llm=llm, config=EngineConfig())
    sink = RecordingSink()
    try:
        await engine.handle(_msg("hi"), sink)
    finally:
        await llm.aclose()
        await store.aclose()
    assert sink.failure is not None and "temporarily unavailable" in sink.failure
    assert fake_llm.requests == []


async def test_drain_cancels_late_answers_with_a_message(engine: Engine, fake_llm: FakeLLM) -> None:
    fake_llm.enqueue(Reply("slow", first_token_delay=5))
    sink = RecordingSink()
    task = asyncio.create_task(engine.handle(_msg("hi"), sink))
    await asyncio.sleep(0.2)
    assert engine.in_flight == 1
    await engine.drain(grace=0.1)
    await asyncio.gather(task, return_exceptions=True)
    assert sink.failure == RESTART_TEXT


async def test_drain_waits_for_adapter_work_tracked_before_handle(
    engine: Engine, fake_llm: FakeLLM
) -> None:
    sink = RecordingSink()

    async def adapter_event() -> None:
        with engine.track():  # as an adapter does around a download, then the answer
            await asyncio.sleep(0.2)
            await engine.handle(_msg("hi"), sink)

    task = asyncio.create_task(adapter_event())
    await asyncio.sleep(0.05)
    assert engine.in_flight == 1  # counted before the engine has seen the message
    await engine.drain(grace=10)
    assert task.done() and sink.final is not None
    assert engine.in_flight == 0  # nested tracking of the same task is released once


async def test_an_image_bigger_than_the_pixel_budget_is_refused(
    engine: Engine, fake_llm: FakeLLM
) -> None:
    limits = replace(engine.limits, image_decode_pixels=1_000_000)
    small = Engine(store=engine.store, llm=engine.llm, config=replace(engine.config, limits=limits))
    sink = RecordingSink()
    big = Attachment("poster.png", "image/png", _png(size=(1500, 1000)))
    await small.handle(_msg("look", files=[big]), sink)
    assert sink.failure == (
        "The image “poster.png” is 1500x1000 pixels; I can take up to 1 megapixel. "
        "Please resize it and send it again."
    )
    assert fake_llm.requests == []


def _sent_image_urls(fake_llm: FakeLLM) -> list[str]:
    """Every image URL in the last request, in any message."""
    return [
        part["image_url"]["url"]
        for message in fake_llm.requests[-1].body["messages"]
        if isinstance(message["content"], list)
        for part in message["content"]
        if part["type"] == "image_url"
    ]


async def test_an_unreadable_image_is_noted_and_the_rest_answered(
    engine: Engine, fake_llm: FakeLLM
) -> None:
    whole = _png("green", size=(64, 64), fmt="JPEG")
    files = [
        Attachment("cut.jpg", "image/jpeg", whole[: len(whole) // 2]),  # passes verify()
        Attachment("ok.png", "image/png", _png()),
    ]
    sink = RecordingSink()
    await engine.handle(_msg("compare these", files=files), sink)
    assert sink.final is not None and sink.final.text == "You said: ana: compare these [image]"
    assert any(note.startswith("I couldn't read the image “cut.jpg”") for note in sink.final.notes)
    assert len(_sent_image_urls(fake_llm)) == 1


@pytest.mark.parametrize(
    ("rejection", "expected"),
    [
        (Error(400, message="Invalid image: could not process image"), "The model rejected"),
        (Error(413), "The image “a.png” is too large for the model"),
    ],
    ids=["400-invalid-image", "413"],
)
async def test_a_refused_image_is_removed_so_the_thread_keeps_working(
    engine: Engine,
    fake_llm: FakeLLM,
    redis_client: aioredis.Redis,
    rejection: Error,
    expected: str,
) -> None:
    fake_llm.enqueue(rejection)
    first = RecordingSink()
    await engine.handle(
        _msg("what is in this picture?", files=[Attachment("a.png", "image/png", _png())]), first
    )
    assert first.failure is not None and first.failure.startswith(expected)
    assert "I removed the image from this thread, so your next message will work" in first.failure
    stored = await redis_client.lrange("parley:conv:{" + KEY.id + "}", 0, -1)
    assert len(stored) == 1 and Turn.from_json(stored[0]).image_hashes == []

    second = RecordingSink()
    await engine.handle(_msg("then just tell me a joke"), second)
    assert second.final is not None and second.failure is None
    sent = fake_llm.requests[-1].body["messages"]
    assert [m["role"] for m in sent] == ["system", "user", "user"]
    assert sent[1]["content"].startswith("ana: what is in this picture?\n[the image attached")
    assert _sent_image_urls(fake_llm) == []


async def test_an_image_the_api_refuses_by_size_is_removed(
    engine: Engine, fake_llm: FakeLLM
) -> None:
    fake_llm.max_image_bytes = 50  # the fake answers 413 for any bigger image, every time
    sink = RecordingSink()
    await engine.handle(_msg("see", files=[Attachment("cat.png", "image/png", _png())]), sink)
    assert sink.failure is not None and "I removed the image" in sink.failure
    await engine.handle(_msg("and now?"), sink := RecordingSink())
    assert sink.final is not None and _sent_image_urls(fake_llm) == []


async def test_a_too_large_document_is_removed_from_the_thread(
    engine: Engine, fake_llm: FakeLLM
) -> None:
    fake_llm.enqueue(Error(413, message="Request too large"))
    notes = Attachment("log.txt", "text/plain", b"x" * 5_000)
    first = RecordingSink()
    await engine.handle(_msg("why does it fail?", files=[notes]), first)
    assert first.failure is not None
    assert first.failure.startswith("This message is too large for the model.")
    assert "I removed the document “log.txt” from this thread" in first.failure
    await engine.handle(_msg("any idea?"), second := RecordingSink())
    assert second.final is not None
    kept = fake_llm.requests[-1].body["messages"][1]["content"]
    assert kept.startswith("ana: why does it fail?") and "xxxx" not in kept
    assert "“log.txt” attached here was removed" in kept


async def test_a_refused_setting_keeps_the_image(
    engine: Engine, fake_llm: FakeLLM, redis_client: aioredis.Redis
) -> None:
    fake_llm.enqueue(Error(400, message="temperature is not supported", param="temperature"))
    sink = RecordingSink()
    await engine.handle(_msg("see", files=[Attachment("a.png", "image/png", _png())]), sink)
    assert sink.failure == "The model rejected the request: temperature is not supported"
    stored = await redis_client.lrange("parley:conv:{" + KEY.id + "}", 0, -1)
    assert len(Turn.from_json(stored[0]).image_hashes) == 1


async def test_an_answer_complete_within_the_first_update_delay_is_only_finished(
    engine: Engine, fake_llm: FakeLLM
) -> None:
    fake_llm.enqueue(Reply("a short answer", chunk_size=2))
    sink = RecordingSink(first_update_delay=60.0)
    await engine.handle(_msg("hi"), sink)
    assert sink.updates == []
    assert sink.calls == ["start", "finish"]
    assert sink.final is not None and sink.final.text == "a short answer"


async def test_a_longer_answer_starts_showing_after_the_first_update_delay(
    engine: Engine, fake_llm: FakeLLM
) -> None:
    fake_llm.enqueue(Reply("word " * 60, chunk_size=5, chunk_delay=0.02))  # >= 1.2 s of stream
    sink = RecordingSink(first_update_delay=0.2, min_update_interval=0.2)
    await engine.handle(_msg("talk"), sink)
    assert sink.updates, "a long answer is shown while it streams"
    assert len(sink.updates[0]) < len("word " * 60)
    assert sink.final is not None and sink.final.text == "word " * 60


async def test_the_answer_is_posted_before_it_is_stored(
    engine: Engine, redis_client: aioredis.Redis
) -> None:
    conversation = f"{engine.store.prefix}conv:{{{KEY.id}}}"
    stored_when_posted: list[int] = []

    class Watching(RecordingSink):
        async def finish(self, reply: FinalReply) -> None:
            stored_when_posted.append(await redis_client.llen(conversation))
            await super().finish(reply)

    await engine.handle(_msg("hi"), Watching())
    assert stored_when_posted == [1]  # only the question: the reply did not wait for the store
    assert await redis_client.llen(conversation) == 2


async def test_a_shutdown_while_the_posted_answer_is_stored_leaves_it_standing(
    engine: Engine,
) -> None:
    sink = RecordingSink()
    answering = asyncio.create_task(engine.handle(_msg("hi"), sink))
    await sink.done.wait()  # finished: the engine now waits on storing the answer
    answering.cancel()
    with pytest.raises(asyncio.CancelledError):
        await answering
    assert sink.calls == ["start", "finish"]
    assert sink.final is not None and sink.failure is None
