"""Start-up, command sync, gateway and sharding of the Discord client."""

from __future__ import annotations

from typing import Any
from unittest.mock import Mock

import discord
import pytest
import redis.asyncio as aioredis
from discord.http import Route
from pydantic import SecretStr

from adapters.discord.client import make_client
from bot.service.serve import Service
from bot.settings import Settings
from tests.discord.harness import discord_bot
from tests.fakes.discord_api import FakeDiscord

COMMAND_SYNC = r"/applications/\d+(/guilds/\d+)?/commands"


async def test_commands_sync_once_and_survive_a_gateway_reconnect(
    redis_client: aioredis.Redis, redis_url: str
) -> None:
    async with discord_bot(redis_url) as bot:
        fake = bot.discord
        [sync] = fake.find_calls("PUT", COMMAND_SYNC)
        assert sync.path == f"/applications/{fake.app_id}/commands"  # global
        assert {c["name"] for c in sync.body} == {"chat", "usage", "reset", "model"}
        chat = next(c for c in sync.body if c["name"] == "chat")
        assert [o["name"] for o in chat["options"]] == ["prompt", "image", "model"]
        assert [c["value"] for c in chat["options"][2]["choices"]] == [
            "gpt-5.5",
            "gpt-5.1",
            "gpt-5.1-chat",
            "gpt-5.1-thinking",
        ]
        assert fake.find_calls("GET", "/gateway/bot")  # the gateway URL came from Discord

        await fake.reconnect_all()
        await fake.wait_until(lambda: len(fake.resumes) == 1)
        await bot.answered(await bot.ask("still there?"), text="still there?")
        assert len(fake.find_calls("PUT", COMMAND_SYNC)) == 1
        assert len(fake.identifies) == 1


async def test_commands_sync_to_the_configured_guilds(
    redis_client: aioredis.Redis, redis_url: str
) -> None:
    def configure(fake: FakeDiscord, world: dict[str, Any]) -> dict[str, Any]:
        return {"discord_guild_ids": [int(world["guild"])], "discord_gateway_url": fake.gateway_url}

    async with discord_bot(redis_url, configure) as bot:
        fake = bot.discord
        [sync] = fake.find_calls("PUT", COMMAND_SYNC)
        assert sync.path == f"/applications/{fake.app_id}/guilds/{bot.guild}/commands"
        assert not fake.find_calls("GET", "/gateway/bot")  # DISCORD_GATEWAY_URL was set
        assert Route.BASE == fake.api_url
    assert Route.BASE == "https://discord.com/api/v10"  # put back on close


async def test_a_pod_runs_only_its_own_shards(redis_client: aioredis.Redis, redis_url: str) -> None:
    def configure(fake: FakeDiscord, world: dict[str, Any]) -> dict[str, Any]:
        guild = fake.add_guild("Shard one", shard=(1, 2))
        world["general"] = fake.add_text_channel(guild, "general")
        return {"discord_shard_count": 2, "discord_shard_ids": [1]}

    async with discord_bot(redis_url, configure) as bot:
        fake = bot.discord
        assert [i["shard"] for i in fake.identifies] == [[1, 2]]
        assert not fake.find_calls("PUT", COMMAND_SYNC)  # the shard-0 pod syncs them
        await bot.answered(await bot.ask("sharded hello"), text="sharded hello")


async def test_all_shards_connect_when_no_ids_are_given(
    redis_client: aioredis.Redis, redis_url: str
) -> None:
    def configure(fake: FakeDiscord, world: dict[str, Any]) -> dict[str, Any]:
        return {"discord_shard_count": 2}

    async with discord_bot(redis_url, configure) as bot:
        assert sorted(i["shard"] for i in bot.discord.identifies) == [[0, 2], [1, 2]]
        assert len(bot.discord.find_calls("PUT", COMMAND_SYNC)) == 1
        await bot.discord.user_says(bot.dm, bot.alice, "DMs arrive on shard 0")
        await bot.answered(bot.dm, text="shard 0")


@pytest.mark.parametrize(
    ("environment", "problem"),
    [
        ({"DISCORD_SHARD_IDS": "0,1"}, "needs DISCORD_SHARD_COUNT"),
        ({"DISCORD_SHARD_COUNT": "2", "DISCORD_SHARD_IDS": "1,2"}, "below DISCORD_SHARD_COUNT"),
    ],
)
def test_shard_settings_are_checked(
    monkeypatch: pytest.MonkeyPatch, environment: dict[str, str], problem: str
) -> None:
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    settings = Settings(_env_file=None, discord_bot_token=SecretStr("t"))  # type: ignore[call-arg]
    with pytest.raises(ValueError, match=problem):
        make_client(settings, hooks=Mock())


async def test_a_wrong_token_fails_start_up_cleanly(
    redis_client: aioredis.Redis, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    fake = FakeDiscord()
    await fake.start()
    try:
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            evolink_base_url="http://127.0.0.1:9",
            redis_url=redis_url,
            discord_bot_token=SecretStr("not-the-token"),
            discord_api_url=fake.api_url,
        )
        service = Service(settings)
        with pytest.raises(discord.LoginFailure):
            await service.start(host="127.0.0.1", port=0)
        await service.shutdown()
    finally:
        await fake.close()
    assert "DISCORD_BOT_TOKEN" in caplog.text
    assert [c.path for c in fake.calls] == ["/users/@me"]
    assert Route.BASE == "https://discord.com/api/v10"
