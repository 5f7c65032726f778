"""The policy file's schema (`BOT_POLICY_FILE`), exactly as issue 10 names its fields.

Every layer is optional and every field of a layer is optional: a field left out (None)
lets an earlier layer's value through. Unknown fields are errors, so a typo such as
`alow: false` is reported with its line instead of silently allowing everyone.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

# "<platform>:<id>", e.g. "slack:C0123" or "discord:1234".
PlaceKey = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_-]*:\S+$", max_length=200)]
ModelName = Annotated[str, StringConstraints(min_length=1, max_length=200)]
ToolPattern = Annotated[str, StringConstraints(min_length=1, max_length=200)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Quota(_Strict):
    """Daily token caps; absent or 0 means no cap."""

    user_tokens_per_day: int | None = Field(default=None, ge=0)
    channel_tokens_per_day: int | None = Field(default=None, ge=0)
    workspace_tokens_per_day: int | None = Field(default=None, ge=0)
    reset_hour_utc: int | None = Field(default=None, ge=0, le=23)
    downgrade_model: ModelName | None = None
    downgrade_at: float | None = Field(default=None, gt=0, le=1)


class Layer(_Strict):
    """What one place (everywhere, a workspace, channel, role or user) decides."""

    allow: bool | None = None
    model: ModelName | None = None
    system_prompt: str | None = Field(default=None, max_length=100_000)
    tools: list[ToolPattern] | None = Field(default=None, max_length=1000)
    approve_tools: list[ToolPattern] | None = Field(default=None, max_length=1000)
    show_reasoning: bool | None = None
    allow_mentions: bool | None = None
    # The generation parameters of the settings, with the same bounds.
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    top_k: int | None = Field(default=None, ge=1)
    max_tokens: int | None = Field(default=None, ge=1)
    stop: list[Annotated[str, StringConstraints(max_length=200)]] | None = Field(
        default=None, max_length=4
    )
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    quota: Quota | None = None


class Price(_Strict):
    """USD per million tokens. `cached` defaults to the prompt price."""

    prompt: float = Field(ge=0)
    completion: float = Field(ge=0)
    cached: float | None = Field(default=None, ge=0)


class PolicyFile(_Strict):
    default: Layer = Field(default_factory=Layer)
    workspaces: dict[PlaceKey, Layer] = Field(default_factory=dict)
    channels: dict[PlaceKey, Layer] = Field(default_factory=dict)
    roles: dict[PlaceKey, Layer] = Field(default_factory=dict)
    users: dict[PlaceKey, Layer] = Field(default_factory=dict)
    admins: list[PlaceKey] = Field(default_factory=list)
    prices: dict[ModelName, Price] = Field(default_factory=dict)
