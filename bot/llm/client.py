"""The chat-completions client: one pooled HTTP client, streaming and not, with retries.

Speaks the Evolink / OpenAI chat-completions API (`POST {base}/v1/chat/completions`,
Bearer auth, SSE with `data: [DONE]` when streaming). What to do after a failure is
decided by `RetryPlan`; what the bytes mean by `bot.llm.wire`; this module moves bytes
and keeps time.

Timeouts (`Timeouts`): `connect`, `write` and `pool` are httpx's. Waiting for the answer
is governed by `_Deadline`: the answer must begin (its first text, reasoning or tool-call
fragment) within `first_token` seconds, and from then on no more than `idle` seconds may
pass between two pieces of it. SSE comments and empty chunks extend neither, so an
upstream that only sends keep-alives is given up on; a long answer is never cut for its
length, only a stalled one is.
"""

from __future__ import annotations

import asyncio
import logging
import random as random_module
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterator
from contextlib import aclosing, contextmanager, suppress
from typing import TypeVar, cast
from urllib.parse import urlsplit

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport
from httpx_sse import EventSource
from pydantic import SecretStr

from bot.errors import APIConnectionError, APITimeoutError, LLMError, StreamInterrupted
from bot.llm.retry import RetryPlan, StreamCut, Switch
from bot.llm.types import ChatEvent, ChatRequest, Completed, Fallback, ReasoningDelta, TextDelta
from bot.llm.wire import CompletionBuilder, completions_url, decode_json, error_from_body
from bot.settings import ConnectionLimits, RetryPolicy, Settings, Timeouts
from bot.text.redact import Redactor

log = logging.getLogger(__name__)

T = TypeVar("T")
Hook = Callable[[str], None]

USER_AGENT = "parley/0.1"
# After [DONE] the body's end is read (briefly) so the connection returns to the pool.
_DRAIN_SECONDS = 0.25
DEFAULT_TIMEOUTS = Timeouts()
DEFAULT_RETRY = RetryPolicy()
DEFAULT_LIMITS = ConnectionLimits()


class _Deadline:
    """How much longer the client waits for the server, counted in time spent waiting.

    Until the answer's first content, all waits together get `first_token` seconds; each
    piece of content (`progressed()`) gives the next waits `idle` seconds afresh. Nothing
    else resets the clock: not SSE keep-alive comments, not chunks without content. The
    time our caller spends between two reads is not the server's silence, so it is not
    counted.
    """

    def __init__(self, timeouts: Timeouts) -> None:
        self._loop = asyncio.get_running_loop()
        self._first_token = timeouts.first_token
        self._idle = timeouts.idle
        self._left = timeouts.first_token
        self._started = False

    def progressed(self) -> None:
        """Content arrived: from now on only the idle timeout applies."""
        self._started = True
        self._left = self._idle

    async def wait(self, awaitable: Awaitable[T]) -> T:
        began = self._loop.time()
        try:
            # A zero or negative budget still lets an already-buffered result through.
            async with asyncio.timeout(self._left):
                return await awaitable
        except TimeoutError as exc:
            if self._started:
                message = f"the model API sent nothing new for {self._idle:g}s mid-answer"
            else:
                message = f"the model API didn't start answering within {self._first_token:g}s"
            raise APITimeoutError(message) from exc
        finally:
            self._left -= self._loop.time() - began


def _timed_out(exc: httpx.TransportError) -> bool:
    """Whether `exc` is a real timeout. httpx-aiohttp reports most of aiohttp's connection
    errors (refused, server disconnected) as `ConnectTimeout`; those are not."""
    if not isinstance(exc, httpx.TimeoutException):
        return False
    cause = exc.__cause__
    return isinstance(cause, TimeoutError) or not isinstance(cause, aiohttp.ClientConnectionError)


@contextmanager
def _reading_body() -> Iterator[None]:
    """Failures while the body arrives: the status was fine, the answer was cut."""
    try:
        yield
    except httpx.TransportError as exc:
        if _timed_out(exc):
            raise APITimeoutError(f"the model API went silent mid-answer: {exc!r}") from exc
        raise StreamCut(f"the connection broke mid-answer: {exc!r}") from exc


def _host(url: str) -> str:
    """Host and port only: a URL may carry credentials, a log line must not."""
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port}" if parts.port else str(parts.hostname)


