"""`parley serve`: the engine, the HTTP server and every configured platform, together.

Shutdown on SIGTERM or SIGINT is graceful: platforms stop taking new events, answers in
flight get up to `BOT_SHUTDOWN_GRACE` seconds to finish, and only then do connections
close. Anything still running after the grace period tells its user it was cut short.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

from aiohttp import web

from bot.admin import mount_admin
from bot.engine import Engine, EngineConfig
from bot.intake import build_intake
from bot.llm.client import ChatClient
from bot.metrics import Metrics
from bot.service import collector
from bot.service.http import create_app
from bot.service.platform import Platform, configured_platforms
from bot.settings import DEFAULT_BASE_URL, Settings
from bot.store import ConversationStore
from bot.tools import ToolBox
from bot.usage import Governance

log = logging.getLogger(__name__)

NO_PLATFORM = """\
parley serve: no chat platform is configured, so there is nothing to serve.

Set one of:
  Slack (HTTP mode):    SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET
  Slack (Socket Mode):  SLACK_BOT_TOKEN and SLACK_APP_TOKEN
  Discord:              DISCORD_BOT_TOKEN

To talk to the model from this terminal instead, run: parley chat
"""

NO_API_KEY = """\
{command}: EVOLINK_API_KEY is not set.

Set EVOLINK_API_KEY to your Evolink key, or point EVOLINK_BASE_URL at another
OpenAI-compatible server that needs no key.
"""


def config_problem(settings: Settings, command: str) -> str | None:
    """What keeps `command` from starting, as a message for the operator, or None."""
    if settings.evolink_api_key is None and settings.evolink_base_url == DEFAULT_BASE_URL:
        return NO_API_KEY.format(command=command)
    return None


def build_engine(settings: Settings, metrics: Metrics) -> Engine:
    store = ConversationStore.from_settings(settings)
    return Engine(
        store=store,
        llm=ChatClient.from_settings(
            settings,
            on_retry=lambda reason: metrics.retries.labels(reason).inc(),
            on_fallback=lambda kind: metrics.fallbacks.labels(kind).inc(),
        ),
        config=EngineConfig.from_settings(settings),
        metrics=metrics,
        governance=Governance.from_settings(settings, store.redis, metrics),
        toolbox=ToolBox.from_settings(settings),
    )


class Service:
    """Everything `parley serve` runs, startable in-process (the tests do)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.engine = build_engine(settings, self.metrics)
        self.intake = build_intake(self.engine)
        self.platforms: list[Platform] = [
            entry.build(settings, self.intake) for entry in configured_platforms(settings)
        ]
        self.app = create_app(
            store=self.engine.store, metrics=self.metrics, platforms=self.platforms
        )
        for platform in self.platforms:
            platform.mount(self.app)
        mount_admin(
            self.app,
            settings.admin_token,
            self.engine.governance,
            self.engine.store.redis,
            self.metrics,
        )
        self._runner: web.AppRunner | None = None
        self.port = settings.port

    async def start(self, *, host: str = "0.0.0.0", port: int | None = None) -> None:
        """Listen on `port` (the PORT setting by default; 0 picks a free one)."""
        self._runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=5)
        await self._runner.setup()
        # A burst of ~400 simultaneous connections overflows the default backlog of 128.
        site = web.TCPSite(
            self._runner, host, self.settings.port if port is None else port, backlog=1024
        )
        await site.start()
        self.port = self._runner.addresses[0][1]
        self.engine.toolbox.start()  # MCP servers connect in the background
        for platform in self.platforms:
            await platform.start()
        log.info(
            "parley serving on %s:%d (%s)",
            host,
            self.port,
            ", ".join(p.name for p in self.platforms) or "no platforms",
        )

    async def shutdown(self) -> None:
        self.intake.close()
        for platform in self.platforms:
            await platform.stop_intake()
        await self.engine.drain(self.settings.bot_shutdown_grace)
        for platform in self.platforms:
            await platform.close()
        if self._runner is not None:
            await self._runner.cleanup()
        await self.engine.llm.aclose()
        await self.engine.toolbox.aclose()
        await self.engine.store.aclose()


def run(settings: Settings) -> int:
    """`serve` on its own event loop: uvloop's where it is installed (every platform but
    Windows), which spends about 0.2 ms less CPU on a turn than asyncio's own loop
    (`python -m bench.slack`: the loop's callbacks and socket reads were a quarter of
    the process's CPU in a burst)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(serve(settings))
    return uvloop.run(serve(settings))


async def serve(settings: Settings) -> int:
    """Run until SIGTERM or SIGINT; the process exit status."""
    if not configured_platforms(settings):
        sys.stderr.write(NO_PLATFORM)
        return 2
    problem = config_problem(settings, "parley serve")
    if problem:
        sys.stderr.write(problem)
        return 2
    service = Service(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await service.start()
    collector.settle()
    await stop.wait()
    log.info("shutting down: finishing answers in flight")
    await service.shutdown()
    return 0
