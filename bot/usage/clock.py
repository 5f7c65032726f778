"""UTC days and quota windows, with the clock injectable (tests move it past midnight)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

Clock = Callable[[], datetime]

DAY = timedelta(days=1)


def utc_now() -> datetime:
    return datetime.now(UTC)


def day_of(moment: datetime) -> str:
    """The UTC day `moment` falls on, as YYYY-MM-DD (the usage counters' day)."""
    return moment.astimezone(UTC).date().isoformat()


def days_between(first: date, last: date) -> list[str]:
    """Every day from `first` to `last`, inclusive, as YYYY-MM-DD."""
    count = (last - first).days + 1
    return [(first + timedelta(days=n)).isoformat() for n in range(max(count, 0))]


def quota_window(moment: datetime, reset_hour_utc: int) -> tuple[datetime, datetime]:
    """The start and end of the quota day `moment` is in: it begins at `reset_hour_utc`."""
    utc = moment.astimezone(UTC)
    start = utc.replace(hour=reset_hour_utc, minute=0, second=0, microsecond=0)
    if start > utc:
        start -= DAY
    return start, start + DAY
