"""Slack end to end: ack latency and the bot's added time, at 1, 50 and 200 threads.

    python -m bench.slack [--levels 1,50,200] [--turns 3] [--think 5] [--redis-url URL]

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
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import socket
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
import redis.asyncio as aioredis
from aiohttp import web

from bench.stats import ms, percentile, print_report, workload_args
from tests.fakes.llm_server import FakeLLM, Reply
from tests.fakes.slack_api import BOT_USER_ID, FakeSlack

FIRST_TOKEN = 0.2
FINAL_METHODS = ("chat.stopStream", "chat.update", "chat.postMessage", "chat.startStream")
READY_WITHIN = 30.0
PERSON = "U0BENCH"


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


@dataclass
class Asked:
    thread: str
    question: str
    sent: float
    ack: float
    since: int  # the fake's call count before the event was posted


@contextlib.asynccontextmanager
async def bot_process(env: dict[str, str]) -> AsyncIterator[None]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "serve", env={**os.environ, **env}
    )
    try:
        yield
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
    rng: random.Random = field(default_factory=lambda: random.Random(1))
    asked: int = 0

    async def ask(self, channel: str, thread: str | None) -> Asked:
        """A question: a mention starting a thread, or a follow-up in `thread`."""
        self.asked += 1
        question = f"question {self.asked}"
        if thread is None:
            message, body = self.fake.person_says(
                channel, f"<@{BOT_USER_ID}> {question}", user=PERSON
            )
        else:
            message, body = self.fake.person_says(
                channel, question, user=PERSON, thread_ts=thread, kind="message"
            )
        raw, headers = self.fake.signed_request(body)
        since = len(self.fake.calls)
        sent = time.perf_counter()
        async with self.http.post(self.url, data=raw, headers=headers) as response:
            await response.read()
            if response.status != 200:
                raise SystemExit(f"bench: the bot answered the event with {response.status}")
        return Asked(thread or message.ts, question, sent, time.perf_counter() - sent, since)

    async def answered(self, channel: str, threads: list[str], answers: int) -> None:
        """The status is cleared last, once the answer's final text is in place."""

        def done() -> bool:
            return all(self.fake.statuses[(channel, t)].count("") >= answers for t in threads)

        await self.fake.wait_for(
            done, within=120, what=f"answers in {len(threads)} threads (see the bot log above)"
        )

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
        model = self.llm.spans.get(f"Bench: {asked.question}")
        if model is None:  # answered without asking the model: an error message
            text = self.fake.thread_text(channel, asked.thread)
            raise SystemExit(f"bench: the bot answered with an error: {text[-300:]}")
        level.ack.append(asked.ack)
        level.added.append(self.final_at(channel, asked) - asked.sent - model)

    async def burst(self, n: int, rounds: int) -> Level:
        """`n` mentions at the same instant, each in a new thread, `rounds` times."""
        level = Level()
        for _ in range(rounds):
            channel = f"C{uuid.uuid4().hex[:8].upper()}"
            asked = await asyncio.gather(*(self.ask(channel, None) for _ in range(n)))
            await self.answered(channel, [a.thread for a in asked], 1)
            for one in asked:
                self.record(level, channel, one)
        return level

    async def paced(self, n: int) -> Level:
        """`n` threads: a mention, then follow-ups, each after a random think time."""
        level = Level()
        channel = f"C{uuid.uuid4().hex[:8].upper()}"

        async def conversation() -> None:
            thread: str | None = None
            for turn in range(self.turns):
                await asyncio.sleep(self.rng.uniform(0, 2 * self.think))
                asked = await self.ask(channel, thread)
                thread = asked.thread
                await self.answered(channel, [thread], turn + 1)
                self.record(level, channel, asked)

        await asyncio.gather(*(conversation() for _ in range(n)))
        return level


def table(title: str, results: dict[int, Level]) -> str:
    rows = [
        f"| {title} | messages | ack p50 | ack p99 | added p50 | added p99 |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for n, level in results.items():
        rows.append(
            f"| {n} | {len(level.ack)} | {ms(percentile(level.ack, 50))} "
            f"| {ms(percentile(level.ack, 99))} | {ms(percentile(level.added, 50))} "
            f"| {ms(percentile(level.added, 99))} |"
        )
    return "\n".join(rows)


async def run(
    levels: list[int], turns: int, think: float, redis_url: str
) -> dict[str, dict[int, Level]]:
    results: dict[str, dict[int, Level]] = {"burst": {}, "paced": {}}
    team = f"TB{uuid.uuid4().hex[:8].upper()}"
    llm = TimedLLM()
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
            "REDIS_URL": redis_url,
            "BOT_TOOLS": "false",
            "PORT": str(port),
            "LOG_LEVEL": "WARNING",
        }
        async with (
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http,
            bot_process(env),
        ):
            base = f"http://127.0.0.1:{port}"
            await wait_ready(http, base)
            bench = Bench(fake, llm, http, f"{base}/slack/events", turns, think)
            await bench.burst(max(levels), 1)  # warm-up: connection pools grown, caches filled
            for n in levels:
                results["burst"][n] = await bench.burst(n, 50 if n == 1 else turns)
                results["paced"][n] = await bench.paced(n)
        await _forget(redis_url, team)
    return results


async def _forget(redis_url: str, team: str) -> None:
    client: aioredis.Redis = aioredis.from_url(redis_url)
    try:
        keys = [key async for key in client.scan_iter(match=f"*{team}*", count=1000)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


def main() -> None:
    args = workload_args(__doc__.splitlines()[0], "1,50,200")
    results = asyncio.run(run(args.levels, args.turns, args.think, args.redis_url))
    print_report(
        table("burst: concurrent threads", results["burst"]),
        table(f"paced ({args.think:g} s think): threads", results["paced"]),
        "times in ms; fake model: 200 ms to first token; one bot process",
    )


if __name__ == "__main__":
    main()
