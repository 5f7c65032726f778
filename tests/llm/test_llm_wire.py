"""The wire-format helpers and the retry bookkeeping, without HTTP."""

from __future__ import annotations

import json
import time
from email.utils import formatdate

import pytest

from bot.errors import (
    APIConnectionError,
    BadRequestError,
    LLMError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServiceUnavailableError,
    UpstreamError,
)
from bot.llm.retry import RetryPlan, StreamCut, model_unavailable
from bot.llm.types import ReasoningDelta, TextDelta, ToolCall, Usage
from bot.llm.wire import (
    CompletionBuilder,
    ToolCallAssembler,
    completions_url,
    error_from_body,
    estimate_usage,
    retry_after_seconds,
    suggested_model,
)
from bot.settings import RetryPolicy
from bot.text.redact import Redactor
from bot.tokens import IMAGE_TOKENS, estimate_tokens


@pytest.mark.parametrize(
    ("base", "url"),
    [
        ("https://direct.evolink.ai", "https://direct.evolink.ai/v1/chat/completions"),
        ("https://direct.evolink.ai/", "https://direct.evolink.ai/v1/chat/completions"),
        ("http://localhost:8000/v1", "http://localhost:8000/v1/chat/completions"),
        ("http://proxy/openai/v1/", "http://proxy/openai/v1/chat/completions"),
    ],
)
def test_completions_url(base: str, url: str) -> None:
    assert completions_url(base) == url


@pytest.mark.parametrize(
    ("suggestion", "model"),
    [
        ("gpt-5.5", "gpt-5.5"),
        (" gpt-5.1-chat ", "gpt-5.1-chat"),
        ("openai/gpt-4o", "openai/gpt-4o"),
        ("try different model", None),
        ("https://evolink.ai/dashboard/billing", None),
        ("retry after 30 seconds", None),
        ("", None),
        (None, None),
    ],
)
def test_suggested_model(suggestion: str | None, model: str | None) -> None:
    assert suggested_model(suggestion) == model


def test_retry_after_forms() -> None:
    assert retry_after_seconds("5", None) == 5.0
    assert retry_after_seconds(" 1.5 ", None) == 1.5
    assert retry_after_seconds("-3", None) == 0.0
    from_date = retry_after_seconds(formatdate(time.time() + 120, usegmt=True), None)
    assert from_date is not None and 118 <= from_date <= 120
    assert retry_after_seconds(formatdate(time.time() - 120, usegmt=True), None) == 0.0
    assert retry_after_seconds(None, "retry after 30 seconds") == 30.0
    assert retry_after_seconds(None, "Retry after 2.5s") == 2.5
    assert retry_after_seconds("7", "retry after 30 seconds") == 7.0  # the header wins
    assert retry_after_seconds("soon", "try again later") is None
    assert retry_after_seconds(None, None) is None


def test_error_body_in_the_seed_shape() -> None:
    content = (
        b'{"error": {"code": 404, "message": "Specified model not found",'
        b' "type": "not_found_error", "param": "model", "fallback_suggestion": "gpt-5.5"}}'
    )
    error = error_from_body(404, "Not Found", content, None, Redactor(()))
    assert isinstance(error, NotFoundError)
    assert (error.api_message, error.type, error.param, error.fallback_suggestion) == (
        "Specified model not found",
        "not_found_error",
        "model",
        "gpt-5.5",
    )
    assert error.retry_after is None


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"error": "quota gone"}', "quota gone"),
        (b'{"message": "flat message"}', "flat message"),
        (b'{"detail": "fastapi style"}', "fastapi style"),
        (b'{"error": {"code": "x"}}', "Bad Request"),
        (b"[1, 2]", "Bad Request"),
        (b"\xff\xfe not utf-8", "\ufffd\ufffd not utf-8"),
        (b"x" * 1000, "x" * 300),
    ],
)
def test_odd_error_bodies(content: bytes, message: str) -> None:
    error = error_from_body(400, "Bad Request", content, None, Redactor(()))
    assert isinstance(error, BadRequestError)
    assert error.api_message == message


def test_error_bodies_are_redacted() -> None:
    content = b'{"error": {"message": "bad key sk-123", "type": "authentication_error"}}'
    error = error_from_body(401, "Unauthorized", content, None, Redactor(("sk-123",)))
    assert error.api_message == "bad key [redacted]"
    assert "sk-123" not in repr(error.body)


