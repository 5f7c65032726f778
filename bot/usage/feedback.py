"""Ratings of answers (👍/👎 and an optional "what went wrong?"), counted per day in Redis.

Adapters turn a button press into `FeedbackBook.rate`; the admin page reads the counts
back. One person has one vote per answer: pressing the other button moves the vote,
pressing the same one again changes nothing.

Keys, all of a day under the hash tag `{<day>}` so one script updates them atomically
(in Redis Cluster too):

    <prefix>feedback:{<day>}:votes      hash   "<answer id>|<user>" → up or down
    <prefix>feedback:{<day>}:counts     hash   "model|<model>|<rating>",
                                               "channel|<channel>|<rating>",
                                               "persona|<persona>|<rating>" → count
    <prefix>feedback:{<day>}:comments   list   the newest `MAX_COMMENTS` comments, JSON

A vote is counted on the day it is given; all keys are kept `RETENTION_DAYS`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

from bot.metrics import Metrics
from bot.policy import Place
from bot.store import DEFAULT_PREFIX
from bot.store.client import Client
from bot.usage.clock import DAY, Clock, day_of, utc_now
from bot.usage.meter import RETENTION_DAYS
from bot.usage.unavailable import unavailable

RATINGS = ("up", "down")
MAX_COMMENTS = 200
MAX_COMMENT_CHARS = 1000
MAX_LABEL_CHARS = 200

# KEYS: votes, counts, comments. ARGV: voter field, rating, ttl, comment JSON ("" = none),
# last index of the comments kept, then the counter prefixes ("model|m|" ...).
# Returns 1 when the vote is new or changed.
_RATE = """
local previous = redis.call('HGET', KEYS[1], ARGV[1])
local changed = previous ~= ARGV[2]
if changed then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
  for i = 6, #ARGV do
    redis.call('HINCRBY', KEYS[2], ARGV[i] .. ARGV[2], 1)
    if previous then
      redis.call('HINCRBY', KEYS[2], ARGV[i] .. previous, -1)
    end
  end
end
if ARGV[4] ~= '' then
  redis.call('LPUSH', KEYS[3], ARGV[4])
  redis.call('LTRIM', KEYS[3], 0, ARGV[5])
end
for _, key in ipairs(KEYS) do
  redis.call('EXPIRE', key, ARGV[3])
end
return changed and 1 or 0
"""


@dataclass(slots=True)
class FeedbackCounts:
    """Up and down votes per model, channel and persona, and the newest comments."""

    up: dict[str, dict[str, int]] = field(default_factory=dict)  # kind -> label -> count
    down: dict[str, dict[str, int]] = field(default_factory=dict)
    comments: list[dict[str, str]] = field(default_factory=list)

    def rows(self, kind: str) -> list[tuple[str, int, int]]:
        """(label, up, down) for one kind (model, channel, persona), most votes first."""
        labels = set(self.up.get(kind, {})) | set(self.down.get(kind, {}))
        rows = [
            (label, self.up.get(kind, {}).get(label, 0), self.down.get(kind, {}).get(label, 0))
            for label in labels
        ]
        return sorted(rows, key=lambda r: (-(r[1] + r[2]), r[0]))


class FeedbackBook:
    def __init__(
        self,
        redis: Client,
        metrics: Metrics,
        *,
        clock: Clock = utc_now,
        prefix: str = DEFAULT_PREFIX,
    ) -> None:
        self._redis = redis
        self._metrics = metrics
        self._clock = clock
        self._prefix = prefix
        self._script = redis.register_script(_RATE)

    def _keys(self, day: str) -> list[str]:
        base = f"{self._prefix}feedback:{{{day}}}"
        return [f"{base}:votes", f"{base}:counts", f"{base}:comments"]

    async def rate(
        self,
        *,
        answer_id: str,
        place: Place,
        model: str,
        persona: str,
        rating: str,
        comment: str = "",
    ) -> bool:
        """Count `place.user`'s rating of an answer; whether it was new or changed."""
        if rating not in RATINGS:
            raise ValueError(f"rating must be one of {RATINGS}, not {rating!r}")
        now = self._clock()
        note = ""
        if comment.strip():
            note = json.dumps(
                {
                    "at": now.isoformat(timespec="seconds"),
                    "channel": place.scoped("channel"),
                    "model": model[:MAX_LABEL_CHARS],
                    "rating": rating,
                    "comment": comment.strip()[:MAX_COMMENT_CHARS],
                },
                ensure_ascii=False,
            )
        counters = [
            f"model|{model[:MAX_LABEL_CHARS]}|",
            f"channel|{place.scoped('channel')[:MAX_LABEL_CHARS]}|",
            f"persona|{persona[:MAX_LABEL_CHARS]}|",
        ]
        args: list[str | int] = [
            f"{answer_id[:MAX_LABEL_CHARS]}|{place.scoped('user')}",
            rating,
            int((RETENTION_DAYS + 1) * DAY.total_seconds()),
            note,
            MAX_COMMENTS - 1,
            *counters,
        ]
        with unavailable("feedback"):
            changed = bool(await self._script(keys=self._keys(day_of(now)), args=args))
        if changed:
            self._metrics.feedback.labels(rating, model[:MAX_LABEL_CHARS]).inc()
        return changed

    async def read(self, days: Sequence[str], comments: int = 20) -> FeedbackCounts:
        """The counts of `days` added up, and the newest `comments` comments among them."""
        pipe = self._redis.pipeline(transaction=False)
        for day in days:
            _, counts, notes = self._keys(day)
            pipe.hgetall(counts)
            pipe.lrange(notes, 0, comments - 1)
        with unavailable("feedback read"):
            results = await pipe.execute()
        found = FeedbackCounts()
        for counts, notes in zip(results[::2], results[1::2], strict=True):
            for name, value in counts.items():
                kind, _, rest = name.decode().partition("|")
                label, _, rating = rest.rpartition("|")
                table = found.up if rating == "up" else found.down
                by_label = table.setdefault(kind, {})
                by_label[label] = by_label.get(label, 0) + int(value)
            found.comments.extend(json.loads(note) for note in notes)
        found.comments.sort(key=lambda c: c["at"], reverse=True)
        del found.comments[comments:]
        return found
