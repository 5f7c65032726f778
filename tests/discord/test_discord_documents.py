"""A slide deck and a long PDF uploaded in Discord: the slide marker reaches the model,
and the answer says which pages were read."""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis

from tests.discord.harness import discord_bot
from tests.fakes.discord_api import FakeDiscord
from tests.fakes.documents import pdf, pptx_file
from tests.fakes.llm_server import Reply

PPTX_MIME = "application/vnd.openxmlformats-officedocument.presentationml.presentation"


def two_pages(fake: FakeDiscord, world: dict[str, Any]) -> dict[str, Any]:
    return {"bot_max_document_pages": 2}


async def test_uploaded_deck_and_pdf_reach_the_model_and_the_footer_says_what_was_read(
    redis_client: aioredis.Redis, redis_url: str
) -> None:
    async with discord_bot(redis_url, two_pages) as bot:
        fake = bot.discord
        deck = fake.attachment(
            "deck.pptx", PPTX_MIME, pptx_file([("Intro", "hi"), ("Plan", "PURPLE MOTH ships")])
        )
        report = fake.attachment(
            "report.pdf", "application/pdf", pdf(["one", "two", "three is never read"])
        )
        bot.llm.enqueue(Reply(text="It ships on slide 2."))
        thread_id = await bot.ask("what ships?", attachments=[deck, report])
        answers = await bot.answered(thread_id, text="It ships on slide 2.")

        [request] = bot.llm.requests
        sent = request.last_user_text
        assert "## Slide 2\n\n### Plan\n\n- PURPLE MOTH ships" in sent
        assert "## Page 2\n\ntwo" in sent and "never read" not in sent
        footer = "".join(m["content"] for m in answers)
        assert "“report.pdf”: read pages 1-2 of 3." in footer
        bot.assert_no_pings()


async def test_a_document_over_the_image_limit_is_downloaded_and_read(
    redis_client: aioredis.Redis, redis_url: str
) -> None:
    # 11 MB: over the 10 MB image cap, under the 25 MB document cap. The padding is a PDF
    # comment after the end, which readers ignore, so the text is still found.
    big = pdf(["The code word is AMBER FINCH."]) + b"\n%" + b" " * (11 * 1024 * 1024) + b"\n"
    async with discord_bot(redis_url) as bot:
        report = bot.discord.attachment("big.pdf", "application/pdf", big)
        bot.llm.enqueue(Reply(text="AMBER FINCH."))
        thread_id = await bot.ask("what is the code word?", attachments=[report])
        answers = await bot.answered(thread_id, text="AMBER FINCH.")

        [request] = bot.llm.requests
        assert "The code word is AMBER FINCH." in request.last_user_text
        said = "".join(m["content"] for m in answers)
        assert "big.pdf" not in said  # no "skipped" or "too large" note
        bot.assert_no_pings()
