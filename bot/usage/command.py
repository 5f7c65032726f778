"""`parley usage`: the usage counters as a table, a JSON list or CSV."""

from __future__ import annotations

import sys
from datetime import date, timedelta
from typing import TextIO

from bot.errors import StoreUnavailable
from bot.settings import Settings
from bot.store import ConversationStore
from bot.usage.clock import Clock, days_between, utc_now
from bot.usage.meter import RETENTION_DAYS
from bot.usage.report import as_csv, as_json, as_table, read_usage

FORMATS = ("table", "json", "csv")

NO_REDIS = """\
parley usage: REDIS_URL is not set.

Usage is counted in Redis; point REDIS_URL at the Redis that `parley serve` uses.
"""


def report_days(day: date | None, since: date | None, today: date) -> list[str]:
    """The days a report covers: one day, or `since` to today (at most the days kept)."""
    if day is not None:
        return [day.isoformat()]
    if since is None:
        return [today.isoformat()]
    oldest = today - timedelta(days=RETENTION_DAYS)
    return days_between(max(since, oldest), today)


async def usage_command(
    settings: Settings,
    *,
    day: date | None = None,
    since: date | None = None,
    by: str = "user",
    output: str = "table",
    out: TextIO | None = None,
    clock: Clock = utc_now,
) -> int:
    """Print the report; the exit status."""
    out = out or sys.stdout
    if not settings.redis_url:
        sys.stderr.write(NO_REDIS)
        return 2
    store = ConversationStore.from_settings(settings)
    try:
        rows = await read_usage(store.redis, report_days(day, since, clock().date()), by)
    except StoreUnavailable as exc:
        sys.stderr.write(f"parley usage: Redis at REDIS_URL can't be read: {exc.__cause__}\n")
        return 1
    finally:
        await store.aclose()
    if output == "json":
        out.write(as_json(rows) + "\n")
    elif output == "csv":
        out.write(as_csv(rows))
    else:
        out.write(as_table(rows, by))
    return 0