def test_retry_after_comes_from_header_or_suggestion() -> None:
    seed_429 = b'{"error": {"code": 429, "fallback_suggestion": "retry after 60 seconds"}}'
    assert error_from_body(429, "", seed_429, None, Redactor(())).retry_after == 60.0
    assert error_from_body(429, "", seed_429, "3", Redactor(())).retry_after == 3.0


def test_tool_call_deltas_by_index() -> None:
    calls = ToolCallAssembler()
    calls.add([{"index": 1, "id": "b", "function": {"name": "two", "arguments": '{"y"'}}])
    calls.add([{"index": 0, "id": "a", "function": {"name": "one", "arguments": ""}}])
    calls.add([{"index": 0, "function": {"arguments": '{"x": 1}'}}])
    calls.add([{"index": 1, "id": "b", "function": {"arguments": ": 2}"}}])
    calls.add("not a list")
    assert calls.calls() == (ToolCall("a", "one", '{"x": 1}'), ToolCall("b", "two", '{"y": 2}'))


def test_tool_calls_without_index_are_whole_calls() -> None:
    calls = ToolCallAssembler()
    calls.add([{"function": {"name": "one", "arguments": "{}"}}, {"function": {"name": "two"}}])
    assert calls.calls() == (ToolCall("call_0", "one", "{}"), ToolCall("call_1", "two", ""))


def test_chunks_fold_into_completed() -> None:
    builder = CompletionBuilder("gpt-5.1-thinking")
    events = builder.add_chunk(
        {"model": "gpt-5.1-thinking-2025", "choices": [{"delta": {"reasoning_content": "hm"}}]}
    )
    events += builder.add_chunk({"choices": [{"delta": {"content": "Hi"}, "finish_reason": None}]})
    events += builder.add_chunk({"choices": [], "usage": {"prompt_tokens": 3}})
    events += builder.add_chunk({"choices": [{"delta": {}, "finish_reason": "length"}]})
    assert events == [ReasoningDelta("hm"), TextDelta("Hi")]
    done = builder.completed()
    assert (done.model, done.text, done.reasoning, done.finish_reason) == (
        "gpt-5.1-thinking-2025",
        "Hi",
        "hm",
        "length",
    )
    assert done.usage.prompt_tokens == 3


@pytest.mark.parametrize(
    ("delta", "finish_reason", "progressed"),
    [
        ({"role": "assistant", "content": ""}, None, False),
        ({}, None, False),
        ({"content": "x"}, None, True),
        ({"reasoning_content": "x"}, None, True),
        ({"tool_calls": [{"index": 0, "id": "c", "function": {"name": "f"}}]}, None, True),
        ({"tool_calls": [{"index": 0, "function": {"arguments": ""}}]}, None, False),
        ({}, "stop", True),
    ],
)
def test_only_chunks_carrying_the_answer_count_as_progress(
    delta: dict[str, object], finish_reason: str | None, progressed: bool
) -> None:
    # The client's idle timeout is reset by progress only, not by filler chunks.
    builder = CompletionBuilder("m")
    builder.add_chunk({"choices": [{"delta": {"content": "a"}}]})
    builder.add_chunk({"choices": [{"delta": delta, "finish_reason": finish_reason}]})
    assert builder.progressed is progressed
    builder.add_chunk({"choices": [], "usage": {"prompt_tokens": 3}})
    assert builder.progressed is False


def test_usage_is_estimated_from_the_request_and_the_answer() -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Look:"},
                {"type": "image_url", "image_url": {"url": "https://x/y.png"}},
            ],
        },
        {"role": "assistant", "content": None, "tool_calls": [{"id": "c", "function": {}}]},
        {"role": "tool", "tool_call_id": "c", "content": "42"},
    ]
    usage = estimate_usage(messages, "The answer.", "Some thought.")
    call = estimate_tokens(json.dumps({"id": "c", "function": {}}))
    text = sum(estimate_tokens(t) for t in ("Be brief.", "Look:", "42")) + call
    assert usage.image_tokens == IMAGE_TOKENS
    assert usage.prompt_tokens == text + IMAGE_TOKENS
    assert usage.reasoning_tokens == estimate_tokens("Some thought.")
    assert usage.completion_tokens == estimate_tokens("The answer.") + usage.reasoning_tokens
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert usage.estimated
    assert (usage + Usage(prompt_tokens=1)).estimated
    assert not (Usage(prompt_tokens=1) + Usage(prompt_tokens=2)).estimated


