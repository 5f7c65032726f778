"""The chat-completions wire format, free of HTTP plumbing.

Turns what the API sends into Parley's types: error bodies into typed errors (with the
delay a `Retry-After` header or a "retry after N seconds" suggestion asks for), streamed
`chat.completion.chunk`s and whole `chat.completion`s into events and one `Completed`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from bot.errors import APIStatusError, LLMError, status_error
from bot.llm.types import ChatEvent, Completed, ReasoningDelta, TextDelta, ToolCall, Usage
from bot.text.redact import Redactor
from bot.tokens import IMAGE_TOKENS, estimate_tokens

_SUGGESTED_DELAY = re.compile(r"retry\s+after\s+(\d+(?:\.\d+)?)\s*(?:s\b|sec|second)", re.I)
# A model name: no spaces, no URL scheme ("gpt-5.1", "openai/gpt-4o", "gpt-5.1-chat").
_MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/-]{0,99}")
_MAX_ERROR_TEXT = 300


def completions_url(base_url: str) -> str:
    """The endpoint under `base_url`; a base that already ends in `/v1` is not doubled."""
    base = base_url.rstrip("/")
    return f"{base}/chat/completions" if base.endswith("/v1") else f"{base}/v1/chat/completions"


def suggested_model(suggestion: str | None) -> str | None:
    """The model a `fallback_suggestion` names, if it names one (not a URL, not a sentence)."""
    if suggestion is None:
        return None
    candidate = suggestion.strip()
    if "://" in candidate or not _MODEL_NAME.fullmatch(candidate):
        return None
    return candidate


def retry_after_seconds(header: str | None, suggestion: str | None) -> float | None:
    """Seconds the server asks us to wait: `Retry-After` (seconds or HTTP date) first,
    then a "retry after N seconds" `fallback_suggestion`."""
    if header:
        value = header.strip()
        try:
            return max(0.0, float(value))
        except ValueError:
            pass
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            when = None
        if when is not None:
            if when.tzinfo is None:
                when = when.replace(tzinfo=UTC)
            return max(0.0, (when - datetime.now(UTC)).total_seconds())
    if suggestion:
        match = _SUGGESTED_DELAY.search(suggestion)
        if match:
            return float(match.group(1))
    return None


def _opt_str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def error_from_payload(
    status: int, payload: Any, *, fallback_message: str, retry_after_header: str | None = None
) -> APIStatusError:
    """The typed error for an ErrorResponse (`{"error": {...}}`) or anything else a server
    sent instead; `payload` is the decoded JSON, or the body text when it was not JSON."""
    error = payload.get("error") if isinstance(payload, dict) else None
    message: str | None = None
    fields: dict[str, str | None] = {"type": None, "param": None, "fallback_suggestion": None}
    if isinstance(error, dict):
        message = _opt_str(error.get("message"))
        fields = {name: _opt_str(error.get(name)) for name in fields}
    elif isinstance(error, str):
        message = error
    elif isinstance(payload, dict):
        message = _opt_str(payload.get("message")) or _opt_str(payload.get("detail"))
    elif isinstance(payload, str) and payload.strip() and not payload.lstrip().startswith("<"):
        message = payload.strip()  # a plain-text body; HTML error pages say nothing useful
    text = (message or fallback_message)[:_MAX_ERROR_TEXT]
    return status_error(
        status,
        text,
        **fields,
        retry_after=retry_after_seconds(retry_after_header, fields["fallback_suggestion"]),
        body=payload,
    )


def error_from_body(
    status: int, reason: str, content: bytes, retry_after: str | None, redact: Redactor
) -> APIStatusError:
    """The typed error for a non-2xx response body, with any secret the server echoed
    replaced, so neither the message nor the kept body can leak it into a log."""
    text = redact(content.decode("utf-8", errors="replace"))
    payload: Any
    try:
        payload = json.loads(text)
    except ValueError:
        payload = text
    return error_from_payload(
        status, payload, fallback_message=reason or f"HTTP {status}", retry_after_header=retry_after
    )


def decode_json(data: str | bytes) -> dict[str, Any]:
    """A JSON object from the API, or an `LLMError` saying the response was malformed."""
    try:
        value = json.loads(data)
    except ValueError as exc:
        raise LLMError(f"the model API sent malformed JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise LLMError("the model API sent JSON that is not an object")
    return value


@dataclass(slots=True)
class _PartialCall:
    id: str = ""
    name: str = ""
    arguments: str = ""


class ToolCallAssembler:
    """Puts `tool_calls` deltas back together by their `index`.

    The id and name come in the first delta of a call; `arguments` arrives in fragments
    that only make sense concatenated. Parallel calls interleave by index.
    """

    def __init__(self) -> None:
        self._calls: dict[int, _PartialCall] = {}

    def add(self, deltas: Any) -> bool:
        """Fold in one chunk's deltas; whether they carried any part of a call."""
        if not isinstance(deltas, list):
            return False
        before = self._size()
        for delta in deltas:
            if not isinstance(delta, dict):
                continue
            index = delta.get("index")
            if not isinstance(index, int):
                # Servers that omit the index send one whole call per delta.
                index = len(self._calls)
            call = self._calls.setdefault(index, _PartialCall())
            if not call.id:
                call.id = _opt_str(delta.get("id")) or ""
            function = delta.get("function")
            if isinstance(function, dict):
                call.name += _opt_str(function.get("name")) or ""
                call.arguments += _opt_str(function.get("arguments")) or ""
        return self._size() != before

    def _size(self) -> int:
        return sum(len(c.id) + len(c.name) + len(c.arguments) for c in self._calls.values())

    def calls(self) -> tuple[ToolCall, ...]:
        return tuple(
            ToolCall(id=call.id or f"call_{index}", name=call.name, arguments=call.arguments)
            for index, call in sorted(self._calls.items())
        )


