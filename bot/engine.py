"""The engine: one incoming message in, one streamed answer out, history kept.

For each message the intake (`bot.intake`) hands over, `Engine.handle`:

1. checks the input and prepares its parts (images normalized in a worker thread, text
   files inlined, unreadable files noted) before taking any lock;
2. locks the conversation across processes, stores the user turn and reads the history
   in one round trip (seeding it first from the platform thread if the store has none);
3. streams the completion into the adapter's sink, pushing the text at most every
   `sink.min_update_interval` seconds from a separate task (a slow platform edit never
   holds up reading the model's stream), runs tool calls the model makes;
4. finishes the sink, then stores the answer and releases the lock in one round trip
   (the person doesn't wait for the store; a follow-up waits for the lock) — or fails
   the sink with a message the user can act on. Whatever happens, the sink is finished
   or failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from bot.conversation import (
    ConversationKey,
    ImageRef,
    ImageURL,
    IncomingMessage,
    Part,
    Role,
    TextPart,
    Turn,
    system_text,
    to_api_messages,
)
from bot.documents.reader import DocumentReader
from bot.errors import (
    BadRequestError,
    ContentRemoved,
    EmptyAnswer,
    MessageTooLong,
    ParleyError,
    RequestTooLargeError,
    StoreUnavailable,
    StreamInterrupted,
    TooManyImages,
)
from bot.llm.client import ChatClient
from bot.llm.types import ChatRequest, Completed, Fallback, ReasoningDelta, TextDelta, Usage
from bot.media.attachments import FileKind, classify
from bot.media.images import normalize_images
from bot.media.pixel_budget import PixelBudget
from bot.metrics import Metrics
from bot.policy import Base, Persona
from bot.rejected import without_rejected
from bot.reply import audience_of
from bot.reply.sink import FinalReply, ReplySink, show_tool_progress
from bot.settings import GenerationParams, Limits, Settings
from bot.store import ConversationStore
from bot.text.redact import Redactor
from bot.tokens import estimate_tokens
from bot.tools import ToolBox, ToolCalls, ToolProgress
from bot.tools.approval import ApprovalBoard
from bot.tools.turn import approval_gate
from bot.usage import Governance

log = logging.getLogger(__name__)

HELP_TEXT = (
    "Hi! Ask me anything: mention me with your question, or keep talking in this thread "
    "and I'll remember the conversation. You can attach images and text files too."
)
RESTART_TEXT = "I was restarted before I could finish this answer. Please ask again."


@dataclass(frozen=True, slots=True)
class EngineConfig:
    model: str = "gpt-5.5"
    system_prompt: str = ""
    generation: GenerationParams = field(default_factory=GenerationParams)
    limits: Limits = field(default_factory=Limits)
    tools: bool = True
    show_reasoning: bool = True
    redactor: Redactor = field(default_factory=lambda: Redactor(()))  # secrets never posted
    tool_timeout: float = 30.0
    max_tool_rounds: int = 8

    def persona(self) -> Persona:
        """The persona of every turn when no policy gives one."""
        return Base(
            self.model, self.system_prompt, self.generation, self.tools, self.show_reasoning
        ).persona()

    @classmethod
    def from_settings(cls, settings: Settings) -> EngineConfig:
        return cls(
            model=settings.bot_model,
            system_prompt=settings.bot_system_prompt,
            generation=settings.generation(),
            limits=settings.limits(),
            tools=settings.bot_tools,
            show_reasoning=settings.bot_show_reasoning,
            redactor=Redactor.from_settings(settings),
            tool_timeout=settings.bot_tool_timeout,
            max_tool_rounds=settings.bot_max_tool_rounds,
        )


@dataclass(slots=True)
class _Prepared:
    parts: list[Part]
    images: dict[str, bytes]
    image_names: list[str]
    notes: list[str]
    documents: dict[str, str]  # sha256 -> text of this message's documents


@dataclass(slots=True)
class _Delivery:
    """Whether the sink has been finished with the answer: after that, nothing may fail it
    (what fails later, storing the answer or a shutdown, leaves the answer standing)."""

    done: bool = False


@dataclass(slots=True)
class _Answer:
    text: str
    model: str
    usage: Usage
    notes: list[str]


class _Pusher:
    """Shows the latest text on the sink, at most once per interval, off the read loop.

    It holds the growing list of text chunks and joins them only when it pushes, so a
    long answer costs one join per update, not one per token. The first text waits the
    sink's `first_update_delay`; a status or a tool step is shown at once. Closing never
    interrupts a sink call in progress: a platform request cut off halfway could leave
    a message the sink does not know about. Secrets are redacted from what it shows,
    and an ending that may be the start of one waits for the text after it.
    """

    def __init__(self, sink: ReplySink, redact: Redactor) -> None:
        self._sink = sink
        self._redact = redact
        self._shown = ""
        self._chunks: list[str] = []
        self._status: str | None = None
        self._steps: list[ToolProgress] = []  # every step is shown, in order
        self._wake = asyncio.Event()
        self._in_sink = False
        self._closing = False
        self._task = asyncio.create_task(self._run())

    def text(self, chunks: list[str]) -> None:
        self._chunks = chunks
        self._wake.set()

    def status(self, status: str) -> None:
        self._status = status
        self._wake.set()

    def tool(self, step: ToolProgress) -> None:
        self._steps.append(step)
        self._wake.set()

    async def _run(self) -> None:
        shown = 0
        while True:
            await self._wake.wait()
            if not self._shown and self._status is None and not self._steps:
                # Cancelled by `close` when the answer ends first.
                await asyncio.sleep(self._sink.first_update_delay)
            self._wake.clear()
            self._in_sink = True
            try:
                await self._show_steps()
                if self._status is not None:
                    status, self._status = self._status, None
                    await self._sink.progress(self._redact(status))
                if len(self._chunks) != shown:
                    shown = len(self._chunks)
                    # Unchanged when all that came is a possible secret's beginning.
                    if (text := self._redact.visible("".join(self._chunks))) != self._shown:
                        self._shown = text
                        await self._sink.update(text)
            finally:
                self._in_sink = False
            if self._closing:
                return
            await asyncio.sleep(self._sink.min_update_interval)

    async def _show_steps(self) -> None:
        while self._steps:
            step = self._steps.pop(0)
            summary = self._redact(step.summary)
            await show_tool_progress(self._sink, dataclasses.replace(step, summary=summary))

    async def close(self) -> None:
        self._closing = True
        if not self._in_sink:
            self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        await self._show_steps()  # a tool's last steps are shown even in the final second


class Engine:
    """Answers normalized messages; shared by every adapter and by `parley chat`."""

    def __init__(
        self,
        *,
        store: ConversationStore,
        llm: ChatClient,
        config: EngineConfig,
        metrics: Metrics | None = None,
        toolbox: ToolBox | None = None,
        governance: Governance | None = None,
    ) -> None:
        self.store = store
        self.llm = llm
        self.config = config
        self.metrics = metrics or Metrics()
        self.toolbox = toolbox or ToolBox()
        self.governance = governance  # the policy, usage meter and quotas; None: none
        self.approvals = ApprovalBoard(store.redis)  # tools waiting for the asker's yes
        self._tasks: dict[asyncio.Task[Any], int] = {}
        self._persona = config.persona()  # when the intake passes none (no policy step)
        self.documents = DocumentReader.for_store(store, config.limits)
        self._pixels = PixelBudget(config.limits.image_decode_pixels)  # one per process

    @property
    def limits(self) -> Limits:
        return self.config.limits

    # -- conversation commands ------------------------------------------------

    async def claim_event(self, event_id: str) -> bool:
        """True the first time any replica sees `event_id`."""
        return await self.store.claim_event(event_id)

    async def has_history(self, key: ConversationKey) -> bool:
        """Whether the bot has taken part in this conversation."""
        return await self.store.exists(key)

    async def reset(self, key: ConversationKey) -> None:
        await self.store.reset(key)

    async def set_model(self, key: ConversationKey, model: str) -> None:
        await self.store.set_model(key, model)

    async def model_for(self, key: ConversationKey) -> str:
        return await self.store.get_model(key) or self.config.model

    # -- answering ------------------------------------------------------------

    async def handle(self, msg: IncomingMessage, sink: ReplySink) -> Usage | None:
        """Answer `msg` into `sink`; the answer's usage, or None when none was written.

        Never raises; the sink always ends finished or failed.
        """
        with self.track():
            return await self._handle(msg, sink)

    @contextlib.contextmanager
    def track(self) -> Iterator[None]:
        """Count the current task as work in flight until the block ends; `drain` waits for it.

        Adapters wrap all their work for one event in it (downloads and thread seeds come
        before `handle`), so a shutdown waits for those too. Nesting is fine.
        """
        task = asyncio.current_task()
        if task is None:
            yield
            return
        self._tasks[task] = self._tasks.get(task, 0) + 1
        try:
            yield
        finally:
            if self._tasks[task] == 1:
                del self._tasks[task]
            else:
                self._tasks[task] -= 1

    async def _handle(self, msg: IncomingMessage, sink: ReplySink) -> Usage | None:
        platform = msg.key.platform
        started = time.monotonic()
        delivery = _Delivery()
        self.metrics.in_flight.inc()
        try:
            await sink.start()
            if not msg.text.strip() and not msg.files and not msg.image_urls:
                await sink.finish(FinalReply(HELP_TEXT, tuple(msg.notes)))
                self.metrics.turns.labels(platform, "help").inc()
                return None
            prepared = await self._prepare(msg)
            answer = await self._converse(msg, prepared, sink, started, delivery)
            self.metrics.turns.labels(platform, "answered").inc()
            self.metrics.total_time.observe(time.monotonic() - started)
            if self.governance is not None:
                meter = self.governance.meter
                await meter.record(msg.key, msg.author_id, answer.model, answer.usage)
            return answer.usage
        except ParleyError as exc:
            self._count_error(platform, exc)
            log.warning("answer in %s failed: %s (%s)", msg.key.id, exc.kind, exc)
            if not delivery.done:
                await sink.fail(self.config.redactor(exc.user_message))
        except asyncio.CancelledError:
            self.metrics.turns.labels(platform, "cancelled").inc()
            if not delivery.done:
                await asyncio.shield(sink.fail(RESTART_TEXT))
            raise
        except Exception:
            log.exception("unexpected failure answering in %s", msg.key.id)
            self.metrics.errors.labels("internal").inc()
            self.metrics.turns.labels(platform, "failed").inc()
            if not delivery.done:
                await sink.fail(ParleyError().user_message)
        finally:
            self.metrics.in_flight.dec()
        return None

    def _count_error(self, platform: str, exc: ParleyError) -> None:
        self.metrics.errors.labels(exc.kind).inc()
        self.metrics.turns.labels(platform, "failed").inc()

    async def _prepare(self, msg: IncomingMessage) -> _Prepared:
        limits = self.config.limits
        if len(msg.text) > limits.max_input_chars:
            raise MessageTooLong(len(msg.text), limits.max_input_chars)
        image_files = [f for f in msg.files if classify(f.name, f.mime) is FileKind.IMAGE]
        image_count = len(image_files) + len(msg.image_urls)
        if image_count > limits.max_images:
            raise TooManyImages(image_count, limits.max_images)
        notes = list(msg.notes)
        parts: list[Part] = [TextPart(msg.text)] if msg.text.strip() else []
        for file in msg.files:
            if classify(file.name, file.mime) is FileKind.OTHER:
                notes.append(f"Skipped “{file.name}”: I can't read that kind of file.")
        docs = await self.documents.read(
            [f for f in msg.files if classify(f.name, f.mime).readable]
        )
        parts.extend(docs.parts)
        notes.extend(docs.notes)
        batch = await normalize_images(image_files, limits, self._pixels)
        notes.extend(unreadable.user_message for unreadable in batch.unreadable)
        parts.extend(ImageRef(img.sha256, img.mime) for img in batch.images)
        parts.extend(ImageURL(url) for url in msg.image_urls)
        if not parts and batch.unreadable:
            raise batch.unreadable[0]  # nothing left to answer
        return _Prepared(
            parts=parts,
            images={**docs.images, **{img.sha256: img.data for img in batch.images}},
            image_names=[img.name for img in batch.images],
            notes=notes,
            documents=docs.texts,
        )

    async def _converse(
        self,
        msg: IncomingMessage,
        prepared: _Prepared,
        sink: ReplySink,
        started: float,
        delivery: _Delivery,
    ) -> _Answer:
        persona = msg.persona or self._persona
        turn = Turn.make(
            Role.USER, prepared.parts, msg.author, author_id=msg.author_id, mentions=msg.mentions
        )
        system_tokens = estimate_tokens(system_text(persona.system_prompt))
        budget = max(self.config.limits.context_budget - system_tokens, 1)
        async with self.store.turn(
            msg.key, turn, prepared.images, budget, seed=msg.seed
        ) as held:
            history = held.history
            if history.trimmed:
                prepared.notes.append(
                    "Older messages in this thread were left out to fit the model's context."
                )
            sink.meet(audience_of(msg.key, history, allow_mentions=persona.allow_mentions))
            model = msg.model or history.model or persona.model
            documents = await self.documents.expand(
                history.turns, budget, prepared.documents, prepared.notes
            )
            messages = to_api_messages(
                persona.system_prompt, history.turns, history.images, documents
            )
            try:
                answer = await self._complete(
                    messages, model, persona, prepared, sink, started, msg
                )
            except (BadRequestError, RequestTooLargeError) as exc:
                kept = without_rejected(turn, exc)
                if kept is None:
                    raise
                await held.replace(turn, kept.turn)
                raise ContentRemoved(exc, kept.removed) from exc
            if not answer.text.strip():
                raise EmptyAnswer()
            # The person sees the answer first; storing it is the lock holder's last step,
            # so a follow-up still waits for it, but the reply doesn't.
            await sink.finish(self._final(answer, persona))
            delivery.done = True
            try:
                await held.finish(Turn.text(Role.ASSISTANT, answer.text))
            except StoreUnavailable:
                # The answer stands (the sink is finished and may not fail now); only
                # its place in the history is lost, and the lock expires by itself.
                log.warning("answer in %s was posted but could not be stored", msg.key.id)
            return answer

    def _final(self, answer: _Answer, persona: Persona) -> FinalReply:
        redact = self.config.redactor
        text, notes = redact(answer.text), tuple(map(redact, answer.notes))
        return FinalReply(text, notes, answer.model, answer.usage, persona.name)

    async def _complete(
        self,
        messages: list[dict[str, Any]],
        model: str,
        persona: Persona,
        prepared: _Prepared,
        sink: ReplySink,
        started: float,
        msg: IncomingMessage,
    ) -> _Answer:
        """Stream the model's answer, running tool calls until it gives text."""
        tools = await self.toolbox.specs(persona.tools.allows) or None
        notes = prepared.notes
        usage = Usage()
        rounds = self.config.max_tool_rounds
        async with self._pusher(sink) as pusher:
            calls = ToolCalls(
                self.toolbox,
                self.metrics,
                timeout=self.config.tool_timeout,
                on_progress=pusher.tool,
                allowed=persona.tools.allows,
                approval=approval_gate(self.approvals, msg, sink, self.config.redactor),
                needs_approval=None if persona.approve_tools.none else persona.approve_tools.allows,
            )
            for round_ in range(rounds + 1):
                # The last request offers no tools, so the model has to answer in text.
                offered = tools if round_ < rounds else None
                request = ChatRequest(model, messages, persona.generation, offered)
                try:
                    text, done = await self._stream(
                        request, pusher, notes, started, persona.show_reasoning
                    )
                except StreamInterrupted as exc:
                    partial = str(exc.args[0]) if exc.args else ""
                    if not partial:
                        raise
                    notes.append(exc.user_message)
                    return _Answer(partial, model, usage, notes)
                except BadRequestError as exc:
                    if tools and exc.param == "tools":
                        log.warning("model %s refused tools; asking again without them", model)
                        tools = None
                        continue
                    raise
                except RequestTooLargeError as exc:
                    if prepared.image_names:
                        exc.image_name = prepared.image_names[-1]
                    raise
                usage = usage + done.usage
                model = done.model or model
                if not done.tool_calls:
                    if done.finish_reason == "length":
                        notes.append("The answer hit the length limit and may be incomplete.")
                    if done.finish_reason == "content_filter":
                        notes.append("Part of the answer was withheld by the content filter.")
                    if used := calls.note():
                        notes.append(used)
                    return _Answer(text, model, usage, notes)
                messages = [
                    *messages,
                    {
                        "role": "assistant",
                        "content": text or None,
                        "tool_calls": [c.as_message_part() for c in done.tool_calls],
                    },
                    *await calls.run_round(done.tool_calls),
                ]
        log.warning("model %s still calling tools after %d rounds", model, rounds)
        return _Answer("", model, usage, notes)

    @asynccontextmanager
    async def _pusher(self, sink: ReplySink) -> AsyncIterator[_Pusher]:
        pusher = _Pusher(sink, self.config.redactor)
        try:
            yield pusher
        finally:
            await pusher.close()

    async def _stream(
        self,
        request: ChatRequest,
        pusher: _Pusher,
        notes: list[str],
        started: float,
        show_reasoning: bool,
    ) -> tuple[str, Completed]:
        chunks: list[str] = []
        reasoning: list[str] = []
        first = True
        try:
            async for event in self.llm.stream(request):
                if isinstance(event, TextDelta):
                    if first:
                        self.metrics.first_token.observe(time.monotonic() - started)
                        first = False
                    chunks.append(event.text)
                    pusher.text(chunks)
                elif isinstance(event, ReasoningDelta):
                    reasoning.append(event.text)
                    if show_reasoning:
                        # Redacted before it is cut short, which could split a secret.
                        shown = self.config.redactor.visible("".join(reasoning))
                        pusher.status(_reasoning_status(shown))
                elif isinstance(event, Fallback) and event.notice:
                    notes.append(event.notice)
                elif isinstance(event, Completed):
                    self._count_usage(event.usage)
                    return "".join(chunks), event
        except StreamInterrupted as exc:
            raise StreamInterrupted("".join(chunks)) from exc
        raise StreamInterrupted("".join(chunks))

    def _count_usage(self, usage: Usage) -> None:
        for kind, count in usage.by_kind().items():
            if count:
                self.metrics.tokens.labels(kind).inc(count)

    # -- shutdown -------------------------------------------------------------

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    async def drain(self, grace: float) -> None:
        """Wait up to `grace` seconds for work in flight, then cancel the rest.

        A cancelled answer tells its user it was cut short, so no "thinking" status or
        placeholder is left behind.
        """
        pending = set(self._tasks)
        if not pending:
            return
        log.info("waiting up to %.0fs for %d answers in flight", grace, len(pending))
        _, still = await asyncio.wait(pending, timeout=grace)
        for task in still:
            task.cancel()
        if still:
            log.warning("cancelled %d answers still running after the grace period", len(still))
            await asyncio.wait(still, timeout=5)


def _reasoning_status(reasoning: str) -> str:
    """The latest line of the model's reasoning, short enough for a status line."""
    lines = [line.strip() for line in reasoning.strip().splitlines() if line.strip()]
    latest = lines[-1] if lines else ""
    return f"Thinking… {latest[:120]}" if latest else "Thinking…"
