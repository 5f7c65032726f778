from __future__ import annotations

import pytest

from bot.settings import GenerationParams, Settings


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


def test_tool_settings_have_the_issue_names_and_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    defaults = Settings(_env_file=None)
    assert defaults.bot_tool_timeout == 30.0 and defaults.bot_max_tool_rounds == 8
    assert defaults.bot_mcp_config is None and defaults.bot_fetch_allow_private is False
    monkeypatch.setenv("BOT_MCP_CONFIG", "/etc/parley/mcp.json")
    monkeypatch.setenv("BOT_TOOL_TIMEOUT", "5")
    monkeypatch.setenv("BOT_MAX_TOOL_ROUNDS", "2")
    monkeypatch.setenv("BOT_FETCH_ALLOW_PRIVATE", "true")
    settings = Settings(_env_file=None)
    assert settings.bot_mcp_config == "/etc/parley/mcp.json"
    assert settings.bot_tool_timeout == 5.0 and settings.bot_max_tool_rounds == 2
    assert settings.bot_fetch_allow_private is True
