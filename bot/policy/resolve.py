"""Which layers of the policy apply to a place, and what they add up to.

Layers apply in this order, later ones winning field by field (a field a layer leaves
out lets the earlier value through; `quota` is merged field by field too):

    default → workspaces["<platform>:<workspace>"] → channels["<platform>:<channel>"]
            → roles["<platform>:<role>"] (in the file's order) → users["<platform>:<user>"]

A DM has no channel or role layer. A thread is its channel's place: callers pass the
channel (for a Discord thread, its parent channel) as `Place.channel`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

from bot.policy.model import Layer, PolicyFile, Price, Quota
from bot.settings import GenerationParams, Settings

ALL_TOOLS = "*"
DEFAULT_DOWNGRADE_AT = 0.8
_GENERATION_FIELDS = tuple(GenerationParams.__dataclass_fields__)
_CACHE_SIZE = 4096


@dataclass(frozen=True, slots=True)
class Place:
    """Where a message was written and by whom; ids as the platform gives them.

    `channel` is the channel a thread belongs to (for a Discord thread, its parent), so a
    thread gets its channel's layer. `workspace` is "" where there is none (a Discord DM):
    no workspace layer and no workspace cap apply then.
    """

    platform: str
    workspace: str = ""
    channel: str = ""
    user: str = ""
    roles: tuple[str, ...] = ()
    is_dm: bool = False

    def scoped(self, kind: str) -> str:
        """`"<platform>:<id>"` of the user, channel or workspace: the policy's key."""
        value = {"user": self.user, "channel": self.channel, "workspace": self.workspace}[kind]
        return f"{self.platform}:{value}"


@dataclass(frozen=True, slots=True)
class ToolFilter:
    """The tools the model may call: names or shell patterns (`"github.*"`); `*` is all."""

    patterns: tuple[str, ...] = (ALL_TOOLS,)

    def allows(self, name: str) -> bool:
        return any(fnmatchcase(name, pattern) for pattern in self.patterns)

    @property
    def none(self) -> bool:
        return not self.patterns


@dataclass(frozen=True, slots=True)
class QuotaRule:
    """The caps that apply at a place (0 = no cap) and what happens near them."""

    user: int = 0
    channel: int = 0
    workspace: int = 0
    reset_hour_utc: int = 0
    downgrade_model: str | None = None
    downgrade_at: float = DEFAULT_DOWNGRADE_AT

    @property
    def capped(self) -> bool:
        return bool(self.user or self.channel or self.workspace)


@dataclass(frozen=True, slots=True)
class Persona:
    """What a request to the model carries at a place.

    `name` says where the system prompt comes from ("channels:slack:C1", "default", or
    "settings"): the persona that feedback and reports are grouped by.
    """

    name: str
    model: str
    system_prompt: str
    generation: GenerationParams
    tools: ToolFilter
    approve_tools: ToolFilter
    show_reasoning: bool
    allow_mentions: bool


@dataclass(frozen=True, slots=True)
class Decision:
    """Whether a place may use the bot; `reason` is the layer that said no."""

    allowed: bool
    reason: str | None = None  # "default", "workspace", "channel", "role" or "user"


@dataclass(frozen=True, slots=True)
class Effective:
    decision: Decision
    persona: Persona
    quota: QuotaRule
    layers: tuple[str, ...]  # which layers applied, e.g. ("default", "channels:slack:C1")