def test_a_stream_without_usage_completes_with_an_estimate() -> None:
    messages = [{"role": "user", "content": "hello there"}]
    builder = CompletionBuilder("m", messages)
    builder.add_chunk({"choices": [{"delta": {"content": "Hi!"}, "finish_reason": "stop"}]})
    assert builder.completed().usage == estimate_usage(messages, "Hi!")
    builder.add_chunk({"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 1}})
    assert builder.completed().usage == Usage(prompt_tokens=3, completion_tokens=1)


def test_an_error_chunk_mid_stream_is_a_typed_error() -> None:
    builder = CompletionBuilder("gpt-5.5")
    builder.add_chunk({"choices": [{"delta": {"content": "par"}}]})
    with pytest.raises(UpstreamError) as caught:
        builder.add_chunk({"error": {"code": 502, "message": "upstream died"}})
    assert caught.value.api_message == "upstream died"


def test_a_response_without_choices_is_an_error() -> None:
    with pytest.raises(LLMError):
        CompletionBuilder("m").add_response({"model": "m"})


# --- RetryPlan -------------------------------------------------------------------------


def plan(
    policy: RetryPolicy | None = None, other: str | None = "https://b", jitter: float = 0.0
) -> RetryPlan:
    return RetryPlan(
        model="gpt-5.5",
        base_url="https://a",
        other_base_url=other,
        fallback_model="gpt-5.1",
        policy=policy or RetryPolicy(),
        random=lambda: jitter,
    )


def test_backoff_doubles_up_to_the_cap_with_jitter() -> None:
    policy = RetryPolicy(max_attempts=10, base_delay=1.0, max_delay=4.0, total_budget=100.0)
    for jitter, expected in ((0.0, [0.5, 1.0, 2.0, 2.0]), (1.0, [1.0, 2.0, 4.0, 4.0])):
        retries = plan(policy, other=None, jitter=jitter)
        delays = []
        for _ in expected:
            retries.start_attempt()
            delays.append(retries.after_failure(RateLimitError("slow down")).delay)
        assert delays == expected


def test_rate_limits_do_not_count_towards_the_base_switch() -> None:
    retries = plan(RetryPolicy(max_attempts=10, fallback_after=2))
    for error in (
        APIConnectionError("refused"),
        RateLimitError("x"),
        APIConnectionError("refused"),
    ):
        retries.start_attempt()
        assert retries.after_failure(error).switched is None
    retries.start_attempt()
    assert retries.after_failure(APIConnectionError("refused")).switched == "base_url"
    assert retries.base_url == "https://b"


def test_the_fallback_base_gets_a_try_even_when_attempts_are_used_up() -> None:
    retries = plan(RetryPolicy(max_attempts=1, fallback_after=5))
    retries.start_attempt()
    assert retries.after_failure(ServiceUnavailableError("down")).switched == "base_url"
    retries.start_attempt()
    # Attempts used up on the fallback base too: 503 means the model is down.
    assert retries.after_failure(ServiceUnavailableError("down")).switched == "model"
    assert (retries.model, retries.base_url) == ("gpt-5.1", "https://b")


def test_a_stream_cut_is_retried_once_without_waiting() -> None:
    retries = plan()
    retries.start_attempt()
    assert retries.after_failure(StreamCut("cut")).delay == 0.0
    retries.start_attempt()
    with pytest.raises(StreamCut):
        retries.after_failure(StreamCut("cut again"))


def test_model_unavailable() -> None:
    assert model_unavailable(NotFoundError("gone"))
    assert model_unavailable(PermissionDeniedError("no", param="model"))
    assert model_unavailable(PermissionDeniedError("Access denied for this model"))
    assert not model_unavailable(PermissionDeniedError("Access denied for this key"))
    assert not model_unavailable(UpstreamError("later"))
    assert not model_unavailable(APIConnectionError("refused"))


def test_other_errors_are_raised_as_they_are() -> None:
    retries = plan()
    retries.start_attempt()
    error = LLMError("malformed")
    with pytest.raises(LLMError) as caught:
        retries.after_failure(error)
    assert caught.value is error
