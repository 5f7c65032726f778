"""The slash commands: `/chat`, `/reset` and `/model`.

`/chat` acknowledges at once (Discord allows 3 seconds), answers into the deferred
response, and starts a thread on that answer where the conversation continues. Whatever
fails after the acknowledgement, the deferred response is completed with a message.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import discord
from discord import app_commands

from adapters.discord.content import thread_name, to_incoming
from adapters.discord.files import AttachmentFetcher
from adapters.discord.intake import Intake
from adapters.discord.places import (
    dm_key,
    is_thread,
    key_in_thread,
    open_thread,
)
from adapters.discord.seed import thread_seed
from adapters.discord.sink import (
    FAILURES,
    NO_PINGS,
    AnswerSink,
    ChannelOutlet,
    InteractionOutlet,
)
from adapters.discord.types import REPLY_CHANNELS, ReplyChannel
from bot.conversation import SeedLoader
from bot.engine import Engine
from bot.errors import ParleyError
from bot.llm_types import SEED_MODELS

log = logging.getLogger(__name__)

RESTARTING = "I'm restarting right now. Please try again in a minute."
RESET_DONE = "Started a fresh conversation: I've forgotten what we talked about before."
RESET_IN_GUILD = (
    "Each thread is its own conversation here: start a fresh one with /chat or by mentioning me."
)
MODEL_WHERE = "Use /model inside a thread I'm answering in (or in our DM)."
MODEL_CHOICES = [app_commands.Choice(name=model, value=model) for model in SEED_MODELS]


class CommandHandler:
    def __init__(self, engine: Engine, fetcher: AttachmentFetcher, intake: Intake) -> None:
        self._engine = engine
        self._fetcher = fetcher
        self._intake = intake

    async def chat(
        self,
        interaction: discord.Interaction,
        prompt: str,
        image: discord.Attachment | None,
        model: str | None,
    ) -> None:
        if not self._intake.open:
            await _reply(interaction, RESTARTING)
            return
        with self._engine.track():
            try:
                callback = await interaction.response.defer(thinking=True)
                original_id = (callback.message_id if callback else None) or (
                    await interaction.original_response()
                ).id
            except FAILURES as exc:
                log.warning("could not acknowledge /chat %s: %s", interaction.id, exc)
                return
            outlet = InteractionOutlet(interaction, original_id)
            sink = AnswerSink(outlet, first_message=original_id)
            failure = ParleyError().user_message
            try:
                await self._converse(interaction, outlet, sink, prompt, image, model)
            except ParleyError as exc:
                log.warning("/chat %s failed: %s", interaction.id, exc)
                failure = exc.user_message
            except Exception:
                log.exception("/chat %s failed", interaction.id)
            finally:
                if not sink.done:
                    await sink.fail(failure)

    async def _converse(
        self,
        interaction: discord.Interaction,
        outlet: InteractionOutlet,
        sink: AnswerSink,
        prompt: str,
        image: discord.Attachment | None,
        model: str | None,
    ) -> None:
        fetched = await self._fetcher.fetch([image] if image else [])
        channel = _channel(interaction)
        seed: SeedLoader | None = None
        if interaction.guild_id is None:
            key = dm_key(channel.id)
        elif is_thread(channel):
            key = key_in_thread(interaction.guild_id, channel)
            me = interaction.client.user
            if isinstance(channel, discord.Thread) and me is not None:
                seed = thread_seed(channel, outlet.original_id, me)
        else:
            name = thread_name(prompt, f"Chat with {interaction.user.display_name}")
            key, thread = await open_thread(
                channel, interaction.guild_id, outlet.original_id, name, fetched.notes
            )
            if thread is not None:
                outlet.thread = ChannelOutlet(thread)
        incoming = to_incoming(
            key,
            prompt,
            interaction.user,
            fetched,
            seed=seed,
            event_id=f"discord:interaction:{interaction.id}",
            model=model,
        )
        await self._engine.handle(incoming, sink)

    async def reset(self, interaction: discord.Interaction) -> None:
        if interaction.guild_id is not None:
            await _reply(interaction, RESET_IN_GUILD)
            return
        key = dm_key(_channel(interaction).id)
        await self._run(interaction, lambda: self._engine.reset(key), RESET_DONE)

    async def model(self, interaction: discord.Interaction, name: str) -> None:
        channel = _channel(interaction)
        if interaction.guild_id is None:
            key = dm_key(channel.id)
        elif is_thread(channel):
            key = key_in_thread(interaction.guild_id, channel)
        else:
            await _reply(interaction, MODEL_WHERE)
            return
        done = f"This conversation now uses **{name}**."
        await self._run(interaction, lambda: self._engine.set_model(key, name), done)

    async def _run(
        self, interaction: discord.Interaction, action: Callable[[], Awaitable[None]], done: str
    ) -> None:
        """Run a conversation command and tell the person how it went."""
        if not self._intake.open:
            await _reply(interaction, RESTARTING)
            return
        try:
            await action()
        except ParleyError as exc:
            log.warning("command in %s failed: %s", interaction.channel_id, exc)
            await _reply(interaction, exc.user_message)
            return
        await _reply(interaction, done)


def _channel(interaction: discord.Interaction) -> ReplyChannel:
    """The channel the command ran in, as something the bot can post to."""
    channel = interaction.channel
    if isinstance(channel, REPLY_CHANNELS):
        return channel
    return interaction.client.get_partial_messageable(
        interaction.channel_id or 0, guild_id=interaction.guild_id
    )


async def _reply(interaction: discord.Interaction, text: str) -> None:
    """A short answer only the person who ran the command sees."""
    try:
        await interaction.response.send_message(text, ephemeral=True, allowed_mentions=NO_PINGS)
    except FAILURES as exc:
        log.warning("could not answer /%s: %s", interaction.id, exc)


def register(tree: app_commands.CommandTree[discord.Client], handler: CommandHandler) -> None:
    """Add the commands to `tree` (it syncs them to Discord separately)."""

    @tree.command(name="chat", description="Ask Parley; the conversation continues in a thread.")
    @app_commands.describe(
        prompt="Your question or request",
        image="An image for Parley to look at",
        model="The model to answer with",
    )
    @app_commands.choices(model=MODEL_CHOICES)
    @app_commands.allowed_contexts(guilds=True, dms=True, private_channels=False)
    @app_commands.allowed_installs(guilds=True, users=False)
    async def chat(
        interaction: discord.Interaction,
        prompt: app_commands.Range[str, 1, 6000],
        image: discord.Attachment | None = None,
        model: str | None = None,
    ) -> None:
        await handler.chat(interaction, prompt, image, model)

    @tree.command(name="reset", description="Start a fresh conversation in our DM.")
    @app_commands.allowed_contexts(guilds=True, dms=True, private_channels=False)
    @app_commands.allowed_installs(guilds=True, users=False)
    async def reset(interaction: discord.Interaction) -> None:
        await handler.reset(interaction)

    @tree.command(name="model", description="Switch the model for this thread.")
    @app_commands.describe(name="The model to use from now on")
    @app_commands.choices(name=MODEL_CHOICES)
    @app_commands.allowed_contexts(guilds=True, dms=True, private_channels=False)
    @app_commands.allowed_installs(guilds=True, users=False)
    async def model(interaction: discord.Interaction, name: str) -> None:
        await handler.model(interaction, name)
