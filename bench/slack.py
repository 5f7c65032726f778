"""Slack end to end: ack latency and the bot's added time, at 1, 50 and 200 threads.

    python -m bench.slack [--store embedded|redis|both] [--levels 1,50,200] [--turns 3]
                          [--think 5] [--redis-url URL] [--profile DIR]

The bot runs as the real `python -m bot serve` in a process of its own (Slack HTTP mode:
slack-bolt with signature verification, the engine, Redis, the model client), so the
fakes and this load generator don't share its core. This process runs the fake Slack
Web API, the fake model (a fixed 200 ms to the first token) and posts signed events.
Per message it measures, side by side:

- ack: from sending the POST to /slack/events until the bot's HTTP response;
- added: from sending the POST until the final text reached Slack, minus the time the
  model spent on that request (its first byte in to its last byte out, measured at the
  fake model). That is all of the bot's own work before and after the model:
  verification, the intake and its Redis claim, the status, history, the Slack calls.

Two workloads, as in `bench.engine`: *burst*, where N mentions arrive at the same instant,
each starting a thread (the worst case: one core must take all N at once), and *paced*,
where N threads each get a mention and then follow-ups, each after a random think time.
Every key the run writes to Redis carries its own team id and is deleted at the end.

A mention in a channel reaches the bot as two events, as Slack sends it: `app_mention`
and its `message` twin, posted at the same instant; the bot must answer it once
(`--no-twins` sends the mention alone; ack times then cover half the requests). With
`--store both` (the default) the whole run is made twice, once with the embedded store
(no `REDIS_URL`) and once with Redis, and each row also gives:

- answered: the messages whose answer reached Slack, of those asked, and *dup* the
  answers posted more than once (both must be exact: N of N, 0);
- Slack calls/turn: the Web API calls the bot made over the level, per turn;
- CPU/turn: the bot process's user + system CPU time (`/proc/<pid>/stat`) over the
  level, divided by the turns answered: the load-independent cost of a turn;
- Redis trips/turn: the requests the Redis server read over the level
  (`INFO stats` `total_reads_processed`: one per command or script or pipeline sent,
  whatever a script runs inside), divided by the turns; n/a for the embedded store.
  Use a Redis of your own: every client of that server is counted.

`--profile DIR` runs the bot under cProfile and writes `DIR/<store>.prof` when it stops
(a measurement aid: the profiler itself costs CPU, so leave it off for the table).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import socket
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from types import SimpleNamespace

import aiohttp
import redis.asyncio as aioredis
from aiohttp import web

from bench.stats import ms, percentile, print_report, workload_args
from tests.fakes.llm_server import FakeLLM, Reply
from tests.fakes.slack_api import BOT_USER_ID, FakeSlack

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
FIRST_TOKEN = 0.2
FINAL_METHODS = ("chat.stopStream", "chat.update", "chat.postMessage", "chat.startStream")
READY_WITHIN = 30.0
PERSON = "U0BENCH"
IN_FLIGHT = "parley_answers_in_flight"


class TimedLLM(FakeLLM):
    """The fake model, noting when each request arrived and when its answer was sent."""

    def __init__(self) -> None:
        super().__init__(default=Reply(first_token_delay=FIRST_TOKEN))
        self.spans: dict[str, float] = {}  # question text -> seconds spent on it

    async def _handle(self, http: web.Request) -> web.StreamResponse:
        arrived = time.perf_counter()
        question = json.loads(await http.read())["messages"][-1]["content"]  # read() caches
        response = await super()._handle(http)
        self.spans[question] = time.perf_counter() - arrived
        return response


@dataclass
class Level:
    ack: list[float] = field(default_factory=list)
    added: list[float] = field(default_factory=list)
    asked: int = 0
    duplicates: int = 0
    cpu: float = 0.0  # seconds of the bot process's CPU time
    redis_reads: int | None = None  # requests the Redis server read; None: no Redis
    slack_calls: int = 0  # Web API calls the bot made


class Meter:
    """The bot process's CPU time and the Redis server's request count, over a level."""

    def __init__(self, pid: int, redis: aioredis.Redis | None) -> None:
        self._pid = pid
        self._redis = redis
        self._cpu = 0.0
        self._reads = 0

    def cpu_seconds(self) -> float:
        with open(f"/proc/{self._pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime

    async def reads(self) -> int:
        if self._redis is None:
            return 0
        return int((await self._redis.info("stats"))["total_reads_processed"])

    async def start(self) -> None:
        self._cpu = self.cpu_seconds()
        self._reads = await self.reads()

    async def stop(self, level: Level) -> None:
        level.cpu += self.cpu_seconds() - self._cpu
        if self._redis is not None:
            # The INFO that took the first count is read in this one's count.
            level.redis_reads = (level.redis_reads or 0) + await self.reads() - self._reads - 1


@dataclass
class Timing:
    """When a request's body left this process and its response's head came back.

    Taken from aiohttp's request tracing, not around the whole call: writing 400
    requests at once keeps this process busy for about 100 ms, which is this load
    generator's time, not the bot's.
    """

    sent: float = 0.0
    acked: float = 0.0


async def _body_sent(_: object, context: SimpleNamespace, __: object) -> None:
    timing = context.trace_request_ctx
    if isinstance(timing, Timing) and not timing.sent:
        timing.sent = time.perf_counter()


async def _response_head(_: object, context: SimpleNamespace, __: object) -> None:
    timing = context.trace_request_ctx
    if isinstance(timing, Timing):
        timing.acked = time.perf_counter()


def traced() -> aiohttp.TraceConfig:
    """The tracing that fills in each request's `Timing`."""
    config = aiohttp.TraceConfig()
    config.on_request_chunk_sent.append(_body_sent)
    config.on_request_end.append(_response_head)
    return config


