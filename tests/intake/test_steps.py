"""Each intake step, and the error hook, through `Intake.submit` with a fake platform."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace

import pytest
from pydantic import SecretStr

from bot.conversation import ConversationKey, IncomingMessage, Role, Turn
from bot.engine import RESTART_TEXT, Engine, EngineConfig
from bot.errors import ParleyError, UserInputError
from bot.intake import Envelope, Intake, build_intake
from bot.intake.steps import RESET_DONE, STEPS
from bot.llm.client import ChatClient
from bot.settings import Settings
from bot.store import ConversationStore
from tests.fakes.llm_server import FakeLLM
from tests.test_engine import RecordingSink

KEY = ConversationKey("test", "T1", "C1", "thread-1")
MENTION = Envelope(platform="test", event_id="Ev1", key=KEY, author_id="U1", is_mention=True)
REPLY = Envelope(platform="test", event_id="Ev2", key=KEY, author_id="U1", in_thread=True)


@dataclass
class FakeSource:
    """A platform that reads `text` and records every sink it hands out."""

    text: str = "hi"
    holds: bool = False
    fail_with: BaseException | None = None
    sinks: list[RecordingSink] = field(default_factory=list)
    seeded: int = 0
    private: list[str] = field(default_factory=list)

    async def read(self, env: Envelope) -> IncomingMessage:
        if self.fail_with is not None:
            raise self.fail_with
        return IncomingMessage(key=env.key, text=self.text, author="ana", seed=self._seed)

    async def _seed(self) -> list[Turn]:
        self.seeded += 1
        return [Turn.text(Role.USER, "from the platform", "bob")]

    def reply(self, env: Envelope) -> RecordingSink:
        self.sinks.append(RecordingSink())
        return self.sinks[-1]

    async def tell_privately(self, env: Envelope, text: str) -> None:
        self.private.append(text)

    async def holds_thread(self, env: Envelope) -> bool:
        return self.holds

    @property
    def told(self) -> list[str]:
        """What the person read: each answer or failure, in order."""
        return [
            s.failure if s.failure is not None else s.final.text
            for s in self.sinks
            if s.failure is not None or s.final is not None
        ]


@pytest.fixture
def intake(engine: Engine) -> Intake:
    return build_intake(engine)


def stopped(intake: Intake, reason: str) -> float:
    value = intake.engine.metrics.registry.get_sample_value(
        "parley_intake_stopped_total", {"reason": reason}
    )
    return value or 0.0


async def test_a_mention_is_answered(intake: Intake, fake_llm: FakeLLM) -> None:
    source = FakeSource()
    await intake.submit(MENTION, source)
    assert source.told == ["You said: ana: hi"]


@pytest.mark.parametrize(
    ("env", "reason"),
    [
        (replace(MENTION, is_self=True), "self"),
        (replace(MENTION, is_bot=True), "bot"),
        (replace(MENTION, housekeeping=True), "housekeeping"),
        (replace(MENTION, is_mention=False), "not_addressed"),
        (REPLY, "not_addressed"),  # a thread the bot doesn't hold
    ],
)
async def test_messages_not_for_the_bot_stop_with_their_reason(
    intake: Intake, fake_llm: FakeLLM, env: Envelope, reason: str
) -> None:
    source = FakeSource()
    await intake.submit(env, source)
    assert source.sinks == [] and fake_llm.requests == []
    assert stopped(intake, reason) == 1


async def test_while_draining_nothing_is_taken(intake: Intake, fake_llm: FakeLLM) -> None:
    intake.close()
    source = FakeSource()
    await intake.submit(MENTION, source)
    assert source.sinks == [] and stopped(intake, "draining") == 1


async def test_same_event_is_answered_once(intake: Intake, fake_llm: FakeLLM) -> None:
    sources = [FakeSource(), FakeSource()]
    await asyncio.gather(*(intake.submit(MENTION, s) for s in sources))
    assert sorted(len(s.sinks) for s in sources) == [0, 1]
    assert sorted(len(s.calls) for src in sources for s in src.sinks) == [2]
    assert len(fake_llm.requests) == 1
    assert stopped(intake, "duplicate") == 1


async def test_a_reply_in_a_held_thread_is_answered_without_a_seed(
    intake: Intake, fake_llm: FakeLLM
) -> None:
    first = FakeSource()
    await intake.submit(MENTION, first)
    assert first.seeded == 1  # the mention brought the thread's earlier messages in
    second = FakeSource(text="again")
    await intake.submit(REPLY, second)
    assert second.told == ["You said: ana: again"] and second.seeded == 0
    assert len(fake_llm.requests[-1].body["messages"]) == 5  # system, bob, ana, answer, ana


@pytest.mark.parametrize("text", ["reset", "Start over.", "  RESET!"])
async def test_reset_in_a_thread_forgets_and_confirms(
    intake: Intake, fake_llm: FakeLLM, text: str
) -> None:
    await intake.submit(MENTION, FakeSource())
    source = FakeSource(text=text)
    await intake.submit(replace(REPLY, text=text), source)
    assert source.told == [RESET_DONE]
    after = FakeSource(text="still there?")
    await intake.submit(replace(REPLY, event_id="Ev3"), after)  # the thread is still held
    assert after.seeded == 0
    assert [m["content"] for m in fake_llm.requests[-1].body["messages"][1:]] == [
        RESET_DONE,
        "ana: still there?",
    ]


async def test_reset_outside_a_thread_is_a_question(intake: Intake, fake_llm: FakeLLM) -> None:
    source = FakeSource(text="reset")
    await intake.submit(replace(MENTION, text="reset"), source)
    assert source.told == ["You said: ana: reset"]


@pytest.mark.parametrize(
    ("error", "told"),
    [
        (UserInputError("That file is odd."), "That file is odd."),
        (RuntimeError("a bug"), ParleyError().user_message),
    ],
)
async def test_the_error_hook_tells_the_person_once(
    intake: Intake, fake_llm: FakeLLM, error: Exception, told: str
) -> None:
    source = FakeSource(fail_with=error)
    await intake.submit(MENTION, source)
    assert source.told == [told]
    assert len(source.sinks) == 1 and source.sinks[0].calls == ["fail"]


async def test_the_error_hook_can_be_overridden(engine: Engine, fake_llm: FakeLLM) -> None:
    seen: list[Exception] = []

    class Reporting(Intake):
        async def on_error(self, exc: Exception, env: Envelope, ctx: object) -> None:
            seen.append(exc)
            await super().on_error(exc, env, ctx)  # type: ignore[arg-type]

    intake = Reporting(engine, STEPS)
    source = FakeSource(fail_with=RuntimeError("a bug"))
    await intake.submit(MENTION, source)
    assert [str(e) for e in seen] == ["a bug"] and len(source.told) == 1


async def test_cancelled_before_the_engine_tells_the_person(
    intake: Intake, fake_llm: FakeLLM
) -> None:
    started = asyncio.Event()

    class Slow(FakeSource):
        async def read(self, env: Envelope) -> IncomingMessage:
            started.set()
            await asyncio.Event().wait()
            raise AssertionError("never read")

    source = Slow()
    task = asyncio.create_task(intake.submit(MENTION, source))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert source.told == [RESTART_TEXT]


@pytest.fixture
async def intake_without_redis(fake_llm: FakeLLM) -> AsyncIterator[Intake]:
    store = ConversationStore.from_settings(Settings(redis_url="redis://127.0.0.1:1/0"))
    llm = ChatClient(api_key=SecretStr(fake_llm.api_key or ""), base_url=fake_llm.base_url)
    try:
        yield build_intake(Engine(store=store, llm=llm, config=EngineConfig()))
    finally:
        await llm.aclose()
        await store.aclose()


async def test_redis_down_one_notice_for_a_message_and_its_twin(
    intake_without_redis: Intake,
) -> None:
    sources = [FakeSource(), FakeSource()]
    await asyncio.gather(*(intake_without_redis.submit(MENTION, s) for s in sources))
    told = [t for s in sources for t in s.told]
    assert len(told) == 1 and "temporarily unavailable" in told[0]


@pytest.mark.parametrize("holds", [True, False])
async def test_redis_down_a_reply_in_the_bots_thread_gets_the_notice(
    intake_without_redis: Intake, holds: bool
) -> None:
    source = FakeSource(holds=holds)
    await intake_without_redis.submit(REPLY, source)
    assert len(source.told) == (1 if holds else 0)
    assert all("temporarily unavailable" in t for t in source.told)
