"""The Slack client builds its debug lines only when logging would print them."""

from __future__ import annotations

import logging

import pytest

from adapters.slack.client import make_client
from tests.fakes.slack_api import FakeSlack


@pytest.mark.parametrize("level", [logging.WARNING, logging.DEBUG])
async def test_request_lines_are_built_only_at_debug(
    level: int, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[str] = []
    monkeypatch.setattr(logging.Logger, "debug", lambda self, msg, *a, **k: built.append(msg))
    caplog.set_level(level)
    async with FakeSlack() as slack:
        client = make_client(slack.bot_token, slack.api_url)
        assert (await client.auth_test())["ok"]
    sent = [line for line in built if line.startswith("Sending a request")]
    assert len(sent) == (1 if level == logging.DEBUG else 0)
