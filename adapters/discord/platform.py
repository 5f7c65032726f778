"""`DiscordPlatform`: the Discord gateway client next to Parley's HTTP server.

`start()` points discord.py at the configured REST base and gateway, logs in (which
syncs the slash commands, once) and runs the gateway connection in the background.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import discord
import httpx
from aiohttp import web

from adapters.discord.approval import register_approval
from adapters.discord.buttons import FeedbackButton
from adapters.discord.client import make_client
from adapters.discord.commands import CommandHandler, register
from adapters.discord.endpoints import Endpoints, download_hosts, set_api_base, set_gateway
from adapters.discord.events import MessageHandler
from adapters.discord.feedback import on_feedback
from adapters.discord.files import AttachmentFetcher
from bot.errors import PlatformConfigError
from bot.intake import Intake
from bot.intake.feedback import Rating
from bot.settings import Settings

log = logging.getLogger(__name__)

DOWNLOAD_TIMEOUT = httpx.Timeout(30.0, connect=10.0)


class DiscordPlatform:
    name = "discord"

    def __init__(self, settings: Settings, intake: Intake) -> None:
        if settings.discord_bot_token is None:
            raise PlatformConfigError("DiscordPlatform needs DISCORD_BOT_TOKEN")
        self._settings = settings
        self._token = settings.discord_bot_token
        self._intake = intake
        self._http = httpx.AsyncClient(timeout=DOWNLOAD_TIMEOUT)
        fetcher = AttachmentFetcher(
            self._http, intake.engine.limits, download_hosts(settings.discord_api_url)
        )
        self._messages = MessageHandler(intake, fetcher)
        self.client = make_client(settings, self)
        register_approval(self.client, intake.engine)
        self.tree: discord.app_commands.CommandTree[discord.Client] = (
            discord.app_commands.CommandTree(self.client)
        )
        register(self.tree, CommandHandler(intake, fetcher))
        self._previous: Endpoints | None = None
        self._gateway: asyncio.Task[None] | None = None

    # -- client hooks ---------------------------------------------------------

    async def on_feedback(self, interaction: discord.Interaction[Any], rating: Rating) -> None:
        await on_feedback(self._intake.engine, interaction, rating)

    async def setup(self) -> None:
        """Sync the slash commands: to DISCORD_GUILD_IDS (instant) or globally.

        With shards spread over several processes, the one running shard 0 syncs.
        """
        # Buttons on answers any replica sent, before or after a restart, work here too.
        self.client.add_dynamic_items(FeedbackButton)
        shard_ids = self._settings.discord_shard_ids
        if shard_ids and 0 not in shard_ids:
            log.info("slash commands are synced by the process running shard 0")
            return
        try:
            if not self._settings.discord_guild_ids:
                synced = await self.tree.sync()
                log.info("synced %d global slash commands", len(synced))
            for guild_id in self._settings.discord_guild_ids:
                guild = discord.Object(guild_id)
                self.tree.copy_global_to(guild=guild)
                synced = await self.tree.sync(guild=guild)
                log.info("synced %d slash commands to guild %s", len(synced), guild_id)
        except discord.HTTPException as exc:
            log.error("could not sync slash commands (mentions still work): %s", exc)

    async def on_message(self, message: discord.Message) -> None:
        me = self.client.user
        if me is not None:
            await self._messages.on_message(message, me)

    # -- Platform -------------------------------------------------------------

    def mount(self, app: web.Application) -> None:
        """Discord needs no HTTP routes: everything comes over the gateway."""

    async def start(self) -> None:
        self._previous = set_api_base(self._settings.discord_api_url)
        try:
            await self.client.login(self._token.get_secret_value())
            gateway = self._settings.discord_gateway_url
            if gateway is None:
                _, gateway, _ = await self.client.http.get_bot_gateway()
        except BaseException as exc:
            if isinstance(exc, discord.LoginFailure):
                log.error("Discord refused DISCORD_BOT_TOKEN: check the bot's token.")
            await self._shut()
            raise
        set_gateway(gateway)
        self._gateway = asyncio.create_task(self._run(), name="discord-gateway")

    async def _run(self) -> None:
        try:
            await self.client.connect(reconnect=True)
        except discord.PrivilegedIntentsRequired:
            log.error(
                "Discord refused the connection: enable the Message Content intent for the "
                "bot in the Developer Portal (Bot -> Privileged Gateway Intents)."
            )
        except Exception:
            log.exception("the Discord gateway connection ended")

    def ready(self) -> bool:
        running = self._gateway is not None and not self._gateway.done()
        return running and self.client.is_ready() and not self.client.is_closed()

    async def stop_intake(self) -> None:
        self._intake.close()

    async def close(self) -> None:
        await self._shut()

    async def _shut(self) -> None:
        await self.client.close()
        if self._gateway is not None:
            await self._gateway
        await self._http.aclose()
        if self._previous is not None:
            self._previous.apply()
