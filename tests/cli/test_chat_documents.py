"""`/file PATH` in `parley chat`: the document goes with the next message."""

from __future__ import annotations

import io
from pathlib import Path

import redis.asyncio as aioredis
from pydantic import SecretStr

from bot.cli.chat import chat
from bot.settings import Settings
from tests.fakes.documents import pdf
from tests.fakes.llm_server import FakeLLM, Reply


async def test_file_command_attaches_a_document_to_the_next_message(
    fake_llm: FakeLLM, redis_url: str, redis_client: aioredis.Redis, tmp_path: Path
) -> None:
    report = tmp_path / "report.pdf"
    report.write_bytes(pdf(["Intro", "The answer is INDIGO WREN."]))
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        evolink_base_url=fake_llm.base_url,
        evolink_api_key=SecretStr(fake_llm.api_key or ""),
        redis_url=redis_url,
        bot_tools=False,
    )
    fake_llm.enqueue(Reply(text="Page 2 says INDIGO WREN."))
    script = f"/file {report}\n/file {tmp_path / 'missing.pdf'}\nwhat is the answer?\n"
    out = io.StringIO()
    assert await chat(settings, fresh=True, stdin=io.StringIO(script), stdout=out) == 0

    said = out.getvalue()
    assert "Attached report.pdf to your next message." in said
    assert "No such file:" in said and "missing.pdf" in said
    assert "Page 2 says INDIGO WREN." in said
    assert "## Page 2\n\nThe answer is INDIGO WREN." in fake_llm.requests[-1].last_user_text
