"""`fetch_url`: a web page's main text as Markdown, without reaching inside the network.

Every hop (the first request and each redirect) resolves the host, refuses private,
loopback, link-local, multicast, reserved and unspecified addresses (unless the
operator sets `BOT_FETCH_ALLOW_PRIVATE`), then connects to exactly the address it
checked: the URL is rewritten to that IP, with the original `Host` header and TLS SNI,
so DNS can't answer differently between the check and the connection. No cookies, no
credentials, no proxy settings from the environment, and no platform token ever go out.
The body is read up to a size cap, and the HTML is parsed (trafilatura) in a worker
thread with a time bound.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx
import trafilatura

from bot.errors import FetchRefused
from bot.tools.base import Tool, ToolResult
from bot.tools.entry_points import ToolContext
from bot.tools.schema import tool_from_function

Resolver = Callable[[str, int], Awaitable[list[str]]]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

USER_AGENT = "Parley/0.1 (fetch_url; +https://github.com/parley)"
TEXT_TYPES = ("text/plain", "text/markdown", "application/json", "text/csv")
HTML_TYPES = ("text/html", "application/xhtml+xml")


@dataclass(frozen=True, slots=True)
class FetchLimits:
    max_chars: int = 12_000  # of Markdown handed to the model
    max_bytes: int = 2 * 1024 * 1024  # read from the response body
    timeout: float = 10.0  # for the whole fetch, redirects included
    max_redirects: int = 3
    parse_timeout: float = 5.0  # for extracting the text from the HTML


@dataclass(frozen=True, slots=True)
class _Page:
    url: str
    content_type: str
    body: bytes
    encoding: str
    truncated: bool


async def system_resolver(host: str, port: int) -> list[str]:
    """The addresses the system resolver gives for `host` (also parses 2130706433 etc.)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]).split("%", 1)[0] for info in infos]


def is_public(address: IPAddress) -> bool:
    """Whether an address is on the public internet (IPv4-mapped IPv6 judged as IPv4)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


def _ip_literal(host: str) -> IPAddress:
    """`host` as an IP address, including the old numeric forms (2130706433, 0x7f.1, 127.1)
    that the C library accepts, so no resolver can be asked about them."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            raise ValueError(host) from None


