"""Slack as a `Platform` of `parley serve`: HTTP Events API or Socket Mode."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Mapping
from typing import Any

import aiohttp
import httpx
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_sdk.signature import SignatureVerifier

from adapters.slack.app import build_app
from adapters.slack.approval import register_approval
from adapters.slack.authorization import OneAuthTest
from adapters.slack.calls import slack_call
from adapters.slack.client import make_client
from adapters.slack.events import Translator
from adapters.slack.files import FileFetcher
from adapters.slack.gate import AckGate, Malformed, acknowledge_twin, json_body, mention_twin
from adapters.slack.handlers import Handlers
from adapters.slack.users import UserDirectory
from bot.errors import PlatformConfigError
from bot.intake import Intake
from bot.settings import ConnectionLimits, Settings

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"
AUTH_RETRY_MAX = 60.0  # seconds between auth.test attempts while Slack is unreachable
DOWNLOAD_TIMEOUT = httpx.Timeout(60.0, connect=10.0)


class SlackPlatform:
    name = "slack"

    def __init__(self, settings: Settings, intake: Intake) -> None:
        if settings.slack_bot_token is None:
            raise PlatformConfigError("SlackPlatform needs SLACK_BOT_TOKEN")
        limits = intake.engine.limits
        token = settings.slack_bot_token.get_secret_value()
        secret = settings.slack_signing_secret
        app_token = settings.slack_app_token
        self._signing_secret = secret.get_secret_value() if secret is not None else None
        # Only HTTP mode (a signing secret) has the events route that needs it.
        self._verifier = SignatureVerifier(self._signing_secret) if self._signing_secret else None
        self._app_token = app_token.get_secret_value() if app_token is not None else None
        self.client = make_client(token, settings.slack_api_url)
        self.auth = OneAuthTest(self.client)
        self._http = httpx.AsyncClient(timeout=DOWNLOAD_TIMEOUT, follow_redirects=False)
        files = FileFetcher(
            self._http, token=token, allowed_hosts=settings.slack_file_hosts, limits=limits
        )
        translator = Translator(self.client, UserDirectory(self.client), files, limits)
        self._intake = intake
        self.gate = AckGate(intake)
        self.handlers = Handlers(intake, self.client, translator)
        self.app = build_app(
            client=self.client,
            authorize=self.auth,
            signing_secret=self._signing_secret or "",
            slash_command=settings.slack_slash_command,
            gate=self.gate,
            handlers=self.handlers,
        )
        register_approval(self.app, intake.engine)
        self._socket: AsyncSocketModeHandler | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._authenticated = False

    def mount(self, app: web.Application) -> None:
        if self._signing_secret is not None:
            app.router.add_post(EVENTS_PATH, self._on_request)

    async def start(self) -> None:
        limits = ConnectionLimits()
        self.client.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                limit=limits.max_connections, limit_per_host=limits.max_connections
            )
        )
        self._spawn(self._authenticate())
        if self._app_token is not None:
            self._socket = AsyncSocketModeHandler(self.app, self._app_token, web_client=self.client)
            self._spawn(self._socket.connect_async())  # type: ignore[no-untyped-call]

    def ready(self) -> bool:
        if not self._authenticated:
            return False
        if self._socket is None:
            return True
        session = self._socket.client.current_session
        return session is not None and not session.closed

    async def stop_intake(self) -> None:
        self._intake.close()
        if self._socket is not None:
            # Unacknowledged events then go to another connection.
            await self._socket.close_async()  # type: ignore[no-untyped-call]

    async def close(self) -> None:
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        if self._socket is not None and not self._socket.client.closed:
            await self._socket.close_async()  # type: ignore[no-untyped-call]
        await self._http.aclose()
        if self.client.session is not None:
            await self.client.session.close()

    async def _on_request(self, request: web.Request) -> web.Response:
        raw = await request.text()
        try:
            body = json_body(raw, request.content_type)
        except Malformed as problem:
            if not self._signed(raw, request.headers):
                return web.Response(status=401, text="invalid request")
            log.info("refused a signed Slack request: %s", problem)
            return web.Response(status=400, text="malformed request")
        if body is not None and mention_twin(body, self.auth.bot_user_id):
            if not self._signed(raw, request.headers):
                return web.Response(status=401, text="invalid request")
            return await to_aiohttp_response(acknowledge_twin(body))
        bolt_request = await to_bolt_request(request)
        return await to_aiohttp_response(await self.app.async_dispatch(bolt_request))

    def _signed(self, raw_body: str, headers: Mapping[str, str]) -> bool:
        """Whether Slack signed the request, for the answers given before bolt (which
        verifies every request it sees itself)."""
        timestamp = headers.get("X-Slack-Request-Timestamp", "0")
        signature = headers.get("X-Slack-Signature", "")
        return self._verifier is not None and self._verifier.is_valid(
            raw_body, timestamp, signature
        )

    async def _authenticate(self) -> None:
        delay = 1.0
        while True:
            out = await slack_call(self.auth.auth_test)
            if out.ok:
                log.info("Slack: signed in as %s in %s", out.get("user"), out.get("team"))
                self._authenticated = True
                return
            if out.error in ("invalid_auth", "not_authed", "account_inactive", "token_revoked"):
                log.error("Slack refused SLACK_BOT_TOKEN (%s); check the token", out.error)
            await asyncio.sleep(delay)
            delay = min(delay * 2, AUTH_RETRY_MAX)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
