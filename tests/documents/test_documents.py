"""Documents end to end through the engine: real Redis, the real worker process, the
fake chat-completions server. What reaches the model, what the footer says, what is
stored, and each refusal."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from bot.conversation import Attachment, ConversationKey, DocumentRef, IncomingMessage, Turn
from bot.documents.limits import DocumentLimits, Extraction
from bot.documents.worker import DocumentWorker
from bot.engine import Engine, EngineConfig
from bot.errors import DocumentError, DocumentTooComplex
from bot.llm.client import ChatClient
from bot.metrics import Metrics
from bot.settings import Limits, RetryPolicy, Settings
from bot.store import ConversationStore
from tests.fakes.documents import docx_file, encrypted_pdf, pdf, xlsx_file, zip_bomb
from tests.fakes.llm_server import FakeLLM, Reply
from tests.test_engine import RecordingSink

KEY = ConversationKey("test", "T1", "C1", "docs-thread")
PDF_MIME = "application/pdf"


class CountingWorker(DocumentWorker):
    def __init__(self) -> None:
        super().__init__()
        self.jobs = 0

    async def extract(
        self, data: bytes, name: str, mime: str, limits: DocumentLimits
    ) -> Extraction:
        self.jobs += 1
        return await super().extract(data, name, mime, limits)


def make_engine(fake_llm: FakeLLM, redis_client: aioredis.Redis, limits: Limits) -> Engine:
    llm = ChatClient(
        api_key=SecretStr(fake_llm.api_key or ""),
        base_url=fake_llm.base_url,
        fallback_model="gpt-5.1",
        retry=RetryPolicy(max_attempts=1),
    )
    return Engine(
        store=ConversationStore(redis_client, limits),
        llm=llm,
        config=EngineConfig(model="gpt-5.5", system_prompt="Be brief.", limits=limits),
        metrics=Metrics(),
    )


@pytest.fixture
async def engine(fake_llm: FakeLLM, redis_client: aioredis.Redis) -> AsyncIterator[Engine]:
    engine = make_engine(fake_llm, redis_client, Limits(max_document_pages=40))
    yield engine
    await engine.llm.aclose()


async def ask(engine: Engine, fake_llm: FakeLLM, text: str, *files: Attachment) -> RecordingSink:
    fake_llm.enqueue(Reply(text="Read it."))
    sink = RecordingSink()
    await engine.handle(IncomingMessage(KEY, text, author="ana", files=list(files)), sink)
    assert sink.final is not None, sink.failure
    return sink


def user_text(fake_llm: FakeLLM) -> str:
    return fake_llm.requests[-1].last_user_text


async def test_marker_reaches_the_model_with_its_page_and_scans_as_images(
    engine: Engine, fake_llm: FakeLLM
) -> None:
    pages: list[str | None] = [f"Background, page {n}." for n in range(1, 121)]
    pages[6] = "The launch code word is BLUE HERON."
    pages[9] = pages[10] = pages[11] = None  # scanned pages
    report = Attachment("report.pdf", PDF_MIME, pdf(pages))
    sink = await ask(engine, fake_llm, "What is the code word?", report)

    sent = user_text(fake_llm)
    assert "What is the code word?" in sent
    assert "## Page 7\n\nThe launch code word is BLUE HERON." in sent
    assert "## Page 40" in sent and "## Page 41" not in sent
    urls = fake_llm.requests[-1].image_urls
    assert len(urls) == 3 and all(u.startswith("data:image/png;base64,") for u in urls)
    assert sink.final is not None
    assert "“report.pdf”: read pages 1-40 of 120; 3 scanned pages sent as images." in (
        sink.final.notes
    )


async def test_a_document_is_read_once_and_history_holds_a_reference(
    fake_llm: FakeLLM, redis_client: aioredis.Redis
) -> None:
    engine = make_engine(fake_llm, redis_client, Limits())
    worker = CountingWorker()
    engine.documents._worker = worker
    book = xlsx_file({"Budget": [["Item", "Cost"], ["Rent", 1200]], "Ideas": [["GOLDEN EEL"]]})
    data = Attachment("budget.xlsx", "", book)
    await ask(engine, fake_llm, "Summarise", data)
    await ask(engine, fake_llm, "And the ideas sheet?")
    await ask(engine, fake_llm, "Same file again", data)
    await engine.llm.aclose()

    assert worker.jobs == 1
    # the second request, with no attachment, still carries the sheet from history
    assert "GOLDEN EEL" in json.dumps(fake_llm.requests[1].body["messages"])
    conv = "parley:conv:{" + KEY.id + "}"
    stored = [Turn.from_json(raw) for raw in await redis_client.lrange(conv, 0, -1)]
    refs = [p for t in stored for p in t.parts if isinstance(p, DocumentRef)]
    assert [r.name for r in refs] == ["budget.xlsx", "budget.xlsx"]
    assert all(
        "GOLDEN EEL" not in raw.decode()
        for raw in await redis_client.lrange("parley:conv:{" + KEY.id + "}", 0, -1)
    )
    ttl = await redis_client.ttl(f"parley:doc:{refs[0].sha256}")
    assert 0 < ttl <= Limits().history_ttl


async def test_an_expired_document_is_named_not_sent(
    engine: Engine, fake_llm: FakeLLM, redis_client: aioredis.Redis
) -> None:
    await ask(engine, fake_llm, "read this", Attachment("notes.txt", "text/plain", b"TEAL CRANE"))
    await redis_client.delete(*await redis_client.keys("parley:doc:*"))
    await ask(engine, fake_llm, "what did it say?")
    history = json.dumps(fake_llm.requests[-1].body["messages"], ensure_ascii=False)
    assert "[the document “notes.txt” has expired]" in history and "TEAL CRANE" not in history


async def test_a_refused_file_is_refused_from_the_cache_the_second_time(
    fake_llm: FakeLLM, redis_client: aioredis.Redis
) -> None:
    engine = make_engine(fake_llm, redis_client, Limits())
    engine.documents._worker = worker = CountingWorker()
    locked = Attachment("locked.pdf", PDF_MIME, encrypted_pdf())
    first = await ask(engine, fake_llm, "open it", locked)
    second = await ask(engine, fake_llm, "please?", locked)
    await engine.llm.aclose()
    assert worker.jobs == 1
    assert first.final is not None and second.final is not None
    assert first.final.notes == second.final.notes
    assert "password-protected" in first.final.notes[0]


async def test_refusals_are_plain_notes_and_the_message_is_still_answered(
    engine: Engine, fake_llm: FakeLLM
) -> None:
    files = [
        Attachment("locked.pdf", PDF_MIME, encrypted_pdf()),
        Attachment("broken.pdf", PDF_MIME, b"%PDF-1.7\nnothing else"),
        Attachment("bomb.docx", "", zip_bomb(256 * 1024 * 1024)),
        Attachment("old.doc", "application/msword", b"\xd0\xcf\x11\xe0legacy"),
        Attachment("notes.md", "text/markdown", b"# Plan\n- ship it\n"),
    ]
    sink = await ask(engine, fake_llm, "What do these say?", *files)
    assert sink.final is not None and sink.final.text == "Read it."
    notes = "\n".join(sink.final.notes)
    assert "I can't read “locked.pdf”: it is password-protected." in notes
    assert "I can't read “broken.pdf”: it is not a PDF I can open (damaged?)." in notes
    assert "I didn't read “bomb.docx”: it would inflate to more than 200 MB" in notes
    assert "I can't read “old.doc”: old Word .doc files aren't supported" in notes
    sent = user_text(fake_llm)
    assert "What do these say?" in sent and "- ship it" in sent


async def test_history_goes_first_then_the_document_is_cut_and_the_footer_says_so(
    fake_llm: FakeLLM, redis_client: aioredis.Redis
) -> None:
    engine = make_engine(fake_llm, redis_client, Limits(context_budget=3_000))
    for n in range(3):
        await ask(engine, fake_llm, f"earlier question {n} " + "filler " * 300)
    pages = [f"Section {n}. " + "lorem ipsum dolor " * 60 for n in range(1, 31)]
    sink = await ask(engine, fake_llm, "Summarise", Attachment("big.pdf", PDF_MIME, pdf(pages)))
    await engine.llm.aclose()

    messages = fake_llm.requests[-1].body["messages"]
    assert [m["role"] for m in messages] == ["system", "user"]  # older turns left out first
    assert sink.final is not None
    notes = "\n".join(sink.final.notes)
    assert "Older messages in this thread were left out" in notes
    assert "“big.pdf” was cut to fit the model's context: read up to page " in notes
    sent = user_text(fake_llm)
    assert "## Page 1\n" in sent and "## Page 30" not in sent
    # The document reaches the model marked as the file's data, cut inside its block.
    assert 'Summarise <<<UNTRUSTED source="document “big.pdf”"' in sent
    assert re.search(r"left out to fit the model's context\.\]\n<<<END UNTRUSTED id=\w+>>>$", sent)


async def test_a_file_over_the_size_limit_is_refused_before_reading(
    fake_llm: FakeLLM, redis_client: aioredis.Redis
) -> None:
    engine = make_engine(fake_llm, redis_client, Limits(max_document_bytes=1024 * 1024))
    big = Attachment("huge.csv", "text/csv", b"a,b\n" * 300_000)
    sink = await ask(engine, fake_llm, "look", big)
    await engine.llm.aclose()
    assert sink.final is not None
    assert "I didn't read “huge.csv”: it is 1.1 MB, over the 1.0 MB limit." in sink.final.notes


async def test_timeout_and_memory_limit_refuse_and_the_next_document_is_read() -> None:
    worker = DocumentWorker()
    data = pdf(["hello"] * 3)
    with pytest.raises(DocumentTooComplex, match="took longer than"):
        await worker.extract(data, "slow.pdf", PDF_MIME, DocumentLimits(timeout=0.01))
    big, small_memory = b"x" * (30 * 2**20), DocumentLimits(memory_bytes=64 * 2**20)
    with pytest.raises(DocumentTooComplex, match="more than 64 MB of memory"):
        await worker.extract(big, "big.txt", "text/plain", small_memory)
    read = await worker.extract(data, "fine.pdf", PDF_MIME, DocumentLimits())
    assert "## Page 3\n\nhello" in read.text


async def test_docx_through_the_worker_keeps_its_table() -> None:
    data = docx_file("Plan", ["SILVER FOX"], [["a", "b"], ["1", "2"]])
    read = await DocumentWorker().extract(data, "plan.docx", "", DocumentLimits())
    assert "SILVER FOX" in read.text and "| a | b |" in read.text


@settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.binary(min_size=1, max_size=600), st.sampled_from(["x.pdf", "x.docx", "x.xlsx", "x.bin"]))
async def test_arbitrary_bytes_through_the_worker_become_a_reading_or_a_refusal(
    data: bytes, name: str
) -> None:
    try:
        read = await DocumentWorker().extract(data, name, "", DocumentLimits())
    except DocumentError as refused:
        assert refused.user_message
    else:
        assert read.text.startswith("Attached ")


def test_document_limits_come_from_their_environment_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BOT_MAX_DOCUMENT_CHARS", "50000")
    monkeypatch.setenv("BOT_MAX_DOCUMENT_PAGES", "12")
    limits = DocumentLimits.from_limits(Settings(_env_file=None).limits())  # type: ignore[call-arg]
    assert (limits.max_chars, limits.max_pages) == (50_000, 12)
