"""Signed requests Slack would never send: acknowledged or refused, never a 500 or a post."""

from __future__ import annotations

import json
import logging

import pytest

from tests.fakes.slack_api import BOT_USER_ID, signed_headers
from tests.slack.conftest import SlackBot, wait_answer

CHANNEL = "C0GENERAL"
ALICE = "U0ALICE"


def _mention(**event: object) -> dict[str, object]:
    return {
        "type": "app_mention",
        "user": ALICE,
        "text": f"<@{BOT_USER_ID}> hi",
        "ts": "1700000000.000100",
        "channel": CHANNEL,
    } | event


def _callback(event: object) -> dict[str, object]:
    return {"type": "event_callback", "team_id": "T0FAKE", "event_id": "Ev0BAD", "event": event}


MALFORMED: dict[str, str] = {
    "no event": json.dumps({k: v for k, v in _callback(None).items() if k != "event"}),
    "event is a string": json.dumps(_callback("app_mention")),
    "event is a list": json.dumps(_callback([_mention()])),
    "body is a JSON list": json.dumps([_callback(_mention())]),
    "body is not JSON": "{this is not json",
    "text is a number": json.dumps(_callback(_mention(text=123))),
    "ts is missing": json.dumps(_callback({k: v for k, v in _mention().items() if k != "ts"})),
    "files is not a list": json.dumps(_callback(_mention(files="nope"))),
}


@pytest.mark.parametrize("raw", MALFORMED.values(), ids=MALFORMED.keys())
async def test_malformed_signed_event_is_answered_200_or_400_with_no_post(
    slack_bot: SlackBot, raw: str, caplog: pytest.LogCaptureFixture
) -> None:
    slack_bot.fake.add_user(ALICE, "Alice")
    with caplog.at_level(logging.INFO):
        status, _, _ = await slack_bot.post(raw, headers=signed_headers(raw))
    assert status in (200, 400)
    assert not [r for r in caplog.records if r.exc_info]  # one line, no traceback

    _, barrier = slack_bot.fake.person_says(CHANNEL, f"<@{BOT_USER_ID}> barrier", user=ALICE)
    assert (await slack_bot.post(barrier))[0] == 200
    await wait_answer(slack_bot.fake, barrier["event"]["ts"], channel=CHANNEL)
    assert [m.thread_ts for m in slack_bot.fake.bot_messages()] == [barrier["event"]["ts"]]
    assert len(slack_bot.llm.requests) == 1
