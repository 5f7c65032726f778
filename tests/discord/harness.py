"""Running the real Parley service with the real discord.py client against fakes.

`discord_bot()` starts a fake Discord (one guild with #general, people Alice and Bob,
another bot, a DM with Alice), the fake chat-completions server and `bot.service.serve.Service`
(engine, HTTP server and Discord platform, as `parley serve` runs them) on loopback,
and waits until the gateway is ready. Tests check `assert_no_pings()` at the end.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from pydantic import SecretStr

from adapters.discord.platform import DiscordPlatform
from bot.service.serve import Service
from bot.settings import Settings
from tests.fakes.discord_api import FakeDiscord, Json
from tests.fakes.llm_server import FakeLLM, RecordedRequest

NO_PINGS: Json = {"parse": []}


def conversation(request: RecordedRequest) -> list[tuple[str, Any]]:
    """(role, content) of each message the model got, after the system prompt."""
    return [(m["role"], m["content"]) for m in request.body["messages"][1:]]


@dataclass
class DiscordBot:
    discord: FakeDiscord
    llm: FakeLLM
    service: Service
    platform: DiscordPlatform
    guild: str
    general: str
    alice: Json
    bob: Json
    other_bot: Json
    dm: str

    def sent_messages(self) -> list[Json]:
        """The message bodies of every REST call that sends or edits message content."""
        bodies = [c.body for c in self.discord.calls if isinstance(c.body, dict)]
        bodies += [b["data"] for b in bodies if isinstance(b.get("data"), dict)]
        return [b for b in bodies if "content" in b]

    def assert_no_pings(self) -> None:
        sent = self.sent_messages()
        assert sent, "the bot sent nothing"
        for body in sent:
            assert body.get("allowed_mentions") == NO_PINGS, body

    async def ask(self, text: str, **fields: Any) -> str:
        """Alice mentions the bot in #general; the id of the thread the answer goes to."""
        question = await self.discord.mention_bot(self.general, self.alice, text, **fields)
        return str(question["id"])  # a thread started on a message shares its id

    async def start_thread(self, text: str) -> str:
        """`ask`, and wait for the answer."""
        thread_id = await self.ask(text)
        await self.answered(thread_id)
        return thread_id

    async def answered(self, channel_id: str, count: int = 1, *, text: str = "") -> list[Json]:
        """The bot's messages in a channel once `count` are done (not loading) and hold `text`."""

        def ready() -> bool:
            done = [
                m
                for m in self.discord.bot_messages(channel_id)
                if m["content"] and not int(m.get("flags") or 0) & 128
            ]
            return len(done) >= count and text in "".join(m["content"] for m in done)

        await self.discord.wait_until(ready)
        return self.discord.bot_messages(channel_id)

    async def settle(self) -> None:
        """Let in-flight handlers run until nothing more reaches the fakes."""
        seen = -1
        while seen != len(self.discord.calls) + len(self.llm.requests):
            seen = len(self.discord.calls) + len(self.llm.requests)
            await asyncio.sleep(0.2)


def world(fake: FakeDiscord) -> dict[str, Any]:
    guild = fake.add_guild()
    alice = fake.add_user("Alice")
    return {
        "guild": guild,
        "general": fake.add_text_channel(guild, "general"),
        "alice": alice,
        "bob": fake.add_user("Bob"),
        "other_bot": fake.add_user("Otherbot", bot=True),
        "dm": fake.add_dm(alice),
    }


Configure = Callable[[FakeDiscord, dict[str, Any]], dict[str, Any]]


@asynccontextmanager
async def discord_bot(
    redis_url: str, configure: Configure | None = None
) -> AsyncIterator[DiscordBot]:
    """The bot against fakes; `configure(fake, world)` may add to the world before the
    gateway connects, and returns settings to override."""
    fake = FakeDiscord()
    people = world(fake)
    await fake.start()
    overrides = configure(fake, people) if configure else {}
    try:
        async with FakeLLM() as llm:
            values: dict[str, Any] = {
                "evolink_base_url": llm.base_url,
                "evolink_fallback_base_url": llm.base_url,
                "evolink_api_key": SecretStr(llm.api_key or ""),
                "evolink_max_retries": 0,
                "bot_tools": False,
                "redis_url": redis_url,
                "discord_bot_token": SecretStr(fake.token),
                "discord_api_url": fake.api_url,
                "discord_guild_ready_timeout": 0.05,
            }
            settings = Settings(_env_file=None, **{**values, **overrides})  # type: ignore[call-arg]
            service = Service(settings)
            await service.start(host="127.0.0.1", port=0)
            try:
                [platform] = [p for p in service.platforms if isinstance(p, DiscordPlatform)]
                await fake.wait_until(platform.ready)
                yield DiscordBot(fake, llm, service, platform, **people)
            finally:
                await service.shutdown()
    finally:
        await fake.close()
