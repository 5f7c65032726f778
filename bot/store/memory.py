"""The conversation store's own keys in process memory, for the embedded store.

Without `REDIS_URL` every part of Parley keeps its keys in fakeredis, a Redis emulated in
this process (`bot.store.client`). For the conversation store that emulation was most of
the cost of a turn: fakeredis compiles each Lua script with lupa on every call, sends each
`redis.call` inside it through its command emulation and a check of the Lua globals, and
each command through redis-py and RESP. A turn's claim, BEGIN and FINISH took about
1.25 ms of CPU embedded against 0.5 ms on a real Redis (where the scripts run in the
server), which put the embedded bot about 0.9 ms over the 2.5 ms per turn it may spend in
a 200-message burst.

So the embedded store keeps its own keys (lock, conv, meta, img and event; see
`bot.store`) here, in plain dicts and lists, and runs each script as its Python twin: the
functions `begin`, `finish`, `extend`, `replace` and `renew` below follow the Lua of
`bot.store.scripts` line by line, take the same ARGV and return the same reply (strings
as `str` where Redis gives bytes), so `ConversationStore` has one copy of its logic
whichever ran. The Lua stays the source of the contract; a change to a script is a
change to its twin (`tests/store/test_store_memory.py` runs random sequences of store
operations on a real Redis and here, and compares). Every other part of Parley (usage,
quotas, feedback, approvals, document cache, admin) stays on fakeredis.

Each operation is synchronous Python with no await inside, so it is atomic on the event
loop as a script is atomic on Redis, and its time is frozen at its start as a script's is.

Expiry is Redis's: a key lives while its deadline is not past (PTTL 0 is still alive), a
write without a TTL keeps the key's TTL except SET, which sets its own, and an emptied
list is deleted. Memory stays bounded without a timer: each operation starts by dropping
every key whose deadline has passed, whether or not anything touches it again. That is
cheap because keys are queued by the TTL they were given, and a queue of one TTL is in
deadline order (its keys got that TTL in time order): only the heads of a few queues are
looked at, plus one step per key dropped.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from bot.store.scripts import Script

Arg = str | bytes | int  # a script argument, as redis-py takes it
Text = str | bytes  # a stored string
Twin = Callable[["Keyspace", Sequence[str], Sequence[Arg]], object]

__all__ = [
    "Keyspace",
    "MemoryRunner",
    "StoredTurn",
    "begin",
    "extend",
    "finish",
    "renew",
    "replace",
]


class StoredTurn(NamedTuple):
    """One element of a conversation list: the turn's JSON, and what BEGIN reads of it.

    Parsed once when pushed, where the Lua decodes each turn on every read.
    """

    raw: Text
    tokens: int  # the JSON's "k"
    images: tuple[str, ...]  # the "img" of its parts, in order

    @classmethod
    def parse(cls, raw: Text) -> StoredTurn:
        data = json.loads(raw)
        return cls(raw, data["k"], tuple(p["img"] for p in data["p"] if "img" in p))


Value = Text | list[StoredTurn] | dict[str, Text]


class Keyspace:
    """Strings, lists of turns and hashes under string keys, with Redis's per-key expiry.

    The methods are the Redis commands the scripts send, with their replies. Call
    `tick()` first in each operation: it freezes the operation's time and drops what has
    expired by then, so the commands see only live keys.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock  # seconds
        self._now = 0  # milliseconds, frozen by tick()
        self._values: dict[str, Value] = {}
        self._deadlines: dict[str, tuple[int, int]] = {}  # key -> (deadline ms, its TTL ms)
        self._queues: dict[int, OrderedDict[str, None]] = {}  # TTL ms -> keys by deadline

    def __len__(self) -> int:
        """How many keys are held, expired ones not yet dropped included."""
        return len(self._values)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._values))

    def tick(self) -> None:
        """Start an operation: freeze its time and drop every key expired by then."""
        now = self._now = round(self._clock() * 1000)
        emptied = []
        for ttl, queue in self._queues.items():
            while queue:
                key = next(iter(queue))
                if self._deadlines[key][0] >= now:
                    break
                del queue[key], self._deadlines[key], self._values[key]
            else:
                emptied.append(ttl)
        for ttl in emptied:
            del self._queues[ttl]

    # Keys

    def exists(self, key: str) -> bool:
        return key in self._values

    def delete(self, *keys: str) -> int:
        deleted = 0
        for key in keys:
            if self._values.pop(key, None) is not None:
                self._persist(key)
                deleted += 1
        return deleted

    def pexpire(self, key: str, ms: int) -> int:
        if key not in self._values:
            return 0
        if ms <= 0:
            self.delete(key)
            return 1
        self._persist(key)
        self._deadlines[key] = (self._now + ms, ms)
        queue = self._queues.get(ms)
        if queue is None:
            queue = self._queues[ms] = OrderedDict()
        queue[key] = None
        return 1

    def expire(self, key: str, seconds: int) -> int:
        return self.pexpire(key, seconds * 1000)

    def pttl(self, key: str) -> int:
        """Milliseconds left; -1 for a key without a TTL, -2 for no key."""
        if key not in self._values:
            return -2
        deadline = self._deadlines.get(key)
        return -1 if deadline is None else deadline[0] - self._now

    def _persist(self, key: str) -> None:
        deadline = self._deadlines.pop(key, None)
        if deadline is not None:
            del self._queues[deadline[1]][key]

    # Strings

    def get(self, key: str) -> Text | None:
        value = self._values.get(key)
        if value is None or isinstance(value, str | bytes):
            return value
        raise TypeError(f"{key} holds a {type(value).__name__}, not a string")

    def set(self, key: str, value: Text, ms: int, *, nx: bool = False) -> bool:
        """SET with PX `ms` (every string the store sets expires), NX when `nx`."""
        if nx and key in self._values:
            return False
        self._values[key] = value
        self.pexpire(key, ms)
        return True

    # Lists (of turns: the only lists the store keeps)

    def rpush(self, key: str, raws: Iterable[Text], *, only_if_present: bool = False) -> int:
        """RPUSH, or RPUSHX when `only_if_present`: the list's length after."""
        turns = self._list(key)
        if turns is None:
            if only_if_present:
                return 0
            turns = self._values[key] = []
        turns.extend(StoredTurn.parse(raw) for raw in raws)
        return len(turns)

    def ltrim(self, key: str, start: int, stop: int) -> None:
        turns = self._list(key)
        if turns is None:
            return
        length = len(turns)
        start = max(start + length, 0) if start < 0 else start
        stop = stop + length if stop < 0 else min(stop, length - 1)
        if start > stop:
            self.delete(key)
            return
        del turns[stop + 1 :]
        del turns[:start]

    def llen(self, key: str) -> int:
        turns = self._list(key)
        return 0 if turns is None else len(turns)

    def lrange(self, key: str) -> list[StoredTurn]:
        """LRANGE 0 -1."""
        turns = self._list(key)
        return [] if turns is None else turns.copy()

    def lindex(self, key: str, index: int) -> Text | None:
        turns = self._list(key)
        if turns is None or not -len(turns) <= index < len(turns):
            return None
        return turns[index].raw

    def lset(self, key: str, index: int, raw: Text) -> None:
        turns = self._list(key)
        if turns is None or not -len(turns) <= index < len(turns):
            raise IndexError(f"no element {index} in {key}")
        turns[index] = StoredTurn.parse(raw)

    def _list(self, key: str) -> list[StoredTurn] | None:
        value = self._values.get(key)
        if value is None or isinstance(value, list):
            return value
        raise TypeError(f"{key} holds a {type(value).__name__}, not a list")

    # Hashes

    def hget(self, key: str, field: str) -> Text | None:
        fields = self._hash(key)
        return None if fields is None else fields.get(field)

    def hset(self, key: str, field: str, value: Text) -> None:
        fields = self._hash(key)
        if fields is None:
            fields = self._values[key] = {}
        fields[field] = value

    def _hash(self, key: str) -> dict[str, Text] | None:
        value = self._values.get(key)
        if value is None or isinstance(value, dict):
            return value
        raise TypeError(f"{key} holds a {type(value).__name__}, not a hash")