def estimate_usage(
    messages: Iterable[Mapping[str, Any]], completion: str, reasoning: str = ""
) -> Usage:
    """Usage estimated offline, for a server that reports none: the prompt from the request's
    messages (text, tool calls, a flat cost per image), the completion from the answer."""
    prompt = image = 0
    for message in messages:
        content = message.get("content")
        parts = content if isinstance(content, list) else [{"type": "text", "text": content}]
        for part in parts:
            if not isinstance(part, dict):
                continue
            if part.get("type") == "image_url":
                image += IMAGE_TOKENS
            elif isinstance(part.get("text"), str):
                prompt += estimate_tokens(part["text"])
        for call in message.get("tool_calls") or ():
            prompt += estimate_tokens(json.dumps(call))
    reasoning_tokens = estimate_tokens(reasoning)
    completion_tokens = estimate_tokens(completion) + reasoning_tokens
    return Usage(
        prompt_tokens=prompt + image,
        completion_tokens=completion_tokens,
        total_tokens=prompt + image + completion_tokens,
        reasoning_tokens=reasoning_tokens,
        image_tokens=image,
        estimated=True,
    )


class CompletionBuilder:
    """Folds the chunks of one streamed answer (or one whole answer) into a `Completed`.

    `messages` are the request's: when the server reports no usage, the `Completed`
    carries an estimate from them and the answer (`Usage.estimated`).
    """

    def __init__(self, model: str, messages: Iterable[Mapping[str, Any]] = ()) -> None:
        self.model = model
        self._messages = messages
        self._usage_reported = False
        self.finish_reason: str | None = None
        # Whether the latest chunk carried any of the answer (text, reasoning, a tool-call
        # fragment, the finish reason): only that shows the server is still answering.
        self.progressed = False
        self._text: list[str] = []
        self._reasoning: list[str] = []
        self._tools = ToolCallAssembler()
        self._usage = Usage()

    def _note(self, payload: Mapping[str, Any]) -> None:
        if "error" in payload:
            raise error_from_payload(
                _error_code(payload["error"]), dict(payload), fallback_message="error mid-answer"
            )
        self.model = _opt_str(payload.get("model")) or self.model
        if isinstance(payload.get("usage"), dict):
            self._usage = Usage.from_api(payload["usage"])
            self._usage_reported = True

    def add_chunk(self, chunk: Mapping[str, Any]) -> list[ChatEvent]:
        """The events one `chat.completion.chunk` carries, in the order they were written."""
        self._note(chunk)
        self.progressed = False
        events: list[ChatEvent] = []
        choice = _first_choice(chunk)
        if choice is None:
            return events
        delta = choice.get("delta")
        if isinstance(delta, dict):
            reasoning = _opt_str(delta.get("reasoning_content")) or _opt_str(delta.get("reasoning"))
            if reasoning:
                self._reasoning.append(reasoning)
                events.append(ReasoningDelta(reasoning))
            content = _opt_str(delta.get("content"))
            if content:
                self._text.append(content)
                events.append(TextDelta(content))
            tool_progress = self._tools.add(delta.get("tool_calls"))
            self.progressed = bool(events) or tool_progress
        finish_reason = _opt_str(choice.get("finish_reason"))
        self.finish_reason = finish_reason or self.finish_reason
        self.progressed = self.progressed or finish_reason is not None
        return events

    def add_response(self, response: Mapping[str, Any]) -> list[ChatEvent]:
        """A whole `chat.completion`; returns its reasoning and text as one event each."""
        self._note(response)
        choice = _first_choice(response)
        if choice is None:
            raise LLMError("the model API sent a response without choices")
        message = choice.get("message")
        message = message if isinstance(message, dict) else {}
        self.add_chunk({"choices": [{"delta": message, "finish_reason": None}]})
        self.finish_reason = _opt_str(choice.get("finish_reason"))
        return [
            event for event in (ReasoningDelta(self.reasoning), TextDelta(self.text)) if event.text
        ]

    @property
    def text(self) -> str:
        return "".join(self._text)

    @property
    def reasoning(self) -> str:
        return "".join(self._reasoning)

    def completed(self) -> Completed:
        calls = self._tools.calls()
        usage = self._usage
        if not self._usage_reported:
            spoken = self.text + "".join(call.name + call.arguments for call in calls)
            usage = estimate_usage(self._messages, spoken, self.reasoning)
        return Completed(
            model=self.model,
            finish_reason=self.finish_reason,
            usage=usage,
            tool_calls=calls,
            text=self.text,
            reasoning=self.reasoning,
        )


def _first_choice(payload: Mapping[str, Any]) -> dict[str, Any] | None:
    choices = payload.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        return choices[0]
    return None


def _error_code(error: Any) -> int:
    code = error.get("code") if isinstance(error, dict) else None
    try:
        status = int(code) if code is not None else 500
    except (TypeError, ValueError):
        return 500
    return status if 400 <= status <= 599 else 500