@dataclass
class Asked:
    thread: str
    question: str
    sent: float
    ack: float
    since: int  # the fake's call count before the event was posted


@contextlib.asynccontextmanager
async def bot_process(env: dict[str, str], profile: str | None) -> AsyncIterator[int]:
    profiler = ["-m", "cProfile", "-o", profile] if profile else []
    process = await asyncio.create_subprocess_exec(
        sys.executable, *profiler, "-m", "bot", "serve", env={**os.environ, **env}
    )
    try:
        yield process.pid
    finally:
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), 15)
        except TimeoutError:
            process.kill()
            await process.wait()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def wait_ready(http: aiohttp.ClientSession, base: str) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + READY_WITHIN
    while loop.time() < end:
        with contextlib.suppress(aiohttp.ClientError):
            async with http.get(f"{base}/readyz") as response:
                if response.status == 200:
                    return
        await asyncio.sleep(0.1)
    raise SystemExit("bench: the bot did not become ready; is Redis running?")


@dataclass
class Bench:
    fake: FakeSlack
    llm: TimedLLM
    http: aiohttp.ClientSession
    url: str
    turns: int
    think: float
    meter: Meter
    twins: bool
    rng: random.Random = field(default_factory=lambda: random.Random(1))
    asked: int = 0
    # `finished`'s last count, and what it was counted at.
    _finished: tuple[object, Counter[str | None]] = field(default=(None, Counter()))

    async def ask(self, level: Level, channel: str, thread: str | None) -> Asked:
        """A question: a mention starting a thread (and its twin), or a follow-up in `thread`."""
        self.asked += 1
        level.asked += 1
        question = f"question {self.asked}"
        if thread is None:
            message, body = self.fake.person_says(
                channel, f"<@{BOT_USER_ID}> {question}", user=PERSON
            )
            twin = {**body["event"], "type": "message", "channel_type": "channel"}
            bodies = [body, self.fake.event(twin)] if self.twins else [body]
        else:
            message, body = self.fake.person_says(
                channel, question, user=PERSON, thread_ts=thread, kind="message"
            )
            bodies = [body]
        since = len(self.fake.calls)
        posted = await asyncio.gather(*(self.post(b, level) for b in bodies))
        sent, ack = posted[0]
        return Asked(thread or message.ts, question, sent, ack, since)

    async def post(self, body: dict[str, object], level: Level) -> tuple[float, float]:
        """Post one event; when its body was written and its ack time (every delivery's
        ack is counted in `level`)."""
        raw, headers = self.fake.signed_request(body)
        timing = Timing()
        async with self.http.post(
            self.url, data=raw, headers=headers, trace_request_ctx=timing
        ) as response:
            await response.read()
            if response.status != 200:
                raise SystemExit(f"bench: the bot answered the event with {response.status}")
        ack = timing.acked - timing.sent
        level.ack.append(ack)
        return timing.sent, ack

    async def settled(self) -> None:
        """The bot has no answer in flight: what it does after posting one (storing it,
        the usage record) is over, so the level's CPU and Redis counts include it."""
        metrics = self.url.replace("/slack/events", "/metrics")
        while True:
            async with self.http.get(metrics) as response:
                text = await response.text()
            if f"{IN_FLIGHT} 0.0" in text.splitlines():
                return
            await asyncio.sleep(0.01)

    def finished(self, channel: str) -> Counter[str | None]:
        """Finished bot messages per thread of `channel`, counted again only when the
        fake has seen a call since: hundreds of waiters poll every 10 ms, and a scan
        of every message for each of them kept this process's core busy, which delayed
        the very responses it times."""
        seen = (channel, len(self.fake.calls), len(self.fake.messages))
        if self._finished[0] != seen:
            messages = self.fake.bot_messages(channel)
            self._finished = (seen, Counter(m.thread_ts for m in messages if not m.streaming))
        return self._finished[1]

    async def answered(self, channel: str, threads: list[str], answers: int) -> None:
        """Each thread holds `answers` finished messages: streamed answers (all of them
        here, in threads) stop streaming once their final text is in place. (The status
        can't tell: a quick answer never shows one.)

        After two minutes the missing answers are left missing (the table says so).
        """

        def done() -> bool:
            finished = self.finished(channel)
            return all(finished[t] >= answers for t in threads)

        with contextlib.suppress(AssertionError, TimeoutError):
            await self.fake.wait_for(done, within=120, what=f"answers in {len(threads)} threads")

    def final_at(self, channel: str, asked: Asked) -> float:
        """When the answer to `asked` reached its final text (by the fake's clock)."""
        ours = {m.ts for m in self.fake.bot_messages(channel, asked.thread)}
        return max(
            call.at
            for call in self.fake.calls[asked.since :]
            if call.method in FINAL_METHODS
            and call.args.get("channel") == channel
            and (call.args.get("thread_ts") == asked.thread or call.args.get("ts") in ours)
        )

    def record(self, level: Level, channel: str, asked: Asked) -> None:
        """The answer's added time, if an answer (not an error message) reached Slack."""
        model = self.llm.spans.get(f"Bench: {asked.question}")
        text = self.fake.thread_text(channel, asked.thread)
        if model is None or "⚠️" in text:
            print(f"bench: no answer to {asked.question!r}: {text[-200:]!r}", file=sys.stderr)
            return
        with contextlib.suppress(ValueError):  # ValueError: no final text in Slack yet
            level.added.append(self.final_at(channel, asked) - asked.sent - model)

    def count_duplicates(self, level: Level, channel: str, threads: list[str]) -> None:
        """Messages posted beyond one per question asked (answers are one message each)."""
        for thread in threads:
            questions = sum(
                1
                for m in self.fake.messages
                if m.user == PERSON and m.channel == channel and thread in (m.ts, m.thread_ts)
            )
            posted = len(self.fake.bot_messages(channel, thread))
            level.duplicates += max(0, posted - questions)

    async def burst(self, n: int, rounds: int) -> Level:
        """`n` mentions at the same instant, each in a new thread, `rounds` times."""
        level = Level()
        for _ in range(rounds):
            channel = f"C{uuid.uuid4().hex[:8].upper()}"
            calls = len(self.fake.calls)
            await self.meter.start()
            asked = await asyncio.gather(*(self.ask(level, channel, None) for _ in range(n)))
            threads = [a.thread for a in asked]
            await self.answered(channel, threads, 1)
            await self.settled()
            await self.meter.stop(level)
            level.slack_calls += len(self.fake.calls) - calls
            for one in asked:
                self.record(level, channel, one)
            self.count_duplicates(level, channel, threads)
        return level

    async def paced(self, n: int) -> Level:
        """`n` threads: a mention, then follow-ups, each after a random think time."""
        level = Level()
        channel = f"C{uuid.uuid4().hex[:8].upper()}"
        threads: list[str] = []

        async def conversation() -> None:
            thread: str | None = None
            for turn in range(self.turns):
                await asyncio.sleep(self.rng.uniform(0, 2 * self.think))
                asked = await self.ask(level, channel, thread)
                if thread is None:
                    threads.append(asked.thread)
                thread = asked.thread
                await self.answered(channel, [thread], turn + 1)
                self.record(level, channel, asked)

        calls = len(self.fake.calls)
        await self.meter.start()
        await asyncio.gather(*(conversation() for _ in range(n)))
        await self.settled()
        await self.meter.stop(level)
        level.slack_calls += len(self.fake.calls) - calls
        self.count_duplicates(level, channel, threads)
        return level


