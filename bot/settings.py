"""All of Parley's configuration, read from the environment and `.env`.

The environment variable names are the public contract (README, `.env.example`, the
Helm chart): each field's name, upper-cased, is its variable. Nothing else in the code
reads the environment. Secrets are `SecretStr`, so they never show in a repr or a log.

The typed objects at the bottom (`Timeouts`, `RetryPolicy`, `Limits`, ...) are the one
place defaults live; the rest of the code receives them instead of loose numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_BASE_URL = "https://direct.evolink.ai"
DEFAULT_FALLBACK_BASE_URL = "https://api.evolink.ai"
DEFAULT_SLACK_API_URL = "https://slack.com/api/"
DEFAULT_SLACK_FILE_HOSTS = ("files.slack.com",)
DEFAULT_DISCORD_API_URL = "https://discord.com/api/v10"

CommaList = Annotated[list[str], NoDecode]
IntList = Annotated[list[int], NoDecode]


def _split(value: Any) -> Any:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


@dataclass(frozen=True)
class Timeouts:
    """Seconds the chat-completions client waits. None of them caps a streaming answer."""

    connect: float = 10.0
    first_token: float = 120.0  # reasoning models can think for a long time first
    idle: float = 60.0  # nothing new for this long mid-answer: the stream is dead
    write: float = 30.0
    pool: float = 10.0


@dataclass(frozen=True)
class RetryPolicy:
    """How hard the client tries before it gives an error to the user."""

    max_attempts: int = 4
    base_delay: float = 0.5
    max_delay: float = 20.0
    total_budget: float = 60.0  # seconds of sleeping across all retries of one request
    fallback_after: int = 2  # consecutive 5xx/connection failures before the fallback base


@dataclass(frozen=True)
class ConnectionLimits:
    max_connections: int = 500
    max_keepalive: int = 100


@dataclass(frozen=True)
class Limits:
    """What a user may send in one message, and how much history a request carries."""

    max_input_chars: int = 16_000
    max_images: int = 4
    max_image_bytes: int = 10 * 1024 * 1024  # the API's own per-image limit
    max_image_pixels: int = 40_000_000  # decompression-bomb guard
    # Decoded pixels in memory at once across the process (4 bytes each at most);
    # as large as the biggest image allowed, so every image can be decoded alone.
    image_decode_pixels: int = 40_000_000
    max_text_file_bytes: int = 100_000
    max_document_bytes: int = 25 * 1024 * 1024  # a PDF or Office file as downloaded
    max_document_chars: int = 200_000  # text read from one document (~50k tokens)
    max_document_pages: int = 100  # PDF pages, slides or sheets read from one document
    context_budget: int = 100_000  # estimated tokens of history sent per request
    history_turns: int = 400  # newest turns read before trimming to the budget
    history_ttl: int = 7 * 24 * 3600


@dataclass(frozen=True)
class GenerationParams:
    """Sampling parameters from the seeds. Only the ones the operator set are sent."""

    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    max_tokens: int | None = None
    stop: list[str] = field(default_factory=list)
    frequency_penalty: float | None = None
    presence_penalty: float | None = None

    def as_request_fields(self) -> dict[str, Any]:
        fields: dict[str, Any] = {
            name: value
            for name, value in (
                ("temperature", self.temperature),
                ("top_p", self.top_p),
                ("top_k", self.top_k),
                ("max_tokens", self.max_tokens),
                ("frequency_penalty", self.frequency_penalty),
                ("presence_penalty", self.presence_penalty),
            )
            if value is not None
        }
        if self.stop:
            fields["stop"] = self.stop[0] if len(self.stop) == 1 else list(self.stop)
        return fields


class Settings(BaseSettings):
    """Environment-backed settings. See `.env.example` for one line on each."""

    # An empty value (`BOT_TEMPERATURE=` as `.env.example` leaves it) means unset, not "".
    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
        env_ignore_empty=True,
    )

    # The model API
    evolink_api_key: SecretStr | None = None
    evolink_base_url: str = DEFAULT_BASE_URL
    evolink_fallback_base_url: str = DEFAULT_FALLBACK_BASE_URL
    bot_model: str = "gpt-5.5"
    bot_fallback_model: str = "gpt-5.1"
    bot_system_prompt: str = (
        "You are Parley, a helpful assistant in a team chat. Answer clearly and concisely, "
        "using Markdown where it helps."
    )
    bot_tools: bool = True  # offer the built-in tools (function calling) to the model
    bot_show_reasoning: bool = True  # show reasoning models' thinking as progress

    # Tools
    bot_mcp_config: str | None = None  # path of an {"mcpServers": {...}} JSON file
    bot_tool_timeout: float = Field(default=30.0, gt=0)  # seconds per tool call
    bot_max_tool_rounds: int = Field(default=8, ge=1)  # rounds of tool calls per answer
    bot_fetch_allow_private: bool = False  # let fetch_url reach private addresses

    # Generation parameters (sent only when set)
    bot_temperature: float | None = Field(default=None, ge=0, le=2)
    bot_top_p: float | None = Field(default=None, ge=0, le=1)
    bot_top_k: int | None = Field(default=None, ge=1)
    bot_max_tokens: int | None = Field(default=None, ge=1)
    bot_stop: CommaList = Field(default_factory=list, max_length=4)
    bot_frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    bot_presence_penalty: float | None = Field(default=None, ge=-2, le=2)

    # Timeouts and retries for the model API
    evolink_connect_timeout: float = Timeouts.connect
    evolink_first_token_timeout: float = Timeouts.first_token
    evolink_idle_timeout: float = Timeouts.idle
    evolink_max_retries: int = Field(default=RetryPolicy.max_attempts - 1, ge=0)

    # Storage and limits
    # Unset: an embedded in-process store. `cluster`: seed nodes, comma-separated.
    # `sentinel`: the sentinels, comma-separated; REDIS_SENTINEL_MASTER names the master.
    redis_url: str | None = None
    redis_mode: Literal["single", "cluster", "sentinel"] = "single"
    redis_sentinel_master: str = "mymaster"
    bot_history_ttl: int = Field(default=Limits.history_ttl, ge=60)
    bot_context_budget: int = Field(default=Limits.context_budget, ge=1000)
    bot_max_input_chars: int = Field(default=Limits.max_input_chars, ge=1)
    bot_max_images: int = Field(default=Limits.max_images, ge=0)
    bot_max_document_chars: int = Field(default=Limits.max_document_chars, ge=1000)
    bot_max_document_pages: int = Field(default=Limits.max_document_pages, ge=1)
    bot_image_decode_pixels: int = Field(default=Limits.image_decode_pixels, ge=1_000_000)

    # Server
    port: int = Field(default=3000, ge=1, le=65535)
    bot_shutdown_grace: float = Field(default=30.0, ge=0)
    log_level: str = "INFO"
    # Operators' page `GET /admin` (absent while unset); bearer token or login form.
    admin_token: SecretStr | None = None

    # Policy: who may use the bot, persona per place, quotas (a YAML file, re-read on change)
    bot_policy_file: str | None = None

    # Slack
    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_api_url: str = DEFAULT_SLACK_API_URL
    slack_slash_command: str = "/parley"
    # Hosts the bot token may be sent to when downloading `url_private` files.
    slack_file_hosts: CommaList = Field(default_factory=lambda: list(DEFAULT_SLACK_FILE_HOSTS))

    # Discord
    discord_bot_token: SecretStr | None = None
    discord_api_url: str = DEFAULT_DISCORD_API_URL
    discord_gateway_url: str | None = None
    discord_guild_ids: IntList = Field(default_factory=list)
    discord_shard_count: int | None = Field(default=None, ge=1)
    discord_shard_ids: IntList = Field(default_factory=list)
    # Seconds discord.py waits for more GUILD_CREATEs after the last before it is ready.
    discord_guild_ready_timeout: float = Field(default=2.0, ge=0)

    _split_lists = field_validator(
        "bot_stop", "slack_file_hosts", "discord_guild_ids", "discord_shard_ids", mode="before"
    )(_split)

    @field_validator("redis_mode")
    @classmethod
    def _mode_needs_url(cls, mode: str, info: ValidationInfo) -> str:
        if mode != "single" and not info.data.get("redis_url"):
            raise ValueError(f"{mode} needs REDIS_URL: the {mode} nodes, comma-separated")
        return mode

    @property
    def slack_enabled(self) -> bool:
        return self.slack_bot_token is not None and (
            self.slack_signing_secret is not None or self.slack_app_token is not None
        )

    @property
    def discord_enabled(self) -> bool:
        return self.discord_bot_token is not None

    def timeouts(self) -> Timeouts:
        return Timeouts(
            connect=self.evolink_connect_timeout,
            first_token=self.evolink_first_token_timeout,
            idle=self.evolink_idle_timeout,
        )

    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(max_attempts=self.evolink_max_retries + 1)

    def limits(self) -> Limits:
        return Limits(
            max_input_chars=self.bot_max_input_chars,
            max_images=self.bot_max_images,
            max_document_chars=self.bot_max_document_chars,
            max_document_pages=self.bot_max_document_pages,
            image_decode_pixels=self.bot_image_decode_pixels,
            context_budget=self.bot_context_budget,
            history_ttl=self.bot_history_ttl,
        )

    def generation(self) -> GenerationParams:
        return GenerationParams(
            temperature=self.bot_temperature,
            top_p=self.bot_top_p,
            top_k=self.bot_top_k,
            max_tokens=self.bot_max_tokens,
            stop=list(self.bot_stop),
            frequency_penalty=self.bot_frequency_penalty,
            presence_penalty=self.bot_presence_penalty,
        )
