"""The intake's policy step with a fake platform: refusals told once, places, Redis trouble."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from bot.conversation import ConversationKey
from bot.engine import Engine
from bot.errors import StoreUnavailable
from bot.intake import Envelope, Intake, build_intake
from bot.intake.policy import place_of
from bot.policy import Place, PolicySource
from bot.policy.resolve import Base
from bot.usage import Governance
from tests.fakes.llm_server import FakeLLM
from tests.intake.test_steps import KEY, MENTION, FakeSource, stopped

POLICY = 'default: {allow: false}\nusers:\n  "test:U2": {allow: true}\n'


@pytest.fixture
def governed(engine: Engine, tmp_path: Path) -> Intake:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY)
    source = PolicySource(path, Base())
    source.load()
    engine.governance = Governance.build(source, engine.store.redis, engine.metrics)
    return build_intake(engine)


class RedisDown:
    async def first(self, place: Place) -> bool:
        raise StoreUnavailable("Redis denial notice failed")


async def test_a_refused_person_is_told_once_and_the_model_never_asked(
    governed: Intake, fake_llm: FakeLLM
) -> None:
    source = FakeSource()
    await governed.submit(MENTION, source)
    await governed.submit(replace(MENTION, event_id="Ev9"), source)
    assert len(source.private) == 1 and "isn't available here" in source.private[0]
    assert source.told == [] and fake_llm.requests == []
    assert stopped(governed, "policy_denied") == 2

    allowed = FakeSource()
    await governed.submit(replace(MENTION, event_id="Ev10", author_id="U2"), allowed)
    assert allowed.told == ["You said: ana: hi"]


async def test_a_command_is_always_answered_and_redis_trouble_still_tells(
    governed: Intake,
) -> None:
    source = FakeSource()
    command = replace(MENTION, is_mention=False, is_command=True)
    await governed.submit(command, source)
    await governed.submit(replace(command, event_id="Ev11"), source)
    assert len(source.private) == 2

    governance = governed.engine.governance
    assert governance is not None
    governed.engine.governance = replace(governance, notices=RedisDown())  # type: ignore[arg-type]
    await governed.submit(replace(MENTION, event_id="Ev12", author_id="U3"), source)
    assert len(source.private) == 3  # better told twice than left wondering


def test_the_place_of_a_message() -> None:
    thread = Envelope(
        platform="discord",
        event_id="e",
        key=ConversationKey("discord", "G1", "C1", "T1"),
        author_id="U1",
        roles=("R1",),
    )
    assert place_of(thread) == Place("discord", "G1", "C1", "U1", ("R1",))
    dm = replace(thread, key=ConversationKey("discord", "dm", "D1", "D1"), is_dm=True)
    assert place_of(dm) == Place("discord", "", "D1", "U1", ("R1",), is_dm=True)
    assert place_of(replace(thread, key=KEY)).workspace == "T1"
