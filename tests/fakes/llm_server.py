"""A fake Evolink / OpenAI chat-completions server on a free loopback port.

It speaks the seed API (`POST /v1/chat/completions`, Bearer auth): SSE streams of
`chat.completion.chunk`s (`content`, `reasoning_content` and `tool_calls` deltas, a final
chunk with `finish_reason`, a chunk with no choices and the `usage` when the request's
`stream_options.include_usage` asks for it, then `data: [DONE]`) and whole
`chat.completion` JSON answers; every error status with the seed's ErrorResponse body.

What it does per request is a *behaviour*: `Reply` (an answer, with delays), `Error` (a
status with its body and Retry-After) or `Cut` (a connection that breaks mid-answer).
Tests `enqueue()` behaviours (used first, in order), set `per_model[name]` (for every
request naming that model), or change `default`. With nothing scripted it streams
"You said: <last user text>" plus " [image]" per image part of that message, and
reasoning for `*-thinking` models, so end-to-end tests can assert what arrived.

Every request is recorded in `requests` (body, headers, path, which server, the
client's port) before auth and validation, so tests can count attempts.

    async with FakeLLM() as fake:                      # or the `fake_llm` fixture
        settings = Settings(evolink_base_url=fake.base_url,
                            evolink_api_key=fake.api_key)
        fake.enqueue(Error(503), Reply("hi", first_token_delay=0.2))

Run alone for manual use: `python -m tests.fakes.llm_server --port 8080`.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import collections
import itertools
import json
import re
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from aiohttp import web
from multidict import CIMultiDict

DEFAULT_API_KEY = "test-key"
MAX_IMAGE_BYTES = 10 * 1024 * 1024  # the seed's per-image limit
COMPLETIONS_PATH = "/v1/chat/completions"

Json = dict[str, Any]

# The seed's example ErrorResponse bodies, by status.
SEED_ERRORS: dict[int, dict[str, str]] = {
    400: {"message": "Invalid request parameters", "type": "invalid_request_error"},
    401: {"message": "Invalid or expired token", "type": "authentication_error"},
    402: {
        "message": "Insufficient quota",
        "type": "insufficient_quota_error",
        "fallback_suggestion": "https://evolink.ai/dashboard/billing",
    },
    403: {"message": "Access denied for this model", "type": "permission_error", "param": "model"},
    404: {
        "message": "Specified model not found",
        "type": "not_found_error",
        "param": "model",
        "fallback_suggestion": "gpt-5.5",
    },
    413: {
        "message": "Image file too large",
        "type": "request_too_large_error",
        "param": "content",
        "fallback_suggestion": "compress image to under 10MB",
    },
    429: {
        "message": "Rate limit exceeded",
        "type": "rate_limit_error",
        "fallback_suggestion": "retry after 60 seconds",
    },
    500: {
        "message": "Internal server error",
        "type": "internal_server_error",
        "fallback_suggestion": "try again later",
    },
    502: {
        "message": "Upstream AI service unavailable",
        "type": "upstream_error",
        "fallback_suggestion": "try different model",
    },
    503: {
        "message": "Service temporarily unavailable",
        "type": "service_unavailable_error",
        "fallback_suggestion": "retry after 30 seconds",
    },
}
_IMAGE_DATA_URL = re.compile(r"data:image/(jpeg|jpg|png|webp);base64,(.*)", re.S)


@dataclass(frozen=True)
class FakeToolCall:
    name: str
    arguments: str  # JSON text; streamed in `chunk_size` fragments
    id: str = ""  # "" -> call_<index>


@dataclass(frozen=True)
class Reply:
    """An answer. `None` fields are derived from the request (see the module doc)."""

    text: str | None = None
    reasoning: str | None = None
    tool_calls: Sequence[FakeToolCall] = ()
    first_byte_delay: float = 0.0  # before the status line: nothing at all arrives
    first_token_delay: float = 0.0  # after the headers, before the first chunk
    chunk_delay: float = 0.0  # between chunks
    chunk_size: int = 4  # characters of text (or arguments) per chunk
    keepalive: float | None = None  # while delaying, send an SSE comment this often
    stall_after: int | None = None  # go silent (but for keep-alives) after this many chunks
    stall: float = 3600.0  # seconds the stall lasts
    usage: Json | None = None
    send_usage: bool = True  # False: never report usage, even when the client asks for it
    finish_reason: str | None = None  # None: "tool_calls" if there are any, else "stop"
    model: str | None = None  # the model the response names; None: the requested one


@dataclass(frozen=True)
class Error:
    """An error status with the seed's body; `None` keeps the seed's field, "" drops it."""

    status: int
    message: str | None = None
    type: str | None = None
    param: str | None = None
    fallback_suggestion: str | None = None
    retry_after: str | float | None = None  # the Retry-After header
    raw_body: str | None = None  # sent as text/html instead of JSON (a proxy's error page)
    delay: float = 0.0

    def body(self) -> Json:
        fields: dict[str, Any] = {"code": self.status, **SEED_ERRORS.get(self.status, {})}
        for name in ("message", "type", "param", "fallback_suggestion"):
            value = getattr(self, name)
            if value == "":
                fields.pop(name, None)
            elif value is not None:
                fields[name] = value
        fields.setdefault("message", f"Error {self.status}")
        return {"error": fields}


@dataclass(frozen=True)
class Cut:
    """The answer `reply` breaks after `after_chunks` chunks: the connection is dropped,
    or with `clean`, the body ends without `finish_reason` or `[DONE]`."""

    after_chunks: int = 0
    reply: Reply = field(default_factory=Reply)
    clean: bool = False


Behaviour = Reply | Error | Cut


@dataclass(frozen=True)
class RecordedRequest:
    server: str  # the fake's name ("primary", "fallback", ...)
    base_url: str
    path: str
    headers: CIMultiDict[str]
    body: Json
    peer_port: int  # the client's port: the same port means a reused connection

    @property
    def model(self) -> str:
        return str(self.body.get("model", ""))

    @property
    def stream(self) -> bool:
        return bool(self.body.get("stream"))

    @property
    def authorization(self) -> str | None:
        return self.headers.get("Authorization")

    @property
    def last_user_content(self) -> str | list[Any]:
        for message in reversed(self.body.get("messages") or []):
            if isinstance(message, dict) and message.get("role") == "user":
                content = message.get("content")
                return content if isinstance(content, list | str) else ""
        return ""

    @property
    def last_user_text(self) -> str:
        content = self.last_user_content
        if isinstance(content, str):
            return content
        return " ".join(
            str(part.get("text", ""))
            for part in content
            if isinstance(part, dict)
            if part.get("type") == "text"
        )

    @property
    def image_urls(self) -> list[str]:
        """The image URLs of the last user message, exactly as sent."""
        content = self.last_user_content
        if isinstance(content, str):
            return []
        return [
            str(part["image_url"]["url"])
            for part in content
            if isinstance(part, dict) and part.get("type") == "image_url"
        ]


class BadRequest(Exception):
    def __init__(self, error: Error) -> None:
        super().__init__(error.message)
        self.error = error


def _check_number(body: Json, name: str, low: float, high: float | None = None) -> None:
    value = body.get(name)
    if value is None:
        return
    if not isinstance(value, int | float) or value < low or (high is not None and value > high):
        limit = f"between {low:g} and {high:g}" if high is not None else f"at least {low:g}"
        raise BadRequest(Error(400, message=f"{name} must be a number {limit}", param=name))


def validate(body: Any, max_image_bytes: int) -> None:
    """Reject what the seed API rejects: a 400 for a malformed request, a 413 for an image
    over the size limit."""
    if not isinstance(body, dict):
        raise BadRequest(Error(400, message="The request body must be a JSON object"))
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise BadRequest(Error(400, message="model is required", param="model"))
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest(
            Error(400, message="messages must hold at least 1 message", param="messages")
        )
    for message in messages:
        _validate_message(message, max_image_bytes)
    _check_number(body, "temperature", 0, 2)
    _check_number(body, "top_p", 0, 1)
    _check_number(body, "top_k", 1)
    _check_number(body, "max_tokens", 1)
    _check_number(body, "frequency_penalty", -2, 2)
    _check_number(body, "presence_penalty", -2, 2)
    stop = body.get("stop")
    if stop is not None and not (
        isinstance(stop, str)
        or (isinstance(stop, list) and len(stop) <= 4 and all(isinstance(s, str) for s in stop))
    ):
        raise BadRequest(
            Error(400, message="stop must be a string or up to 4 strings", param="stop")
        )
    if "stream" in body and not isinstance(body["stream"], bool):
        raise BadRequest(Error(400, message="stream must be a boolean", param="stream"))


def _validate_message(message: Any, max_image_bytes: int) -> None:
    if not isinstance(message, dict) or message.get("role") not in (
        "system",
        "user",
        "assistant",
        "tool",
    ):
        raise BadRequest(Error(400, message="each message needs a valid role", param="messages"))
    content = message.get("content")
    if content is None and (message.get("tool_calls") or message["role"] == "assistant"):
        return
    if isinstance(content, str):
        return
    if not isinstance(content, list):
        raise BadRequest(Error(400, message="content must be a string or a list", param="content"))
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            continue
        url = part.get("image_url", {}).get("url") if kind == "image_url" else None
        if not isinstance(url, str):
            raise BadRequest(Error(400, message="unknown content part", param="content"))
        _validate_image_url(url, max_image_bytes)


def _validate_image_url(url: str, max_image_bytes: int) -> None:
    if url.startswith(("https://", "http://")):
        return
    match = _IMAGE_DATA_URL.fullmatch(url)
    if match is None:
        raise BadRequest(
            Error(400, message="Unsupported image: use jpeg, png or webp", param="content")
        )
    try:
        size = len(base64.b64decode(match.group(2), validate=True))
    except binascii.Error as exc:
        raise BadRequest(Error(400, message="Invalid base64 image", param="content")) from exc
    if size > max_image_bytes:
        raise BadRequest(Error(413))


def _default_text(request: RecordedRequest) -> str:
    return f"You said: {request.last_user_text}" + " [image]" * len(request.image_urls)


def _chunks(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), max(1, size))]


class _Answer:
    """One reply, resolved against its request: the deltas to stream and the whole message."""

    def __init__(self, reply: Reply, request: RecordedRequest, seq: int) -> None:
        self.reply = reply
        self.id = f"chatcmpl-fake-{seq}"
        self.created = int(time.time())
        self.model = reply.model or request.model
        self.text = _default_text(request) if reply.text is None else reply.text
        thinking = request.model.endswith("-thinking")
        default_reasoning = f"Thinking about: {request.last_user_text}" if thinking else ""
        self.reasoning = default_reasoning if reply.reasoning is None else reply.reasoning
        self.calls = [
            (call.id or f"call_{index}", call) for index, call in enumerate(reply.tool_calls)
        ]
        self.finish_reason = reply.finish_reason or ("tool_calls" if self.calls else "stop")
        self.usage = reply.usage or self._usage(request)
        options = request.body.get("stream_options")
        asked = isinstance(options, dict) and options.get("include_usage") is True
        self.stream_usage = asked and reply.send_usage

    def _usage(self, request: RecordedRequest) -> Json:
        prompt = len(json.dumps(request.body.get("messages"))) // 4 + 1
        reasoning = len(self.reasoning) // 4
        completion = len(self.text) // 4 + 1 + reasoning
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": 0, "text_tokens": prompt},
            "completion_tokens_details": {"reasoning_tokens": reasoning},
        }

    def deltas(self) -> list[Json]:
        size = self.reply.chunk_size
        deltas: list[Json] = [{"reasoning_content": p} for p in _chunks(self.reasoning, size)]
        deltas += [{"content": p} for p in _chunks(self.text, size)]
        # Parallel calls interleave, fragment by fragment: clients must assemble by index.
        per_call = [
            [{"index": i, "id": call_id, "type": "function", "function": {"name": call.name}}]
            + [{"index": i, "function": {"arguments": p}} for p in _chunks(call.arguments, size)]
            for i, (call_id, call) in enumerate(self.calls)
        ]
        for row in itertools.zip_longest(*per_call):
            deltas += [{"tool_calls": [d]} for d in row if d is not None]
        if not deltas:
            deltas.append({"content": ""})
        deltas[0] = {"role": "assistant", **deltas[0]}
        return deltas

    def chunk(self, delta: Json, finish_reason: str | None = None) -> Json:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
        }

    def final_chunks(self) -> list[Json]:
        chunks = [self.chunk({}, self.finish_reason)]
        if self.stream_usage:
            chunks.append({**self.chunk({}), "choices": [], "usage": self.usage})
        return chunks

    def whole(self) -> Json:
        message: Json = {"role": "assistant", "content": self.text or None}
        if self.reasoning:
            message["reasoning_content"] = self.reasoning
        if self.calls:
            message["tool_calls"] = [
                {
                    "id": call_id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments},
                }
                for call_id, call in self.calls
            ]
        whole: Json = {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "message": message, "finish_reason": self.finish_reason}],
        }
        if self.reply.send_usage:
            whole["usage"] = self.usage
        return whole


def _sse(payload: Json | str) -> bytes:
    data = payload if isinstance(payload, str) else json.dumps(payload)
    return f"data: {data}\n\n".encode()


async def _pause(
    response: web.StreamResponse | None, seconds: float, keepalive: float | None
) -> None:
    """Wait, sending an SSE comment every `keepalive` seconds when there is a stream."""
    if response is None or not keepalive:
        await asyncio.sleep(seconds)
        return
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while (left := end - loop.time()) > 0:
        await asyncio.sleep(min(keepalive, left))
        await response.write(b": keep-alive\n\n")


def _drop_connection(request: web.Request) -> None:
    if request.transport is not None:
        request.transport.close()


class FakeLLM:
    """The fake server. Start with `async with FakeLLM() as fake` (or `start()`/`close()`).

    `api_key=None` accepts any or no Authorization header.
    """

    def __init__(
        self,
        *,
        name: str = "primary",
        api_key: str | None = DEFAULT_API_KEY,
        default: Behaviour | None = None,
        max_image_bytes: int = MAX_IMAGE_BYTES,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.name = name
        self.api_key = api_key
        self.default: Behaviour = default or Reply()
        self.per_model: dict[str, Behaviour] = {}
        self.max_image_bytes = max_image_bytes
        self.requests: list[RecordedRequest] = []
        self._queue: collections.deque[Behaviour] = collections.deque()
        self._host = host
        self._port = port
        self._seq = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    def enqueue(self, *behaviours: Behaviour) -> None:
        """Behaviours for the next requests, in order, before `per_model` and `default`."""
        self._queue.extend(behaviours)

    @property
    def pending(self) -> int:
        """Enqueued behaviours not used yet."""
        return len(self._queue)

    async def start(self) -> FakeLLM:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post(COMPLETIONS_PATH, self._handle)
        # A client that gives up (a timeout, a stopped stream) cancels its handler.
        self._runner = web.AppRunner(
            app, access_log=None, shutdown_timeout=0.5, handler_cancellation=True
        )
        await self._runner.setup()
        # A deep backlog: the benchmark opens hundreds of connections at once.
        site = web.TCPSite(self._runner, self._host, self._port, backlog=2048)
        await site.start()
        sockets = [s for s in self._runner.addresses if isinstance(s, tuple)]
        self.base_url = f"http://{self._host}:{sockets[0][1]}"
        return self

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeLLM:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def _next_behaviour(self, request: RecordedRequest) -> Behaviour:
        if self._queue:
            return self._queue.popleft()
        return self.per_model.get(request.model, self.default)

    async def _handle(self, http: web.Request) -> web.StreamResponse:
        raw = await http.read()
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        peer = http.transport.get_extra_info("peername") if http.transport else None
        recorded = RecordedRequest(
            server=self.name,
            base_url=self.base_url,
            path=http.path,
            headers=CIMultiDict(http.headers),
            body=body if isinstance(body, dict) else {},
            peer_port=int(peer[1]) if peer else 0,
        )
        self.requests.append(recorded)
        if self.api_key is not None and recorded.authorization != f"Bearer {self.api_key}":
            return await self._error(http, Error(401))
        try:
            validate(body, self.max_image_bytes)
        except BadRequest as bad:
            return await self._error(http, bad.error)
        behaviour = self._next_behaviour(recorded)
        if isinstance(behaviour, Error):
            return await self._error(http, behaviour)
        reply = behaviour.reply if isinstance(behaviour, Cut) else behaviour
        cut = behaviour if isinstance(behaviour, Cut) else None
        answer = _Answer(reply, recorded, next(self._seq))
        await asyncio.sleep(reply.first_byte_delay)
        try:
            if recorded.stream:
                return await self._stream(http, answer, cut)
            return await self._whole(http, answer, cut)
        except ConnectionResetError:  # the client went away mid-answer: its business
            return web.Response(status=499)

    async def _error(self, http: web.Request, error: Error) -> web.Response:
        await asyncio.sleep(error.delay)
        headers = {}
        if error.retry_after is not None:
            headers["Retry-After"] = str(error.retry_after)
        if error.raw_body is not None:
            return web.Response(
                status=error.status, text=error.raw_body, content_type="text/html", headers=headers
            )
        return web.json_response(error.body(), status=error.status, headers=headers)

    async def _stream(
        self, http: web.Request, answer: _Answer, cut: Cut | None
    ) -> web.StreamResponse:
        reply = answer.reply
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(http)
        await _pause(response, reply.first_token_delay, reply.keepalive)
        for sent, delta in enumerate(answer.deltas()):
            if cut is not None and sent == cut.after_chunks:
                return await self._cut(http, response, cut)
            if sent:
                await _pause(response, reply.chunk_delay, reply.keepalive)
            if sent == reply.stall_after:
                await _pause(response, reply.stall, reply.keepalive)
            await response.write(_sse(answer.chunk(delta)))
        if cut is not None:
            return await self._cut(http, response, cut)
        for chunk in answer.final_chunks():
            await response.write(_sse(chunk))
        await response.write(_sse("[DONE]"))
        await response.write_eof()
        return response

    @staticmethod
    async def _cut(http: web.Request, response: web.StreamResponse, cut: Cut) -> web.StreamResponse:
        if cut.clean:
            await response.write_eof()
        else:
            _drop_connection(http)
        return response

    async def _whole(
        self, http: web.Request, answer: _Answer, cut: Cut | None
    ) -> web.StreamResponse:
        await asyncio.sleep(answer.reply.first_token_delay)
        payload = json.dumps(answer.whole()).encode()
        if cut is None:
            return web.Response(body=payload, content_type="application/json")
        # Promise the whole body, send half of it, then break (or end) the connection.
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.content_length = len(payload)
        await response.prepare(http)
        await response.write(payload[: len(payload) // 2])
        _drop_connection(http)
        return response


class FakeLLMPair(NamedTuple):
    """Two fakes for base-URL fallback tests: point the base URL at `primary` and the
    fallback base URL at `fallback`."""

    primary: FakeLLM
    fallback: FakeLLM


def closed_base_url() -> str:
    """A loopback URL where nothing listens: connecting to it is refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def _main() -> None:
    parser = argparse.ArgumentParser(description="A fake chat-completions server.")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--api-key", default=DEFAULT_API_KEY, help="'' accepts any key")
    parser.add_argument("--first-token-delay", type=float, default=0.0)
    parser.add_argument("--chunk-delay", type=float, default=0.02)
    args = parser.parse_args()

    async def serve() -> None:
        reply = Reply(first_token_delay=args.first_token_delay, chunk_delay=args.chunk_delay)
        async with FakeLLM(api_key=args.api_key or None, default=reply, port=args.port) as fake:
            print(f"fake chat-completions API at {fake.base_url} (key {args.api_key!r})")
            await asyncio.Event().wait()

    asyncio.run(serve())


if __name__ == "__main__":
    _main()
