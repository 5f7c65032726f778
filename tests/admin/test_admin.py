"""The admin page through aiohttp's test client: its auth, its content, its data endpoints."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr

from bot.admin import mount_admin
from bot.admin.auth import AdminAuth
from bot.admin.routes import AdminSite
from bot.conversation import ConversationKey
from bot.llm.types import Usage
from bot.metrics import Metrics
from bot.policy import Base, Place, PolicySource
from bot.service.serve import Service
from bot.settings import Settings
from bot.usage import Governance

TOKEN = "s3cret-admin-token"
POLICY = """\
default:
  quota: {user_tokens_per_day: 10000}
channels:
  "slack:C1": {model: gpt-5.1, system_prompt: "You are the <support> desk.", tools: [current_time]}
prices:
  gpt-5.5: {prompt: 1.0, completion: 10.0}
"""
NOW = datetime(2026, 11, 30, 15, tzinfo=UTC)


async def build_site(
    redis: aioredis.Redis, tmp_path: Path, metrics: Metrics | None = None
) -> AdminSite:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY)
    source = PolicySource(path, Base())
    source.load()
    metrics = metrics or Metrics()
    governance = Governance.build(source, redis, metrics, clock=lambda: NOW)
    key = ConversationKey("slack", "T1", "C1", "t")
    for day, user, prompt in [(28, "U1", 3000), (30, "U1", 1000), (30, "<script>x</script>", 10)]:
        moment = datetime(2026, 11, day, 9, tzinfo=UTC)
        meter = Governance.build(source, redis, metrics, clock=lambda m=moment: m).meter
        await meter.record(key, user, "gpt-5.5", Usage(prompt_tokens=prompt, completion_tokens=100))
    for user, rating in [("U1", "up"), ("U2", "up"), ("U3", "down")]:
        await governance.feedback.rate(
            answer_id="1700.1",
            place=Place("slack", "T1", "C1", user),
            model="gpt-5.5",
            persona="channels:slack:C1",
            rating=rating,
            comment="Too <b>long</b>" if rating == "down" else "",
        )
    reservation = await governance.ledger.reserve(Place("slack", "T1", "C1", "U1"), 100)
    await reservation.settle(Usage(prompt_tokens=2500))
    metrics.turns.labels("slack", "answered").inc(3)
    metrics.errors.labels("rate_limit").inc()
    return AdminSite(AdminAuth(SecretStr(TOKEN)), governance, redis, metrics, clock=lambda: NOW)


@pytest.fixture
async def client(redis_client: aioredis.Redis, tmp_path: Path) -> AsyncIterator[TestClient]:
    app = web.Application()
    (await build_site(redis_client, tmp_path)).mount(app)
    async with TestClient(TestServer(app)) as client:
        yield client


BEARER = {"Authorization": f"Bearer {TOKEN}"}


async def test_without_admin_token_there_is_no_admin_route(
    redis_client: aioredis.Redis,
) -> None:
    app = web.Application()
    governance = Governance.build(PolicySource(None, Base()), redis_client, Metrics())
    mount_admin(app, None, governance, redis_client, Metrics())
    mount_admin(app, SecretStr(""), governance, redis_client, Metrics())
    async with TestClient(TestServer(app)) as client:
        assert (await client.get("/admin", headers={"Authorization": "Bearer "})).status == 404
        assert (await client.get("/admin", headers=BEARER)).status == 404
        assert (await client.get("/admin/usage.json", headers=BEARER)).status == 404


@pytest.mark.parametrize("path", ["/admin", "/admin/usage.json", "/admin/usage.csv"])
async def test_every_admin_path_needs_the_token(client: TestClient, path: str) -> None:
    assert (await client.get(path)).status == 401
    assert (await client.get(path, headers={"Authorization": "Bearer wrong"})).status == 401
    assert (await client.get(path, headers={"Authorization": TOKEN})).status == 401
    assert (await client.get(path, cookies={"parley_admin": TOKEN})).status == 401
    assert (await client.get(path, headers=BEARER)).status == 200


async def test_the_login_form_sets_a_cookie_that_is_not_the_token(client: TestClient) -> None:
    page = await client.get("/admin")
    assert page.status == 401 and 'action="/admin/login"' in await page.text()
    wrong = await client.post("/admin/login", data={"token": "nope"}, allow_redirects=False)
    assert wrong.status == 401 and "not right" in await wrong.text()
    right = await client.post("/admin/login", data={"token": TOKEN}, allow_redirects=False)
    assert right.status == 303 and right.headers["Location"] == "/admin"
    cookie = right.cookies["parley_admin"]
    assert TOKEN not in cookie.value
    assert cookie["httponly"] and cookie["samesite"] == "Strict"
    page = await client.get("/admin")  # the client keeps the cookie
    assert page.status == 200 and "Tokens per day" in await page.text()


async def test_the_page_shows_charts_top_lists_headroom_outcomes_and_policy(
    client: TestClient,
) -> None:
    response = await client.get(
        "/admin?since=2026-11-27&until=2026-11-30&place=slack:C1&as=channel", headers=BEARER
    )
    html = await response.text()
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    charts = re.findall(r"<svg class=\"chart\".*?</svg>", html)
    assert len(charts) == 2
    heights = [float(h) for h in re.findall(r'class="bar"[^>]*height="([\d.]+)"', charts[0])]
    assert len(heights) == 4  # one bar per day, 27th to 30th
    assert heights[0] == 0 and heights[1] > heights[3] > 0  # the 28th used the most
    assert "slack:U1" in html and "slack:C1" in html and "gpt-5.5" in html
    assert "&lt;script&gt;" in html and "<script>" not in html
    assert re.search(r"slack:U1 \(user\)</td><td>10,000</td><td>2,500</td><td>7,500", html)
    assert "<td>slack</td><td>answered</td><td>3</td>" in html
    assert "<td>rate_limit</td><td>1</td>" in html
    assert "default → channels:slack:C1" in html
    assert "You are the &lt;support&gt; desk." in html
    assert "<td>tools</td><td>current_time</td>" in html
    assert "<td>gpt-5.5</td><td>2</td><td>1</td>" in html  # feedback by model
    assert "<td>channels:slack:C1</td><td>2</td><td>1</td>" in html  # and by persona
    assert "· down · slack:C1 · gpt-5.5</span><br>Too &lt;b&gt;long&lt;/b&gt;</li>" in html


async def test_bad_input_on_the_page_is_reported_not_fatal(client: TestClient) -> None:
    html = await (await client.get("/admin?since=yesterday&place=nocolon", headers=BEARER)).text()
    assert "since is not a day" in html
    assert "is not &quot;platform:id&quot;" in html


async def test_usage_json_and_csv(client: TestClient) -> None:
    rows = await (
        await client.get("/admin/usage.json?since=2026-11-28&by=model", headers=BEARER)
    ).json()
    assert [(r["key"], r["requests"], r["prompt_tokens"]) for r in rows] == [("gpt-5.5", 3, 4010)]
    response = await client.get(
        "/admin/usage.csv?since=2026-11-30&until=2026-11-30", headers=BEARER
    )
    assert response.content_type == "text/csv"
    table = list(csv.reader(io.StringIO(await response.text())))
    assert table[0][0] == "key" and [r[0] for r in table[1:]] == [
        "slack:U1",
        "slack:<script>x</script>",
    ]
    bad = await client.get("/admin/usage.json?by=planet", headers=BEARER)
    assert bad.status == 400


@pytest.mark.parametrize("token", [TOKEN, None])
async def test_parley_serve_mounts_the_page_only_with_admin_token(
    redis_url: str, token: str | None
) -> None:
    service = Service(
        Settings(redis_url=redis_url, admin_token=token, evolink_base_url="http://127.0.0.1:9")
    )
    try:
        async with TestClient(TestServer(service.app)) as client:
            response = await client.get("/admin", headers=BEARER)
            assert response.status == (200 if token else 404)
            assert (await client.get("/healthz")).status == 200
    finally:
        await service.engine.llm.aclose()
        await service.engine.store.aclose()