class ChatClient:
    """A chat-completions client shared by every conversation of the process.

    One `httpx.AsyncClient` (on an aiohttp transport) pools connections for all
    requests; `stream()` and `complete()` retry and fall back as `RetryPlan` describes.
    After a switch to the fallback base URL, new requests start there for
    `remember_fallback_for` seconds, so a dead primary costs the failed attempts once,
    not on every message.

    `on_retry(reason)` is called for each retry (reason: the error kind, e.g.
    "rate_limit", "timeout", "stream_cut"); `on_fallback(kind)` for each switch ("base_url"
    or "model"). Close with `aclose()` (or use `async with`).
    """

    def __init__(
        self,
        *,
        api_key: SecretStr | None,
        base_url: str,
        fallback_base_url: str | None = None,
        fallback_model: str | None = None,
        timeouts: Timeouts = DEFAULT_TIMEOUTS,
        retry: RetryPolicy = DEFAULT_RETRY,
        limits: ConnectionLimits = DEFAULT_LIMITS,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        random: Callable[[], float] = random_module.random,
        clock: Callable[[], float] = time.monotonic,
        remember_fallback_for: float = 60.0,
        transport: httpx.AsyncBaseTransport | None = None,
        on_retry: Hook | None = None,
        on_fallback: Hook | None = None,
    ) -> None:
        self.base_url = base_url
        self.fallback_base_url = fallback_base_url if fallback_base_url != base_url else None
        self.fallback_model = fallback_model
        self._timeouts = timeouts
        self._retry = retry
        self._sleep = sleep
        self._random = random
        self._clock = clock
        self._remember_fallback_for = remember_fallback_for
        self._fallback_until = float("-inf")
        self._on_retry = on_retry
        self._on_fallback = on_fallback
        key = api_key.get_secret_value() if api_key else ""
        self._auth = {"Authorization": f"Bearer {key}"} if key else {}
        self._redact = Redactor((key,))  # a server may echo the key back in an error
        pool = httpx.Limits(
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive,
        )
        self._http = httpx.AsyncClient(
            # httpcore's own pool slows down badly with hundreds of concurrent streams
            # (seconds to first token at 500); aiohttp's stays flat.
            transport=transport or AiohttpTransport(limits=pool),
            timeout=httpx.Timeout(
                connect=timeouts.connect,
                # A backstop only: the deadline above always gives up first.
                read=max(timeouts.first_token, timeouts.idle),
                write=timeouts.write,
                pool=timeouts.pool,
            ),
            headers={"User-Agent": USER_AGENT},
        )

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        on_retry: Hook | None = None,
        on_fallback: Hook | None = None,
    ) -> ChatClient:
        return cls(
            api_key=settings.evolink_api_key,
            base_url=settings.evolink_base_url,
            fallback_base_url=settings.evolink_fallback_base_url or None,
            fallback_model=settings.bot_fallback_model or None,
            timeouts=settings.timeouts(),
            retry=settings.retry_policy(),
            transport=transport,
            on_retry=on_retry,
            on_fallback=on_fallback,
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> ChatClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def stream(self, request: ChatRequest) -> AsyncGenerator[ChatEvent, None]:
        """Stream one answer: text and reasoning deltas as they come, a `Fallback` when
        another base URL or model answers, and finally exactly one `Completed`.

        Raises an `LLMError` subclass; once any text or reasoning was yielded, a broken
        stream raises `StreamInterrupted` (what was shown stays valid). Close the
        iterator if you stop early (`contextlib.aclosing`), so its connection is freed.
        """
        plan = self._plan(request)
        shown = False
        announced = (self.base_url, request.model)
        while True:
            plan.start_attempt()
            try:
                async with aclosing(self._stream_once(plan, request)) as events:
                    async for event in events:
                        if isinstance(event, Fallback):
                            if (event.base_url, event.model) == announced:
                                continue
                            announced = (event.base_url, event.model)
                            event = self._with_notice(event, request.model)
                        shown = shown or isinstance(event, TextDelta | ReasoningDelta)
                        yield event
                return
            except LLMError as exc:
                if shown:
                    raise StreamInterrupted(str(exc)) from exc
                await self._recover(plan, exc)

    async def complete(self, request: ChatRequest) -> Completed:
        """One whole answer (`stream: false`), with the same retries and fallbacks.

        The answer must begin arriving within `first_token` seconds of the request.
        """
        plan = self._plan(request)
        while True:
            plan.start_attempt()
            try:
                return await self._complete_once(plan, request)
            except LLMError as exc:
                await self._recover(plan, exc)

    def _plan(self, request: ChatRequest) -> RetryPlan:
        start, other = self.base_url, self.fallback_base_url
        if other is not None and self._clock() < self._fallback_until:
            start, other = other, start
        return RetryPlan(
            model=request.model,
            base_url=start,
            other_base_url=other,
            fallback_model=self.fallback_model,
            policy=self._retry,
            random=self._random,
        )

    async def _stream_once(
        self, plan: RetryPlan, request: ChatRequest
    ) -> AsyncGenerator[ChatEvent, None]:
        deadline = _Deadline(self._timeouts)
        response = await self._send(plan, request, deadline, stream=True)
        builder = CompletionBuilder(plan.model, request.messages)
        try:
            if (plan.base_url, plan.model) != (self.base_url, request.model):
                yield Fallback(model=plan.model, base_url=plan.base_url, notice=None)
            content_type = response.headers.get("content-type", "")
            if "text/event-stream" not in content_type:
                # A server that ignores `stream: true` sends the whole answer at once.
                for event in builder.add_response(await self._read_json(response, deadline)):
                    yield event
                yield builder.completed()
                return
            done = False
            async with aclosing(EventSource(response).aiter_sse()) as sse_events:
                with _reading_body():
                    while (sse := await deadline.wait(anext(sse_events, None))) is not None:
                        data = sse.data.strip()
                        if data == "[DONE]":
                            done = True
                            break
                        if not data:
                            continue
                        if '"error"' in data:
                            data = self._redact(data)
                        events = builder.add_chunk(decode_json(data))
                        if builder.progressed:
                            deadline.progressed()
                        for event in events:
                            yield event
                if done:
                    await self._drain(sse_events)
            if not done and builder.finish_reason is None:
                raise StreamCut("the stream ended before the answer was complete")
            yield builder.completed()
        finally:
            await response.aclose()

    async def _complete_once(self, plan: RetryPlan, request: ChatRequest) -> Completed:
        deadline = _Deadline(self._timeouts)
        response = await self._send(plan, request, deadline, stream=False)
        try:
            payload = await self._read_json(response, deadline)
        finally:
            await response.aclose()
        builder = CompletionBuilder(plan.model, request.messages)
        builder.add_response(payload)
        return builder.completed()

    async def _send(
        self, plan: RetryPlan, request: ChatRequest, deadline: _Deadline, *, stream: bool
    ) -> httpx.Response:
        """Send the request and wait for its status; a non-2xx status becomes its error."""
        headers = {
            **self._auth,
            "Accept": "text/event-stream" if stream else "application/json",
        }
        outgoing = self._http.build_request(
            "POST",
            completions_url(plan.base_url),
            json=request.body(model=plan.model, stream=stream),
            headers=headers,
        )
        try:
            response = await deadline.wait(self._http.send(outgoing, stream=True))
        except httpx.TransportError as exc:
            if _timed_out(exc):
                raise APITimeoutError(f"{_host(plan.base_url)} timed out: {exc!r}") from exc
            raise APIConnectionError(f"couldn't reach {_host(plan.base_url)}: {exc!r}") from exc
        if response.is_success:
            return response
        content = b""
        try:
            with suppress(httpx.HTTPError, APITimeoutError):
                content = await deadline.wait(response.aread())
        finally:
            await response.aclose()
        raise error_from_body(
            response.status_code,
            response.reason_phrase,
            content,
            response.headers.get("retry-after"),
            self._redact,
        )

    async def _read_json(self, response: httpx.Response, deadline: _Deadline) -> dict[str, object]:
        """The whole JSON body; once its first bytes arrive, the idle timeout applies."""
        content = bytearray()
        with _reading_body():
            # httpx's `aiter_bytes` is an async generator; closing it frees the connection.
            body = cast("AsyncGenerator[bytes, None]", response.aiter_bytes())
            async with aclosing(body) as chunks:
                while (chunk := await deadline.wait(anext(chunks, None))) is not None:
                    content += chunk
                    deadline.progressed()
        return decode_json(bytes(content))

    @staticmethod
    async def _drain(events: AsyncIterator[object]) -> None:
        with suppress(TimeoutError, httpx.HTTPError):
            async with asyncio.timeout(_DRAIN_SECONDS):
                async for _ in events:
                    pass

    async def _recover(self, plan: RetryPlan, exc: LLMError) -> None:
        """Log and count the retry `plan` decides on and sleep before it; or re-raise."""
        failed_on = (plan.base_url, plan.model, plan.attempts)
        retry = plan.after_failure(exc)
        log.warning(
            "chat request failed (%s: %s) on %s with %s, attempt %d; %s",
            exc.kind,
            exc,
            _host(failed_on[0]),
            failed_on[1],
            failed_on[2],
            self._describe(retry.switched, plan, retry.delay),
        )
        if retry.switched is None:
            if self._on_retry is not None:
                self._on_retry(retry.reason)
        else:
            self._note_switch(retry.switched, plan)
        if retry.delay > 0:
            await self._sleep(retry.delay)

    def _note_switch(self, switched: Switch, plan: RetryPlan) -> None:
        if switched == "base_url":
            to_fallback = plan.base_url == self.fallback_base_url
            self._fallback_until = (
                self._clock() + self._remember_fallback_for if to_fallback else float("-inf")
            )
        if self._on_fallback is not None:
            self._on_fallback(switched)

    @staticmethod
    def _describe(switched: Switch | None, plan: RetryPlan, delay: float) -> str:
        if switched == "base_url":
            return f"switching to {_host(plan.base_url)}"
        if switched == "model":
            return f"switching to model {plan.model}"
        return f"retrying in {delay:.2f}s" if delay else "retrying at once"

    @staticmethod
    def _with_notice(event: Fallback, requested_model: str) -> Fallback:
        if event.model == requested_model:
            return event
        notice = f"{requested_model} was unavailable, so {event.model} answered."
        return Fallback(model=event.model, base_url=event.base_url, notice=notice)