class MemoryRunner:
    """`bot.store.scripts.Runner` on a `Keyspace`: each script runs as its twin below."""

    def __init__(self, keyspace: Keyspace) -> None:
        self._space = keyspace

    async def run(self, script: Script, keys: Sequence[str], args: Sequence[Arg]) -> object:
        self._space.tick()
        return script.twin(self._space, keys, args)

    async def claim(self, key: str, ttl: int) -> bool:
        self._space.tick()
        return self._space.set(key, "1", ttl * 1000, nx=True)

    async def exists(self, key: str) -> bool:
        self._space.tick()
        return self._space.exists(key)

    async def set_field(self, key: str, field: str, value: str, ttl: int) -> None:
        self._space.tick()
        self._space.hset(key, field, value)
        self._space.expire(key, ttl)

    async def get_field(self, key: str, field: str) -> str | None:
        self._space.tick()
        return _str(self._space.hget(key, field))

    async def delete(self, *keys: str) -> None:
        self._space.tick()
        self._space.delete(*keys)


# The twins of the scripts in `bot.store.scripts`, in the same order and with the same
# names; see the comment above each script for its ARGV and reply. KEYS are the lock,
# conv and meta keys (RENEW's only the lock). ARGV indices here are 0-based, Lua's 1-based.


def _append(
    space: Keyspace, keys: Sequence[str], argv: Sequence[Arg], i: int, only_if_present: bool
) -> tuple[int, int, set[str]]:
    """The twin of `append`: the index after its arguments, the length, the images given."""
    ttl, keep, imgp = int(argv[i]), int(argv[i + 1]), _text(argv[i + 2])
    i += 3
    n = int(argv[i])
    turns = [_bulk(raw) for raw in argv[i + 1 : i + 1 + n]]
    i += n + 1
    length = 0
    if n > 0:
        length = space.rpush(keys[1], turns, only_if_present=only_if_present)
    if length > 0:
        space.ltrim(keys[1], -keep, -1)
        space.expire(keys[1], ttl)
        space.expire(keys[2], ttl)
    given = set()
    m = int(argv[i])
    i += 1
    for _ in range(m):
        sha = _text(argv[i])
        if length > 0:
            space.set(imgp + sha, _bulk(argv[i + 1]), ttl * 1000)
        given.add(sha)
        i += 2
    r = int(argv[i])
    i += 1
    for _ in range(r):
        if length > 0:
            space.expire(imgp + _text(argv[i]), ttl)
        i += 1
    return i, length, given


