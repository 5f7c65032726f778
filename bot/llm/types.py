"""What the chat-completions client takes and yields, independent of HTTP."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bot.settings import GenerationParams

# The models the seed references name. Only for choice menus (Discord's `/chat model:`):
# any model name the API accepts works everywhere else.
SEED_MODELS: tuple[str, ...] = ("gpt-5.5", "gpt-5.1", "gpt-5.1-chat", "gpt-5.1-thinking")


@dataclass(frozen=True, slots=True)
class ChatRequest:
    model: str
    messages: list[dict[str, Any]]
    params: GenerationParams = field(default_factory=GenerationParams)
    tools: list[dict[str, Any]] | None = None

    def body(self, *, model: str, stream: bool) -> dict[str, Any]:
        body: dict[str, Any] = {"model": model, "messages": self.messages, "stream": stream}
        if stream:
            # Without it, OpenAI-compatible servers may send no usage in a stream.
            body["stream_options"] = {"include_usage": True}
        body.update(self.params.as_request_fields())
        if self.tools:
            body["tools"] = self.tools
        return body


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens one request used. `estimated`: the server reported none, so the counts were
    estimated from the text sent and received (`bot.tokens`), not billed figures."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    reasoning_tokens: int = 0
    cached_tokens: int = 0
    image_tokens: int = 0
    estimated: bool = False  # counted offline: the server sent no usage

    @classmethod
    def from_api(cls, raw: dict[str, Any] | None) -> Usage:
        if not raw:
            return cls()
        prompt = raw.get("prompt_tokens_details") or {}
        completion = raw.get("completion_tokens_details") or {}
        return cls(
            prompt_tokens=int(raw.get("prompt_tokens") or raw.get("input_tokens") or 0),
            completion_tokens=int(raw.get("completion_tokens") or raw.get("output_tokens") or 0),
            total_tokens=int(raw.get("total_tokens") or 0),
            reasoning_tokens=int(completion.get("reasoning_tokens") or 0),
            cached_tokens=int(prompt.get("cached_tokens") or 0),
            image_tokens=int(prompt.get("image_tokens") or 0),
        )

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            total_tokens=self.total_tokens + other.total_tokens,
            reasoning_tokens=self.reasoning_tokens + other.reasoning_tokens,
            cached_tokens=self.cached_tokens + other.cached_tokens,
            image_tokens=self.image_tokens + other.image_tokens,
            estimated=self.estimated or other.estimated,
        )

    def by_kind(self) -> dict[str, int]:
        return {
            "prompt": self.prompt_tokens,
            "completion": self.completion_tokens,
            "reasoning": self.reasoning_tokens,
            "cached": self.cached_tokens,
            "image": self.image_tokens,
        }


@dataclass(frozen=True, slots=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text, exactly as the model produced it

    def as_message_part(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments},
        }


@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str


@dataclass(frozen=True, slots=True)
class ReasoningDelta:
    text: str


@dataclass(frozen=True, slots=True)
class Fallback:
    """The client switched model or base URL; `notice` is for the user when model changed."""

    model: str
    base_url: str
    notice: str | None


@dataclass(frozen=True, slots=True)
class Completed:
    """The last event of every successful stream (and the result of a non-streamed call)."""

    model: str
    finish_reason: str | None
    usage: Usage = field(default_factory=Usage)
    tool_calls: tuple[ToolCall, ...] = ()
    text: str = ""
    reasoning: str = ""


ChatEvent = TextDelta | ReasoningDelta | Fallback | Completed
