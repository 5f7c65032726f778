"""The admin page in a real headless Chromium (Debian's, driven by Playwright).

It signs in through the form, loads with no console errors, and its charts have bars.
Set `PARLEY_ADMIN_SCREENSHOT=docs/admin.png` to save the phone-sized screenshot the
README shows.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from aiohttp import web
from playwright.async_api import ConsoleMessage, async_playwright

from bot.conversation import ConversationKey
from bot.llm.types import Usage
from bot.metrics import Metrics
from bot.usage import Governance
from tests.admin.test_admin import TOKEN, build_site

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture
async def admin_url(redis_client: aioredis.Redis, tmp_path: Path) -> AsyncIterator[str]:
    metrics = Metrics()
    site = await build_site(redis_client, tmp_path, metrics)
    metrics.turns.labels("discord", "answered").inc(41)
    metrics.turns.labels("slack", "failed").inc(2)
    # Two weeks of traffic, so the charts have something to show.
    for day in range(17, 31):
        moment = datetime(2026, 11, day, 10, tzinfo=UTC)
        meter = Governance.build(
            site.governance.policy, redis_client, metrics, clock=lambda m=moment: m
        )
        for n in range(day % 5 + 1):
            key = ConversationKey("slack", "T1", f"C{n % 3}", "t")
            usage = Usage(prompt_tokens=20_000 * (n + 1) + day * 900, completion_tokens=3_000 * n)
            await meter.meter.record(key, f"U{n}", "gpt-5.5" if n % 2 else "gpt-5.1", usage)
    app = web.Application()
    site.mount(app)
    runner = web.AppRunner(app)
    await runner.setup()
    server = web.TCPSite(runner, "127.0.0.1", 0)
    await server.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def test_the_page_loads_without_console_errors_and_draws_its_charts(
    admin_url: str,
) -> None:
    problems: list[str] = []
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            page = await browser.new_page(viewport={"width": 390, "height": 844})

            def on_console(message: ConsoleMessage) -> None:
                if message.type == "error":
                    problems.append(message.text)

            # The sign-in form comes with a 401, which the browser logs; watch after it.
            await page.goto(f"{admin_url}/admin")
            await page.fill("input[name=token]", TOKEN)
            await page.click("button")
            await page.wait_for_selector("svg.chart")
            page.on("console", on_console)
            page.on("pageerror", lambda error: problems.append(str(error)))
            await page.goto(
                f"{admin_url}/admin?since=2026-11-17&until=2026-11-30&place=slack:C1&as=channel"
            )
            bars = await page.eval_on_selector_all(
                "svg.chart rect.bar", "rects => rects.map(r => r.getBBox().height)"
            )
            assert len(bars) == 2 * 14
            assert sum(1 for height in bars if height > 0) >= 2 * 14 - 2
            width = await page.evaluate("document.documentElement.scrollWidth")
            assert width <= 390  # readable on a phone: no sideways scrolling of the page
            assert await page.text_content("h1") == "Parley admin"
            shot = os.environ.get("PARLEY_ADMIN_SCREENSHOT")
            if shot:
                await page.screenshot(path=shot, full_page=True)
        finally:
            await browser.close()
    assert problems == []