def _holds(space: Keyspace, lock: str, token: str) -> int:
    """The twin of `holds`: 0 no, 1 yes, 2 yes and its user turn is stored."""
    value = _str(space.get(lock))
    if value == token:
        return 1
    if value == token + "+":
        return 2
    return 0


def begin(space: Keyspace, keys: Sequence[str], argv: Sequence[Arg]) -> list[object]:
    """The twin of BEGIN."""
    lock, conv, meta = keys[0], keys[1], keys[2]
    token, lease, budget = _text(argv[0]), int(argv[1]), int(argv[3])
    held = _holds(space, lock, token)
    if held == 0:
        if not space.set(lock, token, lease, nx=True):
            return [0, space.pttl(lock)]
    else:
        space.pexpire(lock, lease)
    given: set[str]
    if held == 2:
        length, given = space.llen(conv), set()
    else:
        if _text(argv[2]) == "1" and not space.exists(conv):
            return [2]
        _, length, given = _append(space, keys, argv, 4, False)
        space.set(lock, token + "+", lease)
    everything = space.lrange(conv)
    imgp, ttl = _text(argv[6]), int(argv[4])
    kept: list[Text] = []
    images: list[Text] = []
    used, seen = 0, set()
    for turn in reversed(everything):
        if kept and used + turn.tokens > budget:
            break
        used += turn.tokens
        kept.append(turn.raw)
        for sha in turn.images:
            if sha not in given and sha not in seen:
                seen.add(sha)
                data = space.get(imgp + sha)
                if data is not None:
                    space.expire(imgp + sha, ttl)
                    images += (sha, data)
    model = space.hget(meta, "model")
    return [1, length, "" if model is None else model, kept, images]


def finish(space: Keyspace, keys: Sequence[str], argv: Sequence[Arg]) -> int:
    """The twin of FINISH."""
    if _holds(space, keys[0], _text(argv[0])) == 0:
        return 0
    _append(space, keys, argv, 1, True)
    space.delete(keys[0])
    return 1


def extend(space: Keyspace, keys: Sequence[str], argv: Sequence[Arg]) -> int:
    """The twin of EXTEND."""
    if _text(argv[0]) == "1" and space.exists(keys[1]):
        return 0
    _, length, _ = _append(space, keys, argv, 1, False)
    return length


def replace(space: Keyspace, keys: Sequence[str], argv: Sequence[Arg]) -> int:
    """The twin of REPLACE."""
    if _holds(space, keys[0], _text(argv[0])) == 0:
        return 0
    if _str(space.lindex(keys[1], -1)) != _text(argv[1]):
        return 0
    space.lset(keys[1], -1, _bulk(argv[2]))
    return 1


def renew(space: Keyspace, keys: Sequence[str], argv: Sequence[Arg]) -> int:
    """The twin of RENEW."""
    if _holds(space, keys[0], _text(argv[0])) > 0:
        return space.pexpire(keys[0], int(argv[1]))
    return 0


def _text(arg: Arg) -> str:
    """An argument as the string Lua sees (redis-py sends an int as its digits)."""
    return arg.decode() if isinstance(arg, bytes) else str(arg)


def _bulk(arg: Arg) -> Text:
    """An argument as it is stored: bytes and strings as given, an int as its digits."""
    return str(arg) if isinstance(arg, int) else arg


def _str(value: Text | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value
