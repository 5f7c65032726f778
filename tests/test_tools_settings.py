from __future__ import annotations

import pytest

from bot.llm_types import ToolCall
from bot.settings import GenerationParams, Settings
from bot.tools import ToolBox


def test_calculate_is_exact_and_safe() -> None:
    box = ToolBox()
    assert box.run(ToolCall("1", "calculate", '{"expression": "(17*23)/4"}')) == "97.75"
    assert box.run(ToolCall("1", "calculate", '{"expression": "2**10"}')) == "1024"
    refused = box.run(ToolCall("1", "calculate", '{"expression": "__import__(\\"os\\")"}'))
    assert refused.startswith("Could not evaluate")


def test_current_time_and_bad_input_are_answered_not_raised() -> None:
    box = ToolBox()
    assert box.run(ToolCall("1", "current_time", '{"timezone": "Asia/Tokyo"}')).endswith("+09:00")
    assert "Unknown time zone" in box.run(ToolCall("1", "current_time", '{"timezone": "Mars"}'))
    assert "no tool named" in box.run(ToolCall("1", "rm_rf", "{}"))
    assert "not valid JSON" in box.run(ToolCall("1", "calculate", "{oops"))
    assert {spec["function"]["name"] for spec in box.specs()} == {"current_time", "calculate"}


def test_generation_params_are_sent_only_when_set() -> None:
    assert GenerationParams().as_request_fields() == {}
    params = GenerationParams(temperature=0.2, top_k=40, stop=["END"])
    assert params.as_request_fields() == {"temperature": 0.2, "top_k": 40, "stop": "END"}
    assert GenerationParams(stop=["a", "b"]).as_request_fields() == {"stop": ["a", "b"]}


def test_settings_read_the_public_environment_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVOLINK_API_KEY", "sk-secret")
    monkeypatch.setenv("BOT_MODEL", "gpt-5.1-thinking")
    monkeypatch.setenv("BOT_STOP", "END, STOP")
    monkeypatch.setenv("DISCORD_SHARD_IDS", "2,3")
    monkeypatch.setenv("BOT_CONTEXT_BUDGET", "5000")
    settings = Settings(_env_file=None)
    assert settings.bot_model == "gpt-5.1-thinking"
    assert settings.bot_stop == ["END", "STOP"]
    assert settings.discord_shard_ids == [2, 3]
    assert settings.limits().context_budget == 5000
    assert "sk-secret" not in repr(settings)
    assert settings.evolink_base_url == "https://direct.evolink.ai"
    assert settings.evolink_fallback_base_url == "https://api.evolink.ai"
    assert settings.bot_fallback_model == "gpt-5.1" and settings.port == 3000
