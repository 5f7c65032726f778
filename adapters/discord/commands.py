"""The slash commands: `/chat`, `/usage`, `/reset` and `/model`.

`/chat` acknowledges at once (Discord allows 3 seconds), then goes through the intake
like any message: it answers into the deferred response and starts a thread on that
answer where the conversation continues. The deferred response is always completed.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import discord
from discord import app_commands

from adapters.discord.content import thread_name, to_incoming
from adapters.discord.files import AttachmentFetcher
from adapters.discord.places import PLATFORM, conversation_at, open_thread, policy_place
from adapters.discord.seed import thread_seed
from adapters.discord.sink import (
    FAILURES,
    NO_PINGS,
    AnswerSink,
    ChannelOutlet,
    InteractionOutlet,
)
from adapters.discord.types import REPLY_CHANNELS, ReplyChannel
from bot.conversation import IncomingMessage
from bot.errors import ParleyError
from bot.intake import Envelope, Intake
from bot.intake.commands import USAGE_WORD, governed_command, refusal
from bot.intake.steps import RESET_DONE
from bot.llm.types import SEED_MODELS

log = logging.getLogger(__name__)

RESTARTING = "I'm restarting right now. Please try again in a minute."
RESET_IN_GUILD = (
    "Each thread is its own conversation here: start a fresh one with /chat or by mentioning me."
)
MODEL_WHERE = "Use /model inside a thread I'm answering in (or in our DM)."
MODEL_CHOICES = [app_commands.Choice(name=model, value=model) for model in SEED_MODELS]


@dataclass(slots=True)
class ChatSource:
    """What the intake asks of Discord about one `/chat`."""

    fetcher: AttachmentFetcher
    interaction: discord.Interaction
    channel: ReplyChannel
    outlet: InteractionOutlet
    sink: AnswerSink
    image: discord.Attachment | None
    model: str | None
    opens_thread: bool

    async def read(self, env: Envelope) -> IncomingMessage:
        interaction, channel = self.interaction, self.channel
        fetched = await self.fetcher.fetch([self.image] if self.image else [])
        seed = None
        me = interaction.client.user
        if isinstance(channel, discord.Thread) and me is not None:
            seed = thread_seed(channel, self.outlet.original_id, me)
        if self.opens_thread and interaction.guild_id is not None:
            name = thread_name(env.text, f"Chat with {interaction.user.display_name}")
            _, thread = await open_thread(
                channel, interaction.guild_id, self.outlet.original_id, name, fetched.notes
            )
            if thread is not None:
                self.outlet.thread = ChannelOutlet(thread)
        return to_incoming(
            env.key, env.text, interaction.user, fetched, seed=seed, model=self.model
        )

    def reply(self, env: Envelope) -> AnswerSink:
        return self.sink  # the deferred response: every reply goes into it

    async def tell_privately(self, env: Envelope, text: str) -> None:
        """Replace the public "thinking…" with a note only the person sees."""
        self.sink.done = True
        try:
            await self.interaction.followup.send(text, ephemeral=True, allowed_mentions=NO_PINGS)
            await self.interaction.delete_original_response()
        except FAILURES as exc:
            log.warning("could not refuse /chat %s privately: %s", self.interaction.id, exc)

    async def holds_thread(self, env: Envelope) -> bool:
        return False  # a slash command is addressed to the bot: never asked


class CommandHandler:
    def __init__(self, intake: Intake, fetcher: AttachmentFetcher) -> None:
        self._intake = intake
        self._engine = intake.engine
        self._fetcher = fetcher

    async def chat(
        self,
        interaction: discord.Interaction,
        prompt: str,
        image: discord.Attachment | None,
        model: str | None,
    ) -> None:
        # An interaction must be answered: refused work gets a reply, not the intake's
        # silent stop, so the person isn't left with "the application did not respond".
        if not self._intake.open:
            await _reply(interaction, RESTARTING)
            return
        where = policy_place(_channel(interaction), interaction.guild_id, interaction.user)
        refused = refusal(self._engine, where)
        if refused is not None:  # before the public "thinking…": nobody else sees it
            await _reply(interaction, refused)
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
            channel = _channel(interaction)
            sink = AnswerSink(
                outlet, metrics=self._engine.metrics, first_message=original_id, ask_in=channel
            )
            key, opens_thread = conversation_at(channel, interaction.guild_id, original_id)
            env = Envelope(
                platform=PLATFORM,
                event_id=f"discord:interaction:{interaction.id}",
                key=key,
                author_id=str(interaction.user.id),
                author_name=interaction.user.display_name,
                text=prompt,
                is_command=True,
                is_dm=interaction.guild_id is None,
                reply_to=outlet,
                roles=where.roles,
            )
            source = ChatSource(
                self._fetcher, interaction, channel, outlet, sink, image, model, opens_thread
            )
            await self._intake.submit(env, source)
            if not sink.done:  # stopped by the intake (shutdown began): say so
                await sink.fail(RESTARTING)

    async def usage(self, interaction: discord.Interaction) -> None:
        """The person's own use today and their caps, shown only to them."""
        where = policy_place(_channel(interaction), interaction.guild_id, interaction.user)
        await _reply(interaction, await governed_command(self._engine, where, USAGE_WORD) or "")

    async def reset(self, interaction: discord.Interaction) -> None:
        if interaction.guild_id is not None:
            await _reply(interaction, RESET_IN_GUILD)
            return
        key, _ = conversation_at(_channel(interaction), None, 0)
        await self._run(interaction, lambda: self._engine.reset(key), RESET_DONE)

    async def model(self, interaction: discord.Interaction, name: str) -> None:
        key, opens_thread = conversation_at(_channel(interaction), interaction.guild_id, 0)
        if opens_thread:
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

    @tree.command(name="usage", description="Your own use of Parley today, and your caps.")
    @app_commands.allowed_contexts(guilds=True, dms=True, private_channels=False)
    @app_commands.allowed_installs(guilds=True, users=False)
    async def usage(interaction: discord.Interaction) -> None:
        await handler.usage(interaction)

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
