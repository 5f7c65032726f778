from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bot.media.download import DownloadError, download_capped

BIG = b"x" * 50_000


async def _file(request: web.Request) -> web.StreamResponse:
    if request.headers.get("Authorization") != "Bearer xoxb-ok":
        return web.Response(status=403)
    return web.Response(body=BIG)


async def _chunked(request: web.Request) -> web.StreamResponse:
    # No Content-Length: the cap must hold while bytes arrive.
    response = web.StreamResponse()
    response.enable_chunked_encoding()
    await response.prepare(request)
    for _ in range(50):
        await response.write(b"y" * 1000)
    await response.write_eof()
    return response


@pytest.fixture
async def server() -> AsyncIterator[TestServer]:
    app = web.Application()
    app.router.add_get("/file", _file)
    app.router.add_get("/chunked", _chunked)
    async with TestServer(app, host="127.0.0.1") as srv:
        yield srv


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as http:
        yield http


async def test_downloads_within_the_cap(server: TestServer, client: httpx.AsyncClient) -> None:
    url = str(server.make_url("/file"))
    data = await download_capped(
        client, url, max_bytes=100_000, headers={"Authorization": "Bearer xoxb-ok"}
    )
    assert data == BIG


async def test_declared_size_over_the_cap_is_refused(
    server: TestServer, client: httpx.AsyncClient
) -> None:
    url = str(server.make_url("/file"))
    with pytest.raises(DownloadError) as caught:
        await download_capped(
            client,
            url,
            max_bytes=10_000,
            headers={"Authorization": "Bearer xoxb-ok"},
            name="cat.png",
        )
    assert "“cat.png” is larger than 9 KB" in caught.value.user_message


async def test_cap_holds_without_content_length(
    server: TestServer, client: httpx.AsyncClient
) -> None:
    with pytest.raises(DownloadError):
        await download_capped(client, str(server.make_url("/chunked")), max_bytes=20_000)
    assert (
        len(await download_capped(client, str(server.make_url("/chunked")), max_bytes=60_000))
        == 50_000
    )


async def test_http_error_and_foreign_host(server: TestServer, client: httpx.AsyncClient) -> None:
    with pytest.raises(DownloadError) as caught:
        await download_capped(client, str(server.make_url("/file")), max_bytes=10**6)
    assert "HTTP 403" in caught.value.user_message
    with pytest.raises(DownloadError) as foreign:
        await download_capped(
            client,
            "https://evil.example/x.png",
            max_bytes=10**6,
            allowed_hosts={"files.slack.com"},
        )
    assert "isn't hosted by the platform" in foreign.value.user_message