class PageFetcher:
    """Fetches pages for the model. `resolver` and `transport` are injectable for tests."""

    def __init__(
        self,
        *,
        allow_private: bool = False,
        resolver: Resolver = system_resolver,
        transport: httpx.AsyncBaseTransport | None = None,
        limits: FetchLimits | None = None,
    ) -> None:
        self._allow_private = allow_private
        self._resolver = resolver
        self._transport = transport
        self.limits = limits or FetchLimits()

    async def fetch(self, url: str) -> ToolResult:
        limits = self.limits
        try:
            async with asyncio.timeout(limits.timeout):
                page = await self._download(url)
        except FetchRefused as exc:
            return ToolResult.error(str(exc))
        except TimeoutError:
            return ToolResult.error(f"Fetching {url} took longer than {limits.timeout:g} s.")
        except httpx.HTTPError as exc:
            return ToolResult.error(f"Could not fetch {url}: {type(exc).__name__}.")
        try:
            # The worker thread can't be stopped; the answer just stops waiting for it.
            # The body it parses is at most `max_bytes`, which bounds its work.
            markdown = await asyncio.wait_for(
                asyncio.to_thread(_extract, page), limits.parse_timeout
            )
        except FetchRefused as exc:
            return ToolResult.error(str(exc))
        except TimeoutError:
            return ToolResult.error(f"Reading the text of {url} took too long.")
        notes = []
        if page.truncated:
            notes.append(f"[only the first {limits.max_bytes // (1024 * 1024)} MB was read]")
        if len(markdown) > limits.max_chars:
            markdown = markdown[: limits.max_chars]
            notes.append(f"[cut at {limits.max_chars:,} characters]")
        return ToolResult("\n".join([f"Source: {page.url}", "", markdown, *notes]).strip())

    async def _download(self, url: str) -> _Page:
        # A client per fetch: no cookie jar or connection shared with anything else.
        async with httpx.AsyncClient(
            transport=self._transport or httpx.AsyncHTTPTransport(),
            trust_env=False,
            follow_redirects=False,
            timeout=self.limits.timeout,
        ) as client:
            current = url
            for _ in range(self.limits.max_redirects + 1):
                request = await self._pinned_request(current)
                response = await client.send(request, stream=True)
                try:
                    location = response.headers.get("location")
                    if response.is_redirect and location:
                        current = str(httpx.URL(current).join(location))
                        continue
                    if response.status_code >= 400:
                        raise FetchRefused(f"{current} answered HTTP {response.status_code}.")
                    return await self._read(current, response)
                finally:
                    await response.aclose()
        raise FetchRefused(f"{url} redirected more than {self.limits.max_redirects} times.")

    async def _pinned_request(self, url: str) -> httpx.Request:
        try:
            target = httpx.URL(url)
        except httpx.InvalidURL as exc:
            raise FetchRefused(f"{url!r} is not a valid URL.") from exc
        if target.scheme not in ("http", "https") or not target.host:
            raise FetchRefused(f"Only http and https links can be fetched, not {url!r}.")
        port = target.port or (443 if target.scheme == "https" else 80)
        address = await self._checked_address(target.host, port)
        host = f"[{target.host}]" if ":" in target.host else target.host
        headers = {
            "Host": host if target.port is None else f"{host}:{target.port}",
            "User-Agent": USER_AGENT,
            "Accept": "text/html,application/xhtml+xml,text/plain;q=0.9,*/*;q=0.1",
        }
        extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
        return httpx.Request(
            "GET", target.copy_with(host=address), headers=headers, extensions=extensions
        )

    async def _checked_address(self, host: str, port: int) -> str:
        try:
            addresses = [_ip_literal(host)]
        except ValueError:
            try:
                found = await self._resolver(host, port)
            except OSError as exc:
                raise FetchRefused(f"The name {host} could not be resolved.") from exc
            addresses = [ipaddress.ip_address(address) for address in found]
        if not addresses:
            raise FetchRefused(f"The name {host} has no address.")
        if not self._allow_private:
            for address in addresses:
                if not is_public(address):
                    raise FetchRefused(
                        f"{host} is a private or reserved address ({address}); "
                        "fetch_url only reads public web pages."
                    )
        return str(addresses[0])

    async def _read(self, url: str, response: httpx.Response) -> _Page:
        content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type and content_type not in HTML_TYPES + TEXT_TYPES:
            raise FetchRefused(f"{url} is not a text page ({content_type}).")
        body = bytearray()
        truncated = False
        async for chunk in response.aiter_raw():
            body.extend(chunk)
            if len(body) > self.limits.max_bytes:
                del body[self.limits.max_bytes :]
                truncated = True
                break
        encoding = response.charset_encoding or "utf-8"
        return _Page(url, content_type or "text/html", bytes(body), encoding, truncated)


def _extract(page: _Page) -> str:
    if page.content_type in TEXT_TYPES:
        return page.body.decode(page.encoding, errors="replace")
    markdown = trafilatura.extract(
        page.body, url=page.url, output_format="markdown", include_links=True
    )
    if not markdown:
        raise FetchRefused(f"{page.url} has no readable main text.")
    return str(markdown)


def fetch_url_tool(context: ToolContext) -> Tool:
    """The `fetch_url` tool (a `parley.tools` entry point), with the deployment's policy."""
    fetcher = PageFetcher(allow_private=context.fetch_allow_private)

    async def fetch_url(url: str) -> ToolResult:
        """Read a web page (http or https) and get its main text as Markdown.

        Args:
            url: The full address of the page, e.g. https://example.com/article
        """
        return await fetcher.fetch(url)

    return tool_from_function(fetch_url)
