"""Pointing discord.py at the configured REST base and gateway.

discord.py keeps both as class attributes (`Route.BASE` for REST, webhooks included;
`DiscordWebSocket.DEFAULT_GATEWAY` for every gateway connect that is not a resume), so
they are process-wide: one Discord client per process, as `parley serve` runs it.
`Endpoints.restore()` puts the previous values back when the client closes.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

import yarl
from discord.gateway import DiscordWebSocket
from discord.http import Route

# Where Discord serves attachments; the API host is added for REST proxies and fakes.
CDN_HOSTS = frozenset({"cdn.discordapp.com", "media.discordapp.net"})


@dataclass(frozen=True)
class Endpoints:
    api_base: str
    gateway: yarl.URL

    @classmethod
    def current(cls) -> Endpoints:
        return cls(Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY)

    def apply(self) -> None:
        Route.BASE = self.api_base
        DiscordWebSocket.DEFAULT_GATEWAY = self.gateway


def set_api_base(api_url: str) -> Endpoints:
    """Send REST calls to `api_url`; returns the endpoints in force before."""
    before = Endpoints.current()
    Route.BASE = api_url.rstrip("/")
    return before


def set_gateway(url: str) -> None:
    DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(url)


def download_hosts(api_url: str) -> frozenset[str]:
    """Hosts attachments may be fetched from: Discord's CDN and the configured API host."""
    host = urlsplit(api_url).hostname
    return CDN_HOSTS | {host} if host else CDN_HOSTS
