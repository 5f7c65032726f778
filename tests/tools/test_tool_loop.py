"""The engine's tool loop, end to end: real Redis, the fake model asking for tools."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import redis.asyncio as aioredis
from PIL import Image
from pydantic import SecretStr

from bot.engine import Engine, EngineConfig
from bot.llm.client import ChatClient
from bot.llm.types import ToolCall
from bot.metrics import Metrics
from bot.settings import Limits, RetryPolicy
from bot.store import ConversationStore
from bot.tools import ToolBox, ToolCalls, ToolImage, ToolProgress, ToolResult
from bot.tools.schema import tool_from_function
from tests.fakes.llm_server import FakeLLM, FakeToolCall, Reply
from tests.test_engine import RecordingSink, _msg
from tests.untrusted import tool_message, unwrapped

PNG = io.BytesIO()
Image.new("RGB", (2, 2), "blue").save(PNG, format="PNG")


class Tools:
    """Tools whose behaviour the tests watch."""

    def __init__(self) -> None:
        self.waiting = 0
        self.all_waiting = asyncio.Event()

    async def meet(self, name: str) -> str:
        """Wait until two calls of this tool run at the same time.

        Args:
            name: Who is waiting.
        """
        self.waiting += 1
        if self.waiting == 2:
            self.all_waiting.set()
        await self.all_waiting.wait()
        return f"met {name}"

    async def slow(self) -> str:
        """Never finishes."""
        await asyncio.Event().wait()
        return "unreachable"

    async def broken(self) -> str:
        """Always fails."""
        raise RuntimeError("disk on fire")

    async def picture(self) -> ToolResult:
        """Return a picture."""
        return ToolResult("a blue square", images=(ToolImage("image/png", PNG.getvalue()),))

    def box(self) -> ToolBox:
        functions = (self.meet, self.slow, self.broken, self.picture)
        return ToolBox([tool_from_function(f) for f in functions])


@pytest.fixture
async def tools() -> Tools:
    return Tools()


@asynccontextmanager
async def tool_engine(
    fake_llm: FakeLLM, redis_client: aioredis.Redis, toolbox: ToolBox, **config: object
) -> AsyncIterator[Engine]:
    """An engine on the fake model and real Redis, offering `toolbox`."""
    limits = Limits(context_budget=20_000)
    llm = ChatClient(
        api_key=SecretStr(fake_llm.api_key or ""),
        base_url=fake_llm.base_url,
        fallback_model="gpt-5.1",
        retry=RetryPolicy(max_attempts=1),
    )
    try:
        yield Engine(
            store=ConversationStore(redis_client, limits),
            llm=llm,
            config=EngineConfig(limits=limits, **config),  # type: ignore[arg-type]
            metrics=Metrics(),
            toolbox=toolbox,
        )
    finally:
        await llm.aclose()


async def ask_with_tools(
    engine: Engine, fake_llm: FakeLLM, calls: list[FakeToolCall], answer: str
) -> tuple[RecordingSink, dict[str, str]]:
    """A turn where the model makes `calls`, then answers; the sink and what each call
    returned to the model, by call id."""
    fake_llm.enqueue(Reply(tool_calls=calls), Reply(answer))
    sink = RecordingSink()
    await engine.handle(_msg("go"), sink)
    sent = fake_llm.requests[-1].body["messages"]
    return sink, {m["tool_call_id"]: unwrapped(m["content"]) for m in sent if m["role"] == "tool"}


@pytest.fixture
async def engine(
    fake_llm: FakeLLM, redis_client: aioredis.Redis, tools: Tools
) -> AsyncIterator[Engine]:
    async with tool_engine(fake_llm, redis_client, tools.box(), tool_timeout=0.5) as engine:
        yield engine


async def test_calls_in_one_round_run_concurrently_and_the_answer_names_them(
    engine: Engine, fake_llm: FakeLLM
) -> None:
    meet = [
        FakeToolCall("meet", '{"name": "ana"}', "call_a"),
        FakeToolCall("meet", '{"name": "bo"}', "call_b"),
    ]
    sink, results = await ask_with_tools(engine, fake_llm, meet, "Both met.")
    assert sink.final is not None and sink.final.text == "Both met."
    assert results == {"call_a": "met ana", "call_b": "met bo"}
    assert "Tools used: meet" in sink.final.notes
    assert any("meet" in status for status in sink.progress_seen)
    metrics = engine.metrics.render().decode()
    assert 'parley_tool_calls_total{outcome="ok",tool="meet"} 2.0' in metrics
    assert "parley_tool_rounds_total 1.0" in metrics


async def test_failing_timed_out_and_unknown_tools_go_back_to_the_model(
    engine: Engine, fake_llm: FakeLLM
) -> None:
    calls = [
        FakeToolCall("broken", "{}", "c1"),
        FakeToolCall("slow", "{}", "c2"),
        FakeToolCall("nope", "{}", "c3"),
    ]
    sink, results = await ask_with_tools(engine, fake_llm, calls, "Sorry, the tools failed.")
    assert sink.failure is None
    assert sink.final is not None and sink.final.text == "Sorry, the tools failed."
    assert results == {
        "c1": "Error: broken failed: RuntimeError: disk on fire",
        "c2": "Error: slow took longer than 0.5 s.",
        "c3": "Error: There is no tool named 'nope'.",
    }
    metrics = engine.metrics.render().decode()
    assert 'parley_tool_calls_total{outcome="error",tool="broken"} 1.0' in metrics
    assert 'parley_tool_calls_total{outcome="timeout",tool="slow"} 1.0' in metrics
    assert 'parley_tool_calls_total{outcome="unknown",tool="unknown"} 1.0' in metrics
    assert any(status.startswith("slow failed") for status in sink.progress_seen)


async def test_images_from_tools_reach_the_model_as_image_parts(
    engine: Engine, fake_llm: FakeLLM
) -> None:
    fake_llm.enqueue(Reply(tool_calls=[FakeToolCall("picture", "{}", "p1")]), Reply("Blue."))
    sink = RecordingSink()
    await engine.handle(_msg("draw"), sink)
    sent = fake_llm.requests[-1].body["messages"]
    assert sent[-2] == tool_message("p1", "a blue square", "picture")
    assert sent[-1]["role"] == "user"
    assert sent[-1]["content"][1]["image_url"]["url"].startswith("data:image/png;base64,")


async def test_rounds_stop_at_the_setting_and_the_last_request_offers_no_tools(
    fake_llm: FakeLLM, redis_client: aioredis.Redis, tools: Tools
) -> None:
    picture = Reply(tool_calls=[FakeToolCall("picture", "{}")])
    fake_llm.enqueue(picture, picture, Reply("Done."))
    async with tool_engine(fake_llm, redis_client, tools.box(), max_tool_rounds=2) as engine:
        sink = RecordingSink()
        await engine.handle(_msg("loop"), sink)
        assert sink.final is not None and sink.final.text == "Done."
    assert ["tools" in r.body for r in fake_llm.requests] == [True, True, False]


async def test_tools_off_means_no_tools_at_all(
    fake_llm: FakeLLM, redis_client: aioredis.Redis, tools: Tools
) -> None:
    async with tool_engine(fake_llm, redis_client, tools.box(), tools=False) as engine:
        await engine.handle(_msg("hi"), RecordingSink())
    assert "tools" not in fake_llm.requests[-1].body


async def test_each_call_reports_pending_running_then_done_or_error(tools: Tools) -> None:
    seen: list[ToolProgress] = []
    calls = ToolCalls(tools.box(), Metrics(), timeout=0.5, on_progress=seen.append)
    await calls.run_round(
        [ToolCall("a", "picture", "{}"), ToolCall("b", "broken", '{"x": "' + "y" * 200 + '"}')]
    )
    by_call = {(p.call_id, p.state): p for p in seen}
    assert by_call["a", "running"].status_line() == "Using picture()…"
    assert by_call["a", "done"].status_line() == "Used picture: a blue square"
    assert (
        by_call["b", "running"].summary.endswith("…") and len(by_call["b", "running"].summary) == 80
    )
    assert by_call["b", "error"].summary == "broken takes no parameter x."
    assert [p.state for p in seen if p.call_id == "a"] == ["pending", "running", "done"]
    assert calls.note() == "Tools used: picture, broken"


async def test_only_allowed_tools_are_offered_and_run(tools: Tools) -> None:
    box = tools.box()
    only_pictures = "picture".__eq__
    assert [spec["function"]["name"] for spec in await box.specs(only_pictures)] == ["picture"]
    calls = ToolCalls(box, Metrics(), timeout=1, on_progress=lambda _: None, allowed=only_pictures)
    messages = await calls.run_round(
        [ToolCall("a", "broken", "{}"), ToolCall("b", "picture", "{}")]
    )
    assert unwrapped(messages[0]["content"]) == "Error: There is no tool named 'broken'."
    assert unwrapped(messages[1]["content"]) == "a blue square"