@dataclass(frozen=True, slots=True)
class Base:
    """What applies where the policy says nothing: the settings' persona."""

    model: str = "gpt-5.5"
    system_prompt: str = ""
    generation: GenerationParams = field(default_factory=GenerationParams)
    tools: bool = True
    show_reasoning: bool = True

    @classmethod
    def from_settings(cls, settings: Settings) -> Base:
        return cls(
            model=settings.bot_model,
            system_prompt=settings.bot_system_prompt,
            generation=settings.generation(),
            tools=settings.bot_tools,
            show_reasoning=settings.bot_show_reasoning,
        )

    def persona(self, name: str = "settings", merged: Mapping[str, Any] | None = None) -> Persona:
        """The persona: the layers' `merged` fields over these defaults (none: the
        settings' own persona, as when no policy file is set)."""
        merged = merged or {}
        generation = {
            param: merged.get(param, getattr(self.generation, param))
            for param in _GENERATION_FIELDS
        }
        # BOT_TOOLS off means no tools at all, whatever a layer lists.
        tools = merged.get("tools", [ALL_TOOLS]) if self.tools else []
        return Persona(
            name=name,
            model=merged.get("model", self.model),
            system_prompt=merged.get("system_prompt", self.system_prompt),
            generation=GenerationParams(**generation),
            tools=ToolFilter(tuple(tools)),
            approve_tools=ToolFilter(tuple(merged.get("approve_tools", []))),
            show_reasoning=merged.get("show_reasoning", self.show_reasoning),
            allow_mentions=merged.get("allow_mentions", False),
        )


class Policy:
    """One loaded policy file over the settings' base. Immutable; cheap to query."""

    def __init__(self, file: PolicyFile | None = None, base: Base | None = None) -> None:
        self.file = file or PolicyFile()
        self.base = base or Base()
        self._admins = frozenset(self.file.admins)
        self._cache: dict[Place, Effective] = {}

    @property
    def prices(self) -> dict[str, Price]:
        return self.file.prices

    def is_admin(self, platform: str, user: str) -> bool:
        return f"{platform}:{user}" in self._admins

    def check_access(self, place: Place) -> Decision:
        return self.effective(place).decision

    def persona(self, place: Place) -> Persona:
        return self.effective(place).persona

    def effective(self, place: Place) -> Effective:
        """Everything the policy decides for `place`, all layers applied."""
        found = self._cache.get(place)
        if found is None:
            found = self._resolve(place)
            if len(self._cache) >= _CACHE_SIZE:
                self._cache.clear()
            self._cache[place] = found
        return found

    def _layers(self, place: Place) -> list[tuple[str, str, Layer]]:
        """(reason, label, layer) for each layer that applies, in order."""
        file, p = self.file, place.platform
        found: list[tuple[str, str, Layer]] = [("default", "default", file.default)]

        def add(reason: str, table: dict[str, Layer], section: str, ident: str) -> None:
            key = f"{p}:{ident}"
            layer = table.get(key) if ident else None
            if layer is not None:
                found.append((reason, f"{section}:{key}", layer))

        add("workspace", file.workspaces, "workspaces", place.workspace)
        if not place.is_dm:
            add("channel", file.channels, "channels", place.channel)
            wanted = {f"{p}:{role}" for role in place.roles}
            for key, layer in file.roles.items():
                if key in wanted:
                    found.append(("role", f"roles:{key}", layer))
        add("user", file.users, "users", place.user)
        return found

    def _resolve(self, place: Place) -> Effective:
        layers = self._layers(place)
        merged: dict[str, Any] = {}
        quota: dict[str, Any] = {}
        denied_by: str | None = None
        persona_name = "settings"
        for reason, label, layer in layers:
            if layer.system_prompt is not None:
                persona_name = label
            for name, value in layer:
                if value is None:
                    continue
                if name == "quota":
                    quota.update((k, v) for k, v in value if v is not None)
                    continue
                merged[name] = value
                if name == "allow":
                    denied_by = None if value else reason
        return Effective(
            decision=Decision(allowed=denied_by is None, reason=denied_by),
            persona=self.base.persona(persona_name, merged),
            quota=_quota_rule(Quota(**quota)),
            layers=tuple(label for _, label, _ in layers),
        )

def _quota_rule(quota: Quota) -> QuotaRule:
    return QuotaRule(
        user=quota.user_tokens_per_day or 0,
        channel=quota.channel_tokens_per_day or 0,
        workspace=quota.workspace_tokens_per_day or 0,
        reset_hour_utc=quota.reset_hour_utc or 0,
        downgrade_model=quota.downgrade_model,
        downgrade_at=quota.downgrade_at or DEFAULT_DOWNGRADE_AT,
    )
