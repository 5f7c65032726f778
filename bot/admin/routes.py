"""`GET /admin` and its data endpoints on `parley serve`'s HTTP server.

Mounted only when `ADMIN_TOKEN` is set (otherwise the paths don't exist). Everything
behind it needs the token (see `bot.admin.auth`).

    GET  /admin              the page: usage charts, top users/channels/models, quota
                             headroom, answer outcomes and errors, feedback, effective
                             policy lookup
    POST /admin/login        the sign-in form; sets the cookie and goes back to /admin
    GET  /admin/usage.json   ?since=&until=&by=  rows as in `parley usage --json`
    GET  /admin/usage.csv    the same as CSV
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from aiohttp import web
from prometheus_client import Counter
from pydantic import SecretStr

from bot.admin.auth import MAX_TOKEN_CHARS, AdminAuth
from bot.admin.page import Overview, admin_page, error_page, login_page
from bot.errors import StoreUnavailable
from bot.metrics import Metrics
from bot.policy import Place
from bot.store.client import Client
from bot.usage import Governance, read_daily_totals, read_usage
from bot.usage.clock import Clock, days_between, utc_now
from bot.usage.meter import DIMENSIONS, RETENTION_DAYS
from bot.usage.report import UsageRow, as_csv, as_json

DEFAULT_RANGE_DAYS = 14
TOP = 10
HEADROOM_PLACES = 10
MAX_PLACE_CHARS = 200


@dataclass(frozen=True, slots=True)
class AdminSite:
    auth: AdminAuth
    governance: Governance
    redis: Client
    metrics: Metrics
    clock: Clock = utc_now

    def mount(self, app: web.Application) -> None:
        app.router.add_get("/admin", self.page)
        app.router.add_post("/admin/login", self.login)
        app.router.add_get("/admin/usage.json", self.usage_json)
        app.router.add_get("/admin/usage.csv", self.usage_csv)

    # -- handlers --------------------------------------------------------------

    async def page(self, request: web.Request) -> web.Response:
        if not self.auth.allowed(request):
            return _html(login_page(), status=401)
        since, until, problems = self._range(request)
        days = days_between(since, until)
        try:
            overview = Overview(
                since=since.isoformat(),
                until=until.isoformat(),
                daily=await read_daily_totals(self.redis, days),
                top={
                    d: (await read_usage(self.redis, days, d))[:TOP]
                    for d in ("user", "channel", "model")
                },
                headroom=await self._headroom(),
                outcomes=_counts(self.metrics.turns, ("platform", "outcome")),
                errors=_counts(self.metrics.errors, ("type",)),
                feedback=await self.governance.feedback.read(days),
                problems=problems,
            )
        except StoreUnavailable as exc:
            return _html(error_page(exc.user_message), status=503)
        self._lookup(request, overview)
        return _html(admin_page(overview))

    async def login(self, request: web.Request) -> web.Response:
        form = await request.post()
        token = form.get("token")
        if not isinstance(token, str) or not self.auth.token_matches(token[: MAX_TOKEN_CHARS + 1]):
            return _html(login_page("That token is not right."), status=401)
        response = web.HTTPSeeOther("/admin")
        self.auth.set_cookie(request, response)
        raise response

    async def usage_json(self, request: web.Request) -> web.Response:
        rows = await self._rows(request)
        return web.Response(text=as_json(rows), content_type="application/json")

    async def usage_csv(self, request: web.Request) -> web.Response:
        rows = await self._rows(request)
        return web.Response(
            text=as_csv(rows),
            content_type="text/csv",
            headers={"Content-Disposition": 'attachment; filename="parley-usage.csv"'},
        )

    # -- helpers ---------------------------------------------------------------

    async def _rows(self, request: web.Request) -> list[UsageRow]:
        if not self.auth.allowed(request):
            raise web.HTTPUnauthorized(text="ADMIN_TOKEN required (Authorization: Bearer ...)")
        by = request.query.get("by", "user")
        if by not in DIMENSIONS:
            raise web.HTTPBadRequest(text=f"by must be one of {', '.join(DIMENSIONS)}")
        since, until, problems = self._range(request)
        if problems:
            raise web.HTTPBadRequest(text=" ".join(problems))
        return await read_usage(self.redis, days_between(since, until), by)

    def _range(self, request: web.Request) -> tuple[date, date, list[str]]:
        today = self.clock().date()
        problems: list[str] = []

        def day(name: str, default: date) -> date:
            text = request.query.get(name, "")
            if not text:
                return default
            try:
                return date.fromisoformat(text[:10])
            except ValueError:
                problems.append(f"{name} is not a day (YYYY-MM-DD): showing the default.")
                return default

        until = min(day("until", today), today)
        since = day("since", until - timedelta(days=DEFAULT_RANGE_DAYS - 1))
        oldest = until - timedelta(days=RETENTION_DAYS)
        return max(min(since, until), oldest), until, problems

    async def _headroom(self) -> list[tuple[str, str, int, int]]:
        """Today's use against the caps, for the places that used the most today."""
        today = [self.clock().date().isoformat()]
        found: list[tuple[str, str, int, int]] = []
        for scope in ("user", "channel", "workspace"):
            for row in (await read_usage(self.redis, today, scope))[:HEADROOM_PLACES]:
                place = _place(row.key, scope)
                if place is None:
                    continue
                for capped, used, cap in await self.governance.ledger.headroom(place):
                    if capped == scope:
                        found.append((row.key, scope, used, cap))
        return found

    def _lookup(self, request: web.Request, overview: Overview) -> None:
        text = request.query.get("place", "").strip()[:MAX_PLACE_CHARS]
        kind = request.query.get("as", "channel")
        if kind not in ("channel", "user", "workspace"):
            kind = "channel"
        overview.lookup, overview.lookup_as = text, kind
        if not text:
            return
        place = _place(text, kind)
        if place is None:
            overview.problems.append(f'"{text}" is not "platform:id", e.g. slack:C0123.')
            return
        overview.effective = self.governance.policy.effective(place)


def _counts(metric: Counter, labels: tuple[str, ...]) -> list[tuple[tuple[str, ...], float]]:
    """This process's values of a labelled counter, as (label values, count)."""
    return [
        (tuple(sample.labels[name] for name in labels), sample.value)
        for family in metric.collect()
        for sample in family.samples
        if sample.name.endswith("_total")
    ]


def _place(key: str, kind: str) -> Place | None:
    """The place a policy key ("slack:C1") names, as a channel, user or workspace."""
    platform, sep, ident = key.partition(":")
    if not sep or not platform or not ident:
        return None
    if kind == "user":
        return Place(platform, user=ident, is_dm=True)
    if kind == "workspace":
        return Place(platform, workspace=ident)
    return Place(platform, channel=ident)


def _html(text: str, *, status: int = 200) -> web.Response:
    return web.Response(
        text=text,
        status=status,
        content_type="text/html",
        headers={
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
            "img-src 'self' data:; form-action 'self'; frame-ancestors 'none'",
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "no-store",
        },
    )


def mount_admin(
    app: web.Application,
    token: SecretStr | None,
    governance: Governance | None,
    redis: Client,
    metrics: Metrics,
) -> None:
    """Add the admin routes to `app` when `ADMIN_TOKEN` is set; otherwise nothing.

    An empty token (`ADMIN_TOKEN=` in `.env`) counts as unset: it would let anyone in.
    """
    if token is None or not token.get_secret_value() or governance is None:
        return
    AdminSite(AdminAuth(token), governance, redis, metrics).mount(app)
