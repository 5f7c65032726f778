"""Reading the usage counters back: rows per user, channel, workspace or model.

The same rows feed `parley usage` (a table, JSON or CSV) and the admin page.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields

from bot.store import DEFAULT_PREFIX
from bot.store.client import Client
from bot.usage.meter import COLUMNS, FIELD_SEPARATOR, usage_key
from bot.usage.unavailable import unavailable


@dataclass(slots=True)
class UsageRow:
    key: str
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0
    cached_tokens: int = 0
    cost_usd: float = 0.0

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def add(self, column: str, value: bytes | str) -> None:
        if column == "cost_usd":
            self.cost_usd += float(value)
        elif column in COLUMNS:
            setattr(self, column, getattr(self, column) + int(value))


HEADER = tuple(f.name for f in fields(UsageRow))


async def read_usage(
    redis: Client, days: Sequence[str], by: str, *, prefix: str = DEFAULT_PREFIX
) -> list[UsageRow]:
    """Counters of `days` grouped by `by`, most expensive first (then most tokens)."""
    per_day = await _read_days(redis, days, by, prefix)
    rows: dict[str, UsageRow] = {}
    for counters in per_day:
        for name, value in counters.items():
            ident, _, column = _text(name).rpartition(FIELD_SEPARATOR)
            rows.setdefault(ident, UsageRow(ident)).add(column, value)
    return sorted(rows.values(), key=lambda r: (-r.cost_usd, -r.tokens, r.key))


async def read_one(
    redis: Client, day: str, by: str, ident: str, *, prefix: str = DEFAULT_PREFIX
) -> UsageRow:
    """One user's (channel's, ...) counters of one day, without reading anyone else's."""
    with unavailable("usage read"):
        values = await redis.hmget(
            usage_key(prefix, day, by), [f"{ident}{FIELD_SEPARATOR}{c}" for c in COLUMNS]
        )
    row = UsageRow(ident)
    for column, value in zip(COLUMNS, values, strict=True):
        if value is not None:
            row.add(column, value)
    return row


async def read_daily_totals(
    redis: Client, days: Sequence[str], *, prefix: str = DEFAULT_PREFIX
) -> list[UsageRow]:
    """One row per day (keyed by the day), oldest first: every model's use added up."""
    per_day = await _read_days(redis, days, "model", prefix)
    totals = []
    for day, counters in zip(days, per_day, strict=True):
        row = UsageRow(day)
        for name, value in counters.items():
            row.add(_text(name).rpartition(FIELD_SEPARATOR)[2], value)
        totals.append(row)
    return totals


async def _read_days(
    redis: Client, days: Sequence[str], by: str, prefix: str
) -> list[dict[bytes | str, bytes | str]]:
    # Each day's hash has its own slot tag: a plain pipeline, not a transaction.
    pipe = redis.pipeline(transaction=False)
    for day in days:
        pipe.hgetall(usage_key(prefix, day, by))
    with unavailable("usage read"):
        result: list[dict[bytes | str, bytes | str]] = await pipe.execute()
    return result


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _cells(row: UsageRow) -> list[str]:
    return [row.key, *(str(getattr(row, c)) for c in HEADER[1:-1]), f"{row.cost_usd:.6f}"]


def as_json(rows: Sequence[UsageRow]) -> str:
    return json.dumps([asdict(r) for r in rows], indent=2)


def as_csv(rows: Sequence[UsageRow]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(HEADER)
    writer.writerows(_cells(r) for r in rows)
    return out.getvalue()


def as_table(rows: Sequence[UsageRow], by: str) -> str:
    header = [by, *HEADER[1:]]
    body = [_cells(r) for r in rows]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = (cell.rjust(width) for cell, width in zip(cells[1:], widths[1:], strict=True))
        return "  ".join([first, *rest]).rstrip()

    lines = [line(header), *(line(r) for r in body)]
    if not body:
        lines.append("(no usage recorded)")
    return "\n".join(lines) + "\n"
