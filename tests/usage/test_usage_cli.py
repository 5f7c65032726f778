"""`parley usage` in its three formats, over counters recorded in a real Redis."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, date, datetime

import pytest
import redis.asyncio as aioredis

from bot.cli.main import main
from bot.conversation import ConversationKey
from bot.llm.types import Usage
from bot.policy import Price
from bot.settings import Settings
from bot.usage import UsageMeter
from bot.usage.command import report_days, usage_command

PRICES = {"gpt-5.5": Price(prompt=1.0, completion=10.0)}
HEADER = [
    "key",
    "requests",
    "prompt_tokens",
    "completion_tokens",
    "reasoning_tokens",
    "cached_tokens",
    "cost_usd",
]


@pytest.fixture
async def recorded(redis_client: aioredis.Redis) -> None:
    key = ConversationKey("slack", "T1", "C1", "t")
    for day, user, model, prompt in [
        (29, "U1", "gpt-5.5", 1000),
        (29, "U1", "gpt-5.5", 1000),
        (29, "U2", "gpt-5.1", 50),
        (30, "U2", "gpt-5.5", 4000),
    ]:
        moment = datetime(2026, 11, day, 12, tzinfo=UTC)
        meter = UsageMeter(redis_client, lambda: PRICES, clock=lambda m=moment: m)
        await meter.record(key, user, model, Usage(prompt_tokens=prompt, completion_tokens=100))


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, redis_url: str) -> None:
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.delenv("BOT_POLICY_FILE", raising=False)


@pytest.mark.usefixtures("recorded", "env")
def test_a_table_by_user(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["usage", "--day", "2026-11-29"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["user", *HEADER[1:]]
    assert lines[1].split() == ["slack:U1", "2", "2000", "200", "0", "0", "0.004000"]
    assert lines[2].split() == ["slack:U2", "1", "50", "100", "0", "0", "0.000000"]
    assert len(lines) == 3


@pytest.mark.usefixtures("recorded", "env")
def test_json_by_model(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["usage", "--day", "2026-11-29", "--by", "model", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows == [
        {
            "key": "gpt-5.5",
            "requests": 2,
            "prompt_tokens": 2000,
            "completion_tokens": 200,
            "reasoning_tokens": 0,
            "cached_tokens": 0,
            "cost_usd": pytest.approx(0.004),
        },
        {
            "key": "gpt-5.1",
            "requests": 1,
            "prompt_tokens": 50,
            "completion_tokens": 100,
            "reasoning_tokens": 0,
            "cached_tokens": 0,
            "cost_usd": 0.0,
        },
    ]


@pytest.mark.usefixtures("recorded", "env")
def test_csv_with_a_header_by_channel(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["usage", "--day", "2026-11-30", "--by", "channel", "--csv"]) == 0
    rows = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    assert rows == [HEADER, ["slack:C1", "1", "4000", "100", "0", "0", "0.005000"]]


@pytest.mark.usefixtures("recorded")
async def test_since_adds_up_the_days_to_today(redis_url: str) -> None:
    out = io.StringIO()
    status = await usage_command(
        Settings(redis_url=redis_url),
        since=date(2026, 11, 1),
        by="workspace",
        output="csv",
        out=out,
        clock=lambda: datetime(2026, 11, 30, 23, tzinfo=UTC),
    )
    assert status == 0
    assert out.getvalue().splitlines()[1] == "slack:T1,4,6050,400,0,0,0.009000"


@pytest.mark.usefixtures("env")
def test_an_empty_day_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["usage", "--day", "2001-01-01", "--by", "workspace"]) == 0
    assert "(no usage recorded)" in capsys.readouterr().out


def test_the_range_is_bounded_by_what_is_kept() -> None:
    today = date(2026, 11, 30)
    assert report_days(None, None, today) == ["2026-11-30"]
    assert report_days(date(2026, 1, 2), None, today) == ["2026-01-02"]
    assert len(report_days(None, date(2000, 1, 1), today)) == 91
    assert report_days(None, date(2026, 12, 5), today) == []


def test_bad_arguments_and_no_redis(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        main(["usage", "--day", "30.11.2026"])
    assert "not a day in the form YYYY-MM-DD" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["usage", "--day", "2026-11-30", "--since", "2026-11-01"])
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.setenv("REDIS_URL", "")
    assert main(["usage"]) == 2
    assert "REDIS_URL is not set" in capsys.readouterr().err


def test_an_unreachable_redis_is_one_line_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    assert main(["usage"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("parley usage: Redis at REDIS_URL can't be read:")
    assert "Traceback" not in err
