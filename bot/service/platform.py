"""How `parley serve` runs a platform adapter next to its HTTP server, and finds it.

An adapter mounts its HTTP routes (Slack's `/slack/events`) on the shared aiohttp
application, starts its own connections (Socket Mode, the Discord gateway), reports
readiness for `/readyz`, and on shutdown stops taking new events first; the engine then
lets answers in flight finish.

Platforms register through the `parley.platforms` entry-point group in
`pyproject.toml`: each names a `PlatformEntry`, which says whether the settings
configure it and builds it. The core never imports an adapter by name, and a platform's
library is imported only when that platform is configured.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from importlib import import_module
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Protocol

from aiohttp import web

from bot.settings import Settings

if TYPE_CHECKING:
    from bot.intake import Intake

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "parley.platforms"


class Platform(Protocol):
    name: str

    def mount(self, app: web.Application) -> None:
        """Add HTTP routes; called before the server starts."""

    async def start(self) -> None:
        """Open connections; returns once they are under way (not when they end)."""

    def ready(self) -> bool:
        """Whether the platform connection is up, for `/readyz`."""

    async def stop_intake(self) -> None:
        """Stop accepting new events (graceful shutdown, first step)."""

    async def close(self) -> None:
        """Close connections once answers in flight are done."""


@dataclass(frozen=True, slots=True)
class PlatformEntry:
    """What a platform package exports for its `parley.platforms` entry point.

    `settings` is the settings class holding its environment variables (the shared
    `Settings` for the built-in platforms, whose names are documented in the README);
    `build` may import the platform's library, `is_configured` must not.
    """

    name: str
    settings: type[Settings]
    is_configured: Callable[[Settings], bool]
    build: Callable[[Settings, Intake], Platform]


def lazy_platform(
    name: str, factory: str, is_configured: Callable[[Settings], bool]
) -> PlatformEntry:
    """An entry whose `factory` ("module:Class", called with settings and the intake) is
    imported only when built, so an unconfigured platform's library is never loaded."""
    module, _, attribute = factory.partition(":")

    def build(settings: Settings, intake: Intake) -> Platform:
        platform: Platform = getattr(import_module(module), attribute)(settings, intake)
        return platform

    return PlatformEntry(name, Settings, is_configured, build)


def platform_entries() -> list[PlatformEntry]:
    """Every installed platform, in the order of their names."""
    found: list[PlatformEntry] = []
    for point in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda p: p.name):
        entry = point.load()
        if not isinstance(entry, PlatformEntry):
            log.error("entry point %s is not a PlatformEntry; skipped", point.value)
            continue
        found.append(entry)
    return found


def configured_platforms(settings: Settings) -> list[PlatformEntry]:
    return [entry for entry in platform_entries() if entry.is_configured(settings)]
