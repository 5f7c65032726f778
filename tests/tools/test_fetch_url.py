"""fetch_url against a local HTTP server: extraction, caps, and every SSRF case refused."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from aiohttp import web

from bot.llm.types import ToolCall
from bot.tools import ToolBox, ToolContext
from bot.tools.fetch import FetchLimits, PageFetcher, Resolver, fetch_url_tool, system_resolver

PUBLIC_IP = "93.184.216.34"  # what the injected resolver says public.test is

ARTICLE = """<!doctype html><html><head><title>Redis streams</title></head><body>
<nav><a href="/">Home</a> | <a href="/about">About us</a> | <a href="/login">Log in</a></nav>
<div class="cookie-banner">We use cookies to improve your experience. Accept all cookies.</div>
<main><article><h1>How Redis streams work</h1>
<p>A Redis stream is an append-only log of entries, each with an ID made of a millisecond
timestamp and a sequence number. Consumers read entries in order and can block waiting
for new ones, which makes streams a good fit for event sourcing and job queues.</p>
<p>Consumer groups let several workers share one stream: each entry is delivered to one
consumer of the group, which acknowledges it with XACK once it has been processed.</p>
<p>Entries that were delivered but never acknowledged stay in the pending entries list,
where XAUTOCLAIM can hand them to another consumer after a timeout.</p>
</article></main>
<footer>Copyright 2026 Example Corp. All rights reserved. Privacy policy. Terms.</footer>
</body></html>"""


class Site:
    def __init__(self) -> None:
        self.seen: list[web.Request] = []
        self.port = 0

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/article", self.article)
        app.router.add_get("/big", self.big)
        app.router.add_get("/slow", self.slow)
        app.router.add_get("/redirect/{n}", self.redirect)
        app.router.add_get("/to-loopback", self.to_loopback)
        app.router.add_get("/set-cookie", self.set_cookie)
        app.router.add_get("/headers", self.headers)
        app.router.add_get("/binary", self.binary)
        app.middlewares.append(self.record)
        return app

    @web.middleware
    async def record(self, request: web.Request, handler: object) -> web.StreamResponse:
        self.seen.append(request)
        return await handler(request)  # type: ignore[operator, no-any-return]

    async def article(self, _: web.Request) -> web.Response:
        return web.Response(text=ARTICLE, content_type="text/html")

    async def big(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await response.prepare(request)
        for _ in range(300):  # 3 MB in 10 kB lines
            await response.write(b"x" * 10_239 + b"\n")
        await response.write_eof()
        return response

    async def slow(self, _: web.Request) -> web.Response:
        await asyncio.Event().wait()
        return web.Response(text="never")

    async def redirect(self, request: web.Request) -> web.Response:
        n = int(request.match_info["n"])
        # /redirect/n is n + 1 redirects away from the article.
        raise web.HTTPFound("/article" if n == 0 else f"/redirect/{n - 1}")

    async def to_loopback(self, _: web.Request) -> web.Response:
        raise web.HTTPFound(f"http://127.0.0.1:{self.port}/article")

    async def set_cookie(self, _: web.Request) -> web.Response:
        response = web.HTTPFound("/headers")
        response.set_cookie("session", "sekrit")
        raise response

    async def headers(self, request: web.Request) -> web.Response:
        lines = [f"{name}: {value}" for name, value in request.headers.items()]
        return web.Response(text="\n".join(lines), content_type="text/plain")

    async def binary(self, _: web.Request) -> web.Response:
        return web.Response(body=b"\x89PNG", content_type="image/png")


@pytest.fixture
async def site() -> AsyncIterator[Site]:
    site = Site()
    runner = web.AppRunner(site.app(), access_log=None, shutdown_timeout=0.2)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    site.port = runner.addresses[0][1]
    yield site
    await runner.cleanup()


class ToLocal(httpx.AsyncBaseTransport):
    """Connections to PUBLIC_IP land on the local server: a stand-in for the internet."""

    def __init__(self) -> None:
        self._inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.host == PUBLIC_IP:
            request.url = request.url.copy_with(host="127.0.0.1")
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


def _resolver(answers: dict[str, list[str]]) -> Resolver:
    async def resolve(host: str, port: int) -> list[str]:
        return answers[host] if host in answers else await system_resolver(host, port)

    return resolve


def _public_fetcher(**kwargs: object) -> PageFetcher:
    return PageFetcher(
        resolver=_resolver({"public.test": [PUBLIC_IP], "internal.test": ["10.0.0.1"]}),
        transport=ToLocal(),
        **kwargs,  # type: ignore[arg-type]
    )


async def test_main_text_is_extracted_as_markdown_without_the_boilerplate(site: Site) -> None:
    result = await PageFetcher(allow_private=True).fetch(f"http://127.0.0.1:{site.port}/article")
    assert not result.is_error
    assert result.text.startswith(f"Source: http://127.0.0.1:{site.port}/article")
    assert "append-only log of entries" in result.text
    assert "XAUTOCLAIM" in result.text
    assert "Log in" not in result.text and "All rights reserved" not in result.text


async def test_the_host_name_is_kept_while_the_checked_address_is_used(site: Site) -> None:
    result = await _public_fetcher().fetch(f"http://public.test:{site.port}/article")
    assert not result.is_error and "consumer groups" in result.text.lower()
    assert site.seen[-1].headers["Host"] == f"public.test:{site.port}"


async def test_size_and_length_are_capped(site: Site) -> None:
    fetcher = PageFetcher(allow_private=True)
    result = await fetcher.fetch(f"http://127.0.0.1:{site.port}/big")
    assert "[only the first 2 MB was read]" in result.text
    assert "[cut at 12,000 characters]" in result.text
    assert len(result.text) < 12_000 + 200


async def test_redirects_are_followed_up_to_three(site: Site) -> None:
    fetcher = PageFetcher(allow_private=True)
    ok = await fetcher.fetch(f"http://127.0.0.1:{site.port}/redirect/2")
    assert not ok.is_error and ok.text.startswith(f"Source: http://127.0.0.1:{site.port}/article")
    too_many = await fetcher.fetch(f"http://127.0.0.1:{site.port}/redirect/3")
    assert too_many.is_error and "redirected more than 3 times" in too_many.text


async def test_the_whole_fetch_has_a_time_limit(site: Site) -> None:
    fetcher = PageFetcher(allow_private=True, limits=FetchLimits(timeout=0.3))
    result = await fetcher.fetch(f"http://127.0.0.1:{site.port}/slow")
    assert result.is_error and "took longer than 0.3 s" in result.text


async def test_no_cookie_or_credential_is_sent(site: Site) -> None:
    result = await _public_fetcher().fetch(f"http://public.test:{site.port}/set-cookie")
    assert not result.is_error
    assert "sekrit" not in result.text and "Cookie" not in result.text
    assert "Authorization" not in result.text


async def test_only_text_pages_and_web_schemes(site: Site) -> None:
    fetcher = PageFetcher(allow_private=True)
    binary = await fetcher.fetch(f"http://127.0.0.1:{site.port}/binary")
    assert binary.is_error and "not a text page (image/png)" in binary.text
    for url in ("file:///etc/passwd", "ftp://example.com/x", "gopher://x", "not a url"):
        refused = await fetcher.fetch(url)
        assert refused.is_error, url


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:{port}/article",
        "http://[::1]:{port}/article",
        "http://2130706433:{port}/article",  # 127.0.0.1 as one decimal number
        "http://0.0.0.0:{port}/article",
        "http://[::ffff:127.0.0.1]:{port}/article",
        "http://169.254.169.254/latest/meta-data/",
        "http://internal.test:{port}/article",  # resolves to 10.0.0.1
        "http://public.test:{port}/to-loopback",  # public, then a redirect to 127.0.0.1
    ],
)
async def test_private_addresses_are_refused(site: Site, url: str) -> None:
    result = await _public_fetcher().fetch(url.format(port=site.port))
    assert result.is_error and "private or reserved address" in result.text
    assert all(request.path != "/article" for request in site.seen)


async def test_the_tool_follows_the_deployment_setting(site: Site) -> None:
    url = f'{{"url": "http://127.0.0.1:{site.port}/article"}}'
    refused = ToolBox([fetch_url_tool(ToolContext())])
    allowed = ToolBox([fetch_url_tool(ToolContext(fetch_allow_private=True))])
    assert (await refused.run(ToolCall("1", "fetch_url", url))).is_error
    assert "XACK" in (await allowed.run(ToolCall("1", "fetch_url", url))).text


async def test_parsing_has_its_own_time_bound(site: Site) -> None:
    fetcher = PageFetcher(allow_private=True, limits=FetchLimits(parse_timeout=0))
    result = await fetcher.fetch(f"http://127.0.0.1:{site.port}/article")
    assert result.is_error and result.text.endswith("took too long.")