def table(title: str, results: dict[str, dict[int, Level]]) -> str:
    rows = [
        f"| {title} | store | answered | dup | ack p50 | ack p99 | added p50 | added p99 "
        "| CPU/turn | Redis trips/turn | Slack calls/turn |",
        "| ---: | :--- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    levels = sorted({n for by_level in results.values() for n in by_level})
    for n in levels:
        for store, by_level in results.items():
            level = by_level[n]
            turns = len(level.added)
            cpu = f"{level.cpu / turns * 1000:.2f}" if turns else "-"
            trips = "n/a"
            if level.redis_reads is not None and turns:
                trips = f"{level.redis_reads / turns:.2f}"
            rows.append(
                f"| {n} | {store} | {turns}/{level.asked} | {level.duplicates} "
                f"| {ms(percentile(level.ack, 50))} | {ms(percentile(level.ack, 99))} "
                f"| {ms(percentile(level.added, 50))} | {ms(percentile(level.added, 99))} "
                f"| {cpu} | {trips} | {level.slack_calls / max(turns, 1):.2f} |"
            )
    return "\n".join(rows)


async def run(store: str, args: argparse.Namespace) -> dict[str, dict[int, Level]]:
    """Every level of both workloads against one bot process using `store`."""
    results: dict[str, dict[int, Level]] = {"burst": {}, "paced": {}}
    team = f"TB{uuid.uuid4().hex[:8].upper()}"
    llm = TimedLLM()
    levels, turns = args.levels, args.turns
    url = args.redis_url if store == "redis" else ""
    counter: aioredis.Redis | None = aioredis.from_url(url) if url else None
    async with FakeSlack(team_id=team) as fake, llm:
        fake.add_user(PERSON, "Bench")
        port = free_port()
        env = {
            "SLACK_BOT_TOKEN": fake.bot_token,
            "SLACK_SIGNING_SECRET": fake.signing_secret,
            "SLACK_API_URL": fake.api_url,
            "EVOLINK_BASE_URL": llm.base_url,
            "EVOLINK_FALLBACK_BASE_URL": llm.base_url,
            "EVOLINK_API_KEY": llm.api_key or "",
            "REDIS_URL": url,
            "BOT_TOOLS": "false",
            "PORT": str(port),
            "LOG_LEVEL": "WARNING",
        }
        profile_to = os.path.join(args.profile, f"{store}.prof") if args.profile else None
        try:
            async with (
                aiohttp.ClientSession(
                    connector=aiohttp.TCPConnector(limit=0), trace_configs=[traced()]
                ) as http,
                bot_process(env, profile_to) as pid,
            ):
                base = f"http://127.0.0.1:{port}"
                await wait_ready(http, base)
                meter = Meter(pid, counter)
                bench = Bench(
                    fake, llm, http, f"{base}/slack/events", turns, args.think, meter, args.twins
                )
                await bench.burst(max(levels), 1)  # warm-up: pools grown, caches filled
                for n in levels:
                    results["burst"][n] = await bench.burst(n, 50 if n == 1 else turns)
                    results["paced"][n] = await bench.paced(n)
        finally:
            if counter is not None:
                await _forget(counter, team)
                await counter.aclose()
    return results


async def _forget(client: aioredis.Redis, team: str) -> None:
    keys = [key async for key in client.scan_iter(match=f"*{team}*", count=1000)]
    if keys:
        await client.delete(*keys)


def _options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", choices=("embedded", "redis", "both"), default="both")
    parser.add_argument("--profile", help="a directory for the bot's cProfile output")
    parser.add_argument(
        "--no-twins", dest="twins", action="store_false", help="send mentions without twins"
    )


def main() -> None:
    args = workload_args(
        __doc__.splitlines()[0],
        "1,50,200",
        extra=_options,
    )
    stores = ["embedded", "redis"] if args.store == "both" else [args.store]
    by_store = {store: asyncio.run(run(store, args)) for store in stores}
    load = " / ".join(f"{value:.2f}" for value in os.getloadavg())
    print_report(
        table("burst: concurrent threads", {s: r["burst"] for s, r in by_store.items()}),
        table(
            f"paced ({args.think:g} s think): threads",
            {s: r["paced"] for s, r in by_store.items()},
        ),
        "times in ms, CPU in ms per turn; fake model: 200 ms to first token; one bot "
        f"process; {'each mention sent with its message twin' if args.twins else 'no twins'}; "
        f"load average after: {load}",
    )


if __name__ == "__main__":
    main()
