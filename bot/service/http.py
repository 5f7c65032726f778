"""The HTTP surface of `parley serve`: health, readiness and metrics.

Adapters add their own routes (Slack's `POST /slack/events`) to the same application.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from aiohttp import web

from bot.metrics import CONTENT_TYPE, Metrics
from bot.service.platform import Platform
from bot.store import ConversationStore

READY_TIMEOUT = 2.0


def create_app(
    *, store: ConversationStore, metrics: Metrics, platforms: Sequence[Platform]
) -> web.Application:
    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(_: web.Request) -> web.Response:
        try:
            redis_ok = await asyncio.wait_for(store.ping(), READY_TIMEOUT)
        except TimeoutError:
            redis_ok = False
        checks = {"redis": redis_ok} | {p.name: p.ready() for p in platforms}
        status = 200 if all(checks.values()) else 503
        return web.json_response({"ready": status == 200, "checks": checks}, status=status)

    async def metrics_view(_: web.Request) -> web.Response:
        response = web.Response(body=metrics.render())
        response.headers["Content-Type"] = CONTENT_TYPE
        return response

    app = web.Application(client_max_size=4 * 1024 * 1024)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_view)
    return app
