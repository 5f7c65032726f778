"""ChatClient against the fake chat-completions server, over real HTTP on loopback.

Sleeps between retries are recorded instead of slept; timeouts are fractions of a second.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from email.utils import formatdate
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from bot.errors import (
    APIConnectionError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    InternalServerError,
    LLMError,
    NotFoundError,
    PermissionDeniedError,
    QuotaExceededError,
    RateLimitError,
    RequestTooLargeError,
    StreamInterrupted,
)
from bot.llm.client import ChatClient
from bot.llm.types import (
    ChatEvent,
    ChatRequest,
    Completed,
    Fallback,
    ReasoningDelta,
    TextDelta,
    ToolCall,
)
from bot.settings import ConnectionLimits, GenerationParams, RetryPolicy, Settings, Timeouts
from bot.tokens import estimate_tokens
from tests.fakes.llm_server import (
    Cut,
    Error,
    FakeLLM,
    FakeLLMPair,
    FakeToolCall,
    Reply,
    closed_base_url,
)

PNG_DATA_URL = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"
    "+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
FAST = Timeouts(connect=1.0, first_token=2.0, idle=2.0, write=1.0, pool=1.0)


class Recorder:
    """Stands in for asyncio.sleep and the metrics hooks."""

    def __init__(self) -> None:
        self.sleeps: list[float] = []
        self.retries: list[str] = []
        self.fallbacks: list[str] = []

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)


@pytest.fixture
def rec() -> Recorder:
    return Recorder()


def make_client(
    fake: FakeLLM | str,
    rec: Recorder,
    *,
    fallback: FakeLLM | str | None = None,
    fallback_model: str | None = "gpt-5.1",
    api_key: str = "test-key",
    **kwargs: Any,
) -> ChatClient:
    kwargs.setdefault("timeouts", FAST)
    return ChatClient(
        api_key=SecretStr(api_key),
        base_url=fake if isinstance(fake, str) else fake.base_url,
        fallback_base_url=fallback if isinstance(fallback, str | None) else fallback.base_url,
        fallback_model=fallback_model,
        sleep=rec.sleep,
        random=lambda: 0.0,
        on_retry=rec.retries.append,
        on_fallback=rec.fallbacks.append,
        **kwargs,
    )


def ask(text: str = "hello", model: str = "gpt-5.5", **kwargs: Any) -> ChatRequest:
    return ChatRequest(model=model, messages=[{"role": "user", "content": text}], **kwargs)


async def collect(client: ChatClient, request: ChatRequest) -> list[ChatEvent]:
    return [event async for event in client.stream(request)]


def text_of(events: list[ChatEvent]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


def completed(events: list[ChatEvent]) -> Completed:
    assert isinstance(events[-1], Completed)
    assert sum(isinstance(e, Completed) for e in events) == 1
    return events[-1]


async def answer(client: ChatClient, request: ChatRequest, mode: str) -> Completed:
    """The same request, streamed or not: retry and error behaviour must match."""
    if mode == "stream":
        return completed(await collect(client, request))
    return await client.complete(request)


both_modes = pytest.mark.parametrize("mode", ["stream", "complete"])


# --- answers -------------------------------------------------------------------------


async def test_streams_text_with_bearer_auth(fake_llm: FakeLLM, rec: Recorder) -> None:
    async with make_client(fake_llm, rec) as client:
        events = await collect(client, ask("hi there"))

    assert sum(isinstance(e, TextDelta) for e in events) > 1  # token by token
    assert text_of(events) == "You said: hi there"
    done = completed(events)
    assert (done.text, done.finish_reason, done.model) == ("You said: hi there", "stop", "gpt-5.5")
    assert done.usage.total_tokens == done.usage.prompt_tokens + done.usage.completion_tokens > 0
    [sent] = fake_llm.requests
    assert sent.path == "/v1/chat/completions"
    assert sent.authorization == "Bearer test-key"
    assert sent.body["stream"] is True
    assert sent.body["stream_options"] == {"include_usage": True}
    assert sent.body["model"] == "gpt-5.5"
    assert sent.headers["Accept"] == "text/event-stream"


async def test_complete_sends_stream_false(fake_llm: FakeLLM, rec: Recorder) -> None:
    async with make_client(fake_llm, rec) as client:
        done = await client.complete(ask("plain"))

    assert (done.text, done.finish_reason) == ("You said: plain", "stop")
    assert fake_llm.requests[0].body["stream"] is False
    assert "stream_options" not in fake_llm.requests[0].body


async def test_generation_params_are_sent_only_when_set(fake_llm: FakeLLM, rec: Recorder) -> None:
    params = GenerationParams(temperature=0.2, top_k=40, max_tokens=100, stop=["END", "STOP"])
    async with make_client(fake_llm, rec) as client:
        await client.complete(ask(params=params))
        await client.complete(ask())

    with_params, without = (r.body for r in fake_llm.requests)
    assert {k: with_params[k] for k in ("temperature", "top_k", "max_tokens", "stop")} == {
        "temperature": 0.2,
        "top_k": 40,
        "max_tokens": 100,
        "stop": ["END", "STOP"],
    }
    assert not {"temperature", "top_p", "top_k", "max_tokens", "stop"} & without.keys()


async def test_image_parts_reach_the_server_intact(fake_llm: FakeLLM, rec: Recorder) -> None:
    content = [
        {"type": "text", "text": "compare"},
        {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
        {"type": "image_url", "image_url": {"url": PNG_DATA_URL}},
    ]
    request = ChatRequest(model="gpt-5.5", messages=[{"role": "user", "content": content}])
    async with make_client(fake_llm, rec) as client:
        events = await collect(client, request)

    assert text_of(events) == "You said: compare [image] [image]"
    assert fake_llm.requests[0].image_urls == ["https://example.com/a.png", PNG_DATA_URL]


async def test_base_url_ending_in_v1_is_not_doubled(fake_llm: FakeLLM, rec: Recorder) -> None:
    async with make_client(f"{fake_llm.base_url}/v1/", rec) as client:
        done = await client.complete(ask())

    assert done.text == "You said: hello"
    assert fake_llm.requests[0].path == "/v1/chat/completions"


async def test_reasoning_deltas_come_before_the_answer(fake_llm: FakeLLM, rec: Recorder) -> None:
    async with make_client(fake_llm, rec) as client:
        events = await collect(client, ask("why?", model="gpt-5.1-thinking"))

    kinds = [type(e) for e in events if isinstance(e, TextDelta | ReasoningDelta)]
    assert kinds.index(TextDelta) > kinds.index(ReasoningDelta)
    assert ReasoningDelta not in kinds[kinds.index(TextDelta) :]
    done = completed(events)
    assert done.reasoning == "Thinking about: why?"
    assert "".join(e.text for e in events if isinstance(e, ReasoningDelta)) == done.reasoning
    assert done.usage.reasoning_tokens > 0


@both_modes
async def test_usage_with_reasoning_and_cached_tokens(
    fake_llm: FakeLLM, rec: Recorder, mode: str
) -> None:
    usage = {
        "prompt_tokens": 13,
        "completion_tokens": 1891,
        "total_tokens": 1904,
        "prompt_tokens_details": {"cached_tokens": 5, "image_tokens": 3},
        "completion_tokens_details": {"reasoning_tokens": 1480},
    }
    fake_llm.enqueue(Reply("ok", reasoning="hmm", usage=usage))
    async with make_client(fake_llm, rec) as client:
        done = await answer(client, ask(), mode)

    assert (done.text, done.reasoning) == ("ok", "hmm")
    assert done.usage.by_kind() == {
        "prompt": 13,
        "completion": 1891,
        "reasoning": 1480,
        "cached": 5,
        "image": 3,
    }


@both_modes
async def test_reported_usage_is_not_estimated(fake_llm: FakeLLM, rec: Recorder, mode: str) -> None:
    async with make_client(fake_llm, rec) as client:
        done = await answer(client, ask(), mode)

    assert done.usage.estimated is False
    assert done.usage.total_tokens > 0


@both_modes
async def test_usage_is_estimated_when_the_server_reports_none(
    fake_llm: FakeLLM, rec: Recorder, mode: str
) -> None:
    fake_llm.enqueue(Reply("An answer of forty characters, give or t", send_usage=False))
    request = ChatRequest(
        model="gpt-5.5",
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "What is this?"}]},
        ],
    )
    async with make_client(fake_llm, rec) as client:
        done = await answer(client, request, mode)

    assert done.usage.estimated is True
    prompt = estimate_tokens("Be brief.") + estimate_tokens("What is this?")
    completion = estimate_tokens("An answer of forty characters, give or t")
    assert (done.usage.prompt_tokens, done.usage.completion_tokens) == (prompt, completion)
    assert done.usage.total_tokens == prompt + completion


@pytest.mark.parametrize("include_usage", [None, False, True])
async def test_the_fake_streams_usage_only_when_asked(
    fake_llm: FakeLLM, include_usage: bool | None
) -> None:
    body: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    body["stream"] = True
    if include_usage is not None:
        body["stream_options"] = {"include_usage": include_usage}
    async with httpx.AsyncClient() as http:
        response = await http.post(
            f"{fake_llm.base_url}/v1/chat/completions",
            json=body,
            headers={"Authorization": f"Bearer {fake_llm.api_key}"},
        )
    chunks = [
        json.loads(line.removeprefix("data: "))
        for line in response.text.splitlines()
        if line.startswith("data: {")
    ]
    with_usage = [chunk for chunk in chunks if "usage" in chunk]
    if include_usage:
        [last] = with_usage
        assert last is chunks[-1] and last["choices"] == [] and last["usage"]["total_tokens"] > 0
    else:
        assert with_usage == []
    assert chunks[-1 if not include_usage else -2]["choices"][0]["finish_reason"] == "stop"


WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a given location",
        "parameters": {"type": "object", "properties": {"location": {"type": "string"}}},
    },
}


@both_modes
async def test_parallel_tool_calls_are_assembled(
    fake_llm: FakeLLM, rec: Recorder, mode: str
) -> None:
    calls = [
        FakeToolCall("get_weather", '{"location": "San Francisco, CA"}', id="call_sf"),
        FakeToolCall("get_weather", '{"location": "Paris"}', id="call_paris"),
    ]
    fake_llm.enqueue(Reply("", tool_calls=calls, chunk_size=3))
    async with make_client(fake_llm, rec) as client:
        done = await answer(client, ask("weather?", tools=[WEATHER_TOOL]), mode)

    assert done.finish_reason == "tool_calls"
    assert done.tool_calls == (
        ToolCall("call_sf", "get_weather", '{"location": "San Francisco, CA"}'),
        ToolCall("call_paris", "get_weather", '{"location": "Paris"}'),
    )
    assert fake_llm.requests[0].body["tools"] == [WEATHER_TOOL]


async def test_connections_are_pooled(fake_llm: FakeLLM, rec: Recorder) -> None:
    async with make_client(fake_llm, rec) as client:
        for _ in range(3):
            await collect(client, ask())
        await client.complete(ask())

    assert len({r.peer_port for r in fake_llm.requests}) == 1


async def test_concurrent_streams_share_one_client(fake_llm: FakeLLM, rec: Recorder) -> None:
    fake_llm.default = Reply(first_token_delay=0.05)
    async with make_client(fake_llm, rec) as client:
        results = await asyncio.gather(*(collect(client, ask(f"n{i}")) for i in range(100)))

    assert [text_of(events) for events in results] == [f"You said: n{i}" for i in range(100)]


async def test_a_server_ignoring_stream_true_still_answers(rec: Recorder) -> None:
    whole = {
        "model": "gpt-5.5",
        "choices": [{"message": {"content": "at once"}, "finish_reason": "stop"}],
    }
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json=whole))
    async with make_client("https://api.test", rec, transport=transport) as client:
        events = await collect(client, ask())

    assert events[:-1] == [TextDelta("at once")]
    assert completed(events).text == "at once"


async def test_from_settings(fake_llm: FakeLLM, rec: Recorder) -> None:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        evolink_api_key=SecretStr(fake_llm.api_key or ""),
        evolink_base_url=fake_llm.base_url,
        evolink_fallback_base_url=fake_llm.base_url,
        evolink_max_retries=0,
    )
    fake_llm.enqueue(Error(500))
    async with ChatClient.from_settings(settings) as client:
        with pytest.raises(InternalServerError):
            await client.complete(ask())
        assert (await client.complete(ask())).text == "You said: hello"

    assert len(fake_llm.requests) == 2  # EVOLINK_MAX_RETRIES=0: one attempt each


# --- errors that are never retried ---------------------------------------------------


@both_modes
@pytest.mark.parametrize(
    ("status", "error_type", "says"),
    [
        (400, BadRequestError, "Invalid request parameters"),
        (401, AuthenticationError, "EVOLINK_API_KEY"),
        (402, QuotaExceededError, "quota is used up"),
        (403, PermissionDeniedError, "Access denied for this key"),
        (413, RequestTooLargeError, "too large"),
    ],
)
async def test_client_errors_are_typed_and_never_retried(
    fake_llm: FakeLLM,
    rec: Recorder,
    mode: str,
    status: int,
    error_type: type[LLMError],
    says: str,
) -> None:
    # 403 about something other than the model: nothing another model could fix.
    error = Error(403, message="Access denied for this key", param="") if status == 403 else None
    fake_llm.enqueue(error or Error(status))
    async with make_client(fake_llm, rec, fallback=fake_llm) as client:
        with pytest.raises(error_type) as caught:
            await answer(client, ask(), mode)

    assert says in caught.value.user_message
    assert len(fake_llm.requests) == 1
    assert (rec.sleeps, rec.retries, rec.fallbacks) == ([], [], [])


async def test_error_fields_come_from_the_body(fake_llm: FakeLLM, rec: Recorder) -> None:
    fake_llm.enqueue(Error(402))
    async with make_client(fake_llm, rec) as client:
        with pytest.raises(QuotaExceededError) as caught:
            await client.complete(ask())

    error = caught.value
    assert (error.status, error.type, error.api_message) == (
        402,
        "insufficient_quota_error",
        "Insufficient quota",
    )
    assert error.fallback_suggestion == "https://evolink.ai/dashboard/billing"
    assert error.body == {"error": Error(402).body()["error"]}


async def test_a_bad_key_is_never_echoed(
    fake_llm: FakeLLM, rec: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    key = "sk-very-secret-key"
    fake_llm.api_key = key
    fake_llm.enqueue(Error(429, retry_after=1), Error(401, message=f"Invalid token {key}"))
    caplog.set_level(logging.DEBUG)
    async with make_client(fake_llm, rec, api_key=key) as client:
        with pytest.raises(AuthenticationError) as caught:
            await collect(client, ask())

    error = caught.value
    assert fake_llm.requests[0].authorization == f"Bearer {key}"
    for text in (error.user_message, str(error), error.api_message, repr(error.body), caplog.text):
        assert key not in text
    assert "Invalid token [redacted]" in error.api_message
    assert "misconfigured" in error.user_message


@pytest.mark.parametrize(
    ("raw_body", "message"),
    [
        ("<html><body>bad gateway</body></html>", "Bad Request"),
        ("the proxy says no", "the proxy says no"),
        ("", "Bad Request"),
    ],
)
async def test_non_json_error_bodies(
    fake_llm: FakeLLM, rec: Recorder, raw_body: str, message: str
) -> None:
    fake_llm.enqueue(Error(400, raw_body=raw_body))
    async with make_client(fake_llm, rec) as client:
        with pytest.raises(BadRequestError) as caught:
            await client.complete(ask())

    assert caught.value.api_message == message
    assert caught.value.user_message == f"The model rejected the request: {message}"


async def test_an_oversized_image_gets_413_from_the_server(rec: Recorder) -> None:
    async with FakeLLM(max_image_bytes=10) as fake:
        content = [{"type": "image_url", "image_url": {"url": PNG_DATA_URL}}]
        request = ChatRequest(model="gpt-5.5", messages=[{"role": "user", "content": content}])
        async with make_client(fake, rec) as client:
            with pytest.raises(RequestTooLargeError) as caught:
                await collect(client, request)

    assert caught.value.param == "content"
    assert "too large" in caught.value.user_message


# --- retries -------------------------------------------------------------------------


@both_modes
async def test_429_honours_retry_after_seconds(fake_llm: FakeLLM, rec: Recorder, mode: str) -> None:
    fake_llm.enqueue(Error(429, retry_after=7))
    async with make_client(fake_llm, rec) as client:
        done = await answer(client, ask(), mode)

    assert done.text == "You said: hello"
    assert rec.sleeps == [7.0]
    assert rec.retries == ["rate_limit"]
    assert len(fake_llm.requests) == 2


async def test_429_honours_retry_after_http_date(fake_llm: FakeLLM, rec: Recorder) -> None:
    fake_llm.enqueue(Error(429, retry_after=formatdate(time.time() + 30, usegmt=True)))
    async with make_client(fake_llm, rec) as client:
        await client.complete(ask())

    [slept] = rec.sleeps
    assert 27 <= slept <= 30


async def test_429_without_header_follows_the_suggestion(fake_llm: FakeLLM, rec: Recorder) -> None:
    fake_llm.enqueue(Error(429))  # the seed's body: "retry after 60 seconds"
    async with make_client(fake_llm, rec) as client:
        await client.complete(ask())

    assert rec.sleeps == [60.0]


async def test_a_wait_beyond_the_budget_gives_up_at_once(fake_llm: FakeLLM, rec: Recorder) -> None:
    fake_llm.enqueue(Error(429, retry_after=3600))
    async with make_client(fake_llm, rec) as client:
        with pytest.raises(RateLimitError) as caught:
            await client.complete(ask())

    assert caught.value.retry_after == 3600
    assert rec.sleeps == []
    assert len(fake_llm.requests) == 1


async def test_backoff_grows_and_attempts_are_bounded(fake_llm: FakeLLM, rec: Recorder) -> None:
    fake_llm.default = Error(500)
    policy = RetryPolicy(max_attempts=4, base_delay=0.5, max_delay=20.0, total_budget=60.0)
    async with make_client(fake_llm, rec, retry=policy) as client:
        with pytest.raises(InternalServerError):
            await collect(client, ask())

    assert len(fake_llm.requests) == 4
    assert rec.sleeps == [0.25, 0.5, 1.0]  # half of 0.5 * 2**n: the jitter's floor
    assert rec.retries == ["server_error"] * 3


async def test_total_sleep_is_bounded_by_the_budget(fake_llm: FakeLLM, rec: Recorder) -> None:
    fake_llm.default = Error(500)
    policy = RetryPolicy(max_attempts=50, base_delay=1.0, max_delay=4.0, total_budget=9.0)
    async with make_client(fake_llm, rec, retry=policy) as client:
        with pytest.raises(InternalServerError):
            await client.complete(ask())

    assert rec.sleeps == [0.5, 1.0, 2.0, 2.0, 2.0]
    assert sum(rec.sleeps) <= policy.total_budget
    assert len(fake_llm.requests) == len(rec.sleeps) + 1


@both_modes
async def test_5xx_in_a_row_switches_to_the_fallback_base(
    fake_llm_pair: FakeLLMPair, rec: Recorder, mode: str
) -> None:
    primary, fallback = fake_llm_pair
    primary.default = Error(502)
    policy = RetryPolicy(fallback_after=2)
    async with make_client(primary, rec, fallback=fallback, retry=policy) as client:
        done = await answer(client, ask(), mode)

    assert done.text == "You said: hello"
    assert [r.server for r in primary.requests + fallback.requests] == ["primary"] * 2 + [
        "fallback"
    ]
    assert fallback.requests[0].authorization == "Bearer test-key"
    assert rec.retries == ["upstream"]
    assert rec.fallbacks == ["base_url"]


async def test_a_base_switch_is_announced_without_a_user_notice(
    fake_llm_pair: FakeLLMPair, rec: Recorder
) -> None:
    primary, fallback = fake_llm_pair
    primary.enqueue(Error(500), Error(500))
    async with make_client(primary, rec, fallback=fallback) as client:
        events = await collect(client, ask())

    assert events[0] == Fallback(model="gpt-5.5", base_url=fallback.base_url, notice=None)
    assert sum(isinstance(e, Fallback) for e in events) == 1


async def test_the_fallback_base_is_remembered_briefly(
    fake_llm_pair: FakeLLMPair, rec: Recorder
) -> None:
    primary, fallback = fake_llm_pair
    primary.enqueue(Error(503, fallback_suggestion=""), Error(503, fallback_suggestion=""))
    now = [1000.0]
    async with make_client(
        primary, rec, fallback=fallback, clock=lambda: now[0], remember_fallback_for=60.0
    ) as client:
        await client.complete(ask("first"))
        now[0] += 30
        await client.complete(ask("soon after"))
        now[0] += 31
        await client.complete(ask("later"))

    assert [r.last_user_text for r in primary.requests] == ["first", "first", "later"]
    assert [r.last_user_text for r in fallback.requests] == ["first", "soon after"]


async def test_connection_refused_switches_to_the_fallback_base(
    fake_llm: FakeLLM, rec: Recorder
) -> None:
    async with make_client(closed_base_url(), rec, fallback=fake_llm) as client:
        events = await collect(client, ask())

    assert text_of(events) == "You said: hello"
    assert rec.retries == ["connection"]
    assert rec.fallbacks == ["base_url"]
    assert len(fake_llm.requests) == 1


async def test_connection_refused_without_fallback(rec: Recorder) -> None:
    async with make_client(closed_base_url(), rec) as client:
        with pytest.raises(APIConnectionError) as caught:
            await client.complete(ask())

    assert "couldn't reach the language model" in caught.value.user_message
    assert len(rec.sleeps) == RetryPolicy().max_attempts - 1


@both_modes
@pytest.mark.parametrize("error", [Error(404), Error(403)], ids=["404", "403-model"])
async def test_an_unavailable_model_falls_back(
    fake_llm: FakeLLM, rec: Recorder, mode: str, error: Error
) -> None:
    # The seed's 404 suggests "gpt-5.5", the model that just failed: the fallback model it is.
    fake_llm.per_model["gpt-5.5"] = error
    async with make_client(fake_llm, rec, fallback_model="gpt-5.1") as client:
        done = await answer(client, ask(), mode)

    assert done.model == "gpt-5.1"
    assert [r.model for r in fake_llm.requests] == ["gpt-5.5", "gpt-5.1"]
    assert (rec.sleeps, rec.fallbacks) == ([], ["model"])


async def test_a_model_change_carries_a_user_notice(fake_llm: FakeLLM, rec: Recorder) -> None:
    fake_llm.per_model["gpt-5.5"] = Error(404)
    async with make_client(fake_llm, rec, fallback_model="gpt-5.1") as client:
        events = await collect(client, ask())

    notices = [e for e in events if isinstance(e, Fallback)]
    assert notices == [
        Fallback(
            model="gpt-5.1",
            base_url=fake_llm.base_url,
            notice="gpt-5.5 was unavailable, so gpt-5.1 answered.",
        )
    ]


async def test_a_suggested_model_is_preferred(fake_llm: FakeLLM, rec: Recorder) -> None:
    fake_llm.enqueue(Error(404, fallback_suggestion="gpt-5.1-chat"))
    async with make_client(fake_llm, rec, fallback_model="gpt-5.1") as client:
        done = await client.complete(ask())

    assert done.model == "gpt-5.1-chat"


async def test_no_model_left_raises_the_error(fake_llm: FakeLLM, rec: Recorder) -> None:
    fake_llm.default = Error(404)
    async with make_client(fake_llm, rec, fallback_model="gpt-5.1") as client:
        with pytest.raises(NotFoundError):
            await client.complete(ask())

    assert [r.model for r in fake_llm.requests] == ["gpt-5.5", "gpt-5.1"]


async def test_503_after_retries_tries_the_fallback_model(fake_llm: FakeLLM, rec: Recorder) -> None:
    fake_llm.per_model["gpt-5.5"] = Error(503, fallback_suggestion="")
    policy = RetryPolicy(max_attempts=3)
    async with make_client(fake_llm, rec, retry=policy, fallback_model="gpt-5.1") as client:
        events = await collect(client, ask())

    assert completed(events).model == "gpt-5.1"
    assert [r.model for r in fake_llm.requests] == ["gpt-5.5"] * 3 + ["gpt-5.1"]
    assert rec.retries == ["unavailable"] * 2
    assert rec.fallbacks == ["model"]


async def test_retries_are_logged_with_context_but_no_key(
    fake_llm: FakeLLM, rec: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    fake_llm.enqueue(Error(429, retry_after=1))
    with caplog.at_level(logging.WARNING, logger="bot.llm.client"):
        async with make_client(fake_llm, rec) as client:
            await client.complete(ask())

    [line] = [r.getMessage() for r in caplog.records if r.name == "bot.llm.client"]
    host = fake_llm.base_url.removeprefix("http://")
    for part in ("rate_limit", "HTTP 429", host, "gpt-5.5", "attempt 1", "retrying in 1.00s"):
        assert part in line
    assert "test-key" not in caplog.text


# --- timeouts and broken streams ------------------------------------------------------


def timeouts(first_token: float, idle: float) -> Timeouts:
    return Timeouts(connect=1.0, first_token=first_token, idle=idle, write=1.0, pool=1.0)


ONE_TRY = RetryPolicy(max_attempts=1)


@both_modes
async def test_first_token_timeout(fake_llm: FakeLLM, rec: Recorder, mode: str) -> None:
    fake_llm.enqueue(Reply(first_byte_delay=0.3))
    async with make_client(
        fake_llm, rec, timeouts=timeouts(first_token=0.05, idle=0.05), retry=ONE_TRY
    ) as client:
        started = time.monotonic()
        with pytest.raises(APITimeoutError) as caught:
            await answer(client, ask(), mode)

    assert time.monotonic() - started < 0.25
    assert "stopped responding" in caught.value.user_message


async def test_a_slow_first_token_is_retried(fake_llm: FakeLLM, rec: Recorder) -> None:
    fake_llm.enqueue(Reply(first_token_delay=0.3))
    async with make_client(fake_llm, rec, timeouts=timeouts(0.05, 0.05)) as client:
        events = await collect(client, ask())

    assert text_of(events) == "You said: hello"
    assert rec.retries == ["timeout"]
    assert len(fake_llm.requests) == 2


async def test_keepalives_before_the_first_token_are_harmless(
    fake_llm: FakeLLM, rec: Recorder
) -> None:
    fake_llm.enqueue(Reply(first_token_delay=0.2, keepalive=0.02))
    async with make_client(fake_llm, rec, timeouts=timeouts(2.0, 0.05), retry=ONE_TRY) as client:
        events = await collect(client, ask())

    assert text_of(events) == "You said: hello"


async def test_keepalives_alone_time_out_at_the_first_token_deadline(
    fake_llm: FakeLLM, rec: Recorder
) -> None:
    # The idle timeout is far longer than the first-token one: each comment used to push
    # the deadline to `idle` from then, so an upstream sending only comments never ended.
    fake_llm.enqueue(Reply(first_token_delay=3600, keepalive=0.02))
    async with make_client(fake_llm, rec, timeouts=timeouts(0.2, 30.0), retry=ONE_TRY) as client:
        async with asyncio.timeout(10):
            with pytest.raises(APITimeoutError) as caught:
                await collect(client, ask())

    assert "didn't start answering within 0.2s" in str(caught.value)
    assert len(fake_llm.requests) == 1


@pytest.mark.parametrize("keepalive", [None, 0.02], ids=["silent", "keepalives"])
@pytest.mark.parametrize("reasoning", ["", "hmm hmm "], ids=["text", "reasoning"])
async def test_a_stall_mid_answer_fails_at_the_idle_timeout(
    fake_llm: FakeLLM, rec: Recorder, keepalive: float | None, reasoning: str
) -> None:
    # EVOLINK_IDLE_TIMEOUT=5, EVOLINK_FIRST_TOKEN_TIMEOUT=120, silent after three chunks:
    # the idle timeout alone applies once the answer has begun, comments or not.
    reply = Reply(
        "abcdefghijklmnop", reasoning=reasoning, chunk_size=4, stall_after=3, keepalive=keepalive
    )
    fake_llm.enqueue(reply)
    shown: list[ChatEvent] = []
    async with make_client(fake_llm, rec, timeouts=timeouts(60.0, 0.1)) as client:
        async with asyncio.timeout(10):
            with pytest.raises(StreamInterrupted) as caught:
                async for event in client.stream(ask()):
                    shown.append(event)

    expected = "hmm hmm abcd" if reasoning else "abcdefghijkl"
    assert "".join(e.text for e in shown if isinstance(e, TextDelta | ReasoningDelta)) == expected
    assert isinstance(caught.value.__cause__, APITimeoutError)
    assert "nothing new for 0.1s mid-answer" in str(caught.value.__cause__)
    assert len(fake_llm.requests) == 1


async def test_once_text_flows_the_first_token_deadline_no_longer_applies(
    fake_llm: FakeLLM, rec: Recorder
) -> None:
    # Chunks 0.15 s apart: each gap is three first-token timeouts, well inside the idle one.
    fake_llm.enqueue(Reply("abcdefgh", chunk_size=2, chunk_delay=0.15))
    async with make_client(fake_llm, rec, timeouts=timeouts(0.05, 5.0), retry=ONE_TRY) as client:
        events = await collect(client, ask())

    assert text_of(events) == "abcdefgh"


async def test_idle_timeout_is_not_a_cap_on_length(fake_llm: FakeLLM, rec: Recorder) -> None:
    # 20 chunks 20 ms apart: 0.4 s in all, four times the idle timeout.
    fake_llm.enqueue(Reply("x" * 40, chunk_size=2, chunk_delay=0.02))
    async with make_client(fake_llm, rec, timeouts=timeouts(0.1, 0.1), retry=ONE_TRY) as client:
        events = await collect(client, ask())

    assert text_of(events) == "x" * 40


async def test_a_slow_consumer_is_not_an_idle_server(fake_llm: FakeLLM, rec: Recorder) -> None:
    async with make_client(fake_llm, rec, timeouts=timeouts(0.1, 0.1), retry=ONE_TRY) as client:
        shown = []
        async for event in client.stream(ask()):
            await asyncio.sleep(0.03)  # e.g. a chat platform's edit call
            shown.append(event)

    assert text_of(shown) == "You said: hello"


async def test_idle_mid_answer_keeps_the_text_and_says_it_was_cut(
    fake_llm: FakeLLM, rec: Recorder
) -> None:
    fake_llm.enqueue(Reply("abcdefgh", chunk_size=4, chunk_delay=0.3))
    shown: list[ChatEvent] = []
    async with make_client(fake_llm, rec, timeouts=timeouts(0.05, 0.05)) as client:
        with pytest.raises(StreamInterrupted) as caught:
            async for event in client.stream(ask()):
                shown.append(event)

    assert text_of(shown) == "abcd"
    assert isinstance(caught.value.__cause__, APITimeoutError)
    assert "cut off" in caught.value.user_message
    assert len(fake_llm.requests) == 1


@both_modes
@pytest.mark.parametrize("clean", [False, True], ids=["dropped", "eof"])
async def test_a_cut_before_any_text_is_retried_once(
    fake_llm: FakeLLM, rec: Recorder, mode: str, clean: bool
) -> None:
    fake_llm.enqueue(Cut(after_chunks=0, clean=clean))
    async with make_client(fake_llm, rec) as client:
        done = await answer(client, ask(), mode)

    assert done.text == "You said: hello"
    assert rec.retries == ["stream_cut"]
    assert rec.sleeps == []
    assert len(fake_llm.requests) == 2


async def test_a_cut_after_tool_deltas_only_is_retried(fake_llm: FakeLLM, rec: Recorder) -> None:
    reply = Reply("", tool_calls=[FakeToolCall("get_weather", '{"location": "Oslo"}')])
    fake_llm.enqueue(Cut(after_chunks=2, reply=reply), reply)
    async with make_client(fake_llm, rec) as client:
        events = await collect(client, ask())

    assert completed(events).tool_calls == (
        ToolCall("call_0", "get_weather", '{"location": "Oslo"}'),
    )


async def test_a_second_cut_before_text_is_a_connection_error(
    fake_llm: FakeLLM, rec: Recorder
) -> None:
    fake_llm.enqueue(Cut(), Cut(clean=True))
    async with make_client(fake_llm, rec) as client:
        with pytest.raises(APIConnectionError) as caught:
            await collect(client, ask())

    assert not isinstance(caught.value, StreamInterrupted)
    assert len(fake_llm.requests) == 2


@pytest.mark.parametrize("clean", [False, True], ids=["dropped", "eof"])
async def test_a_cut_after_text_raises_stream_interrupted(
    fake_llm: FakeLLM, rec: Recorder, clean: bool
) -> None:
    fake_llm.enqueue(Cut(after_chunks=2, reply=Reply("hello world", chunk_size=3), clean=clean))
    shown: list[ChatEvent] = []
    async with make_client(fake_llm, rec) as client:
        with pytest.raises(StreamInterrupted):
            async for event in client.stream(ask()):
                shown.append(event)

    assert text_of(shown) == "hello "
    assert len(fake_llm.requests) == 1
    assert rec.retries == []


async def test_stopping_early_frees_the_connection(fake_llm: FakeLLM, rec: Recorder) -> None:
    fake_llm.enqueue(Reply("a long answer", chunk_delay=0.01))
    one = ConnectionLimits(max_connections=1, max_keepalive=1)
    async with make_client(fake_llm, rec, limits=one) as client:
        stream = client.stream(ask())
        async for event in stream:
            assert isinstance(event, TextDelta)
            break
        await stream.aclose()
        # With one connection in the pool, this waits forever if the first kept it.
        assert text_of(await collect(client, ask())) == "You said: hello"
