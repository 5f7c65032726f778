"""The engine's added overhead over a bare streaming request, side by side in one run.

For each concurrency level, the same conversations are answered two ways against the
fake chat-completions server (a fixed 200 ms to the first token), which runs in a process
of its own as a real model API would, so it does not compete with the bot for its core:

- direct: one streaming POST per turn with httpx, read to `[DONE]`;
- engine: `Engine.handle` with the real store on Redis (its own client settings), the
  real client, a sink that takes every update, history growing turn by turn, each
  message as the intake hands it over (its event claimed there, so not counted here).

The engine table also gives the Redis round trips per turn, counted on the client's
connections (one per command, script or pipeline sent, connection set-up included).

Two workloads: *burst*, where all N conversations send a turn at the same instant (the
worst case: one core must start N turns at once), and *paced*, where N conversations each
wait a random think time before each message, as people do, with direct and engine turns
interleaved in the same conversations so both are measured under the same load. Each
table gives p50/p99 of both, the difference (the engine's added time) and turns/s.

    python -m bench.engine [--levels 1,50,500] [--turns 3] [--think 5] [--redis-url URL]

`--redis-url ''` runs the engine on the embedded in-process store instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import socket
import sys
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field

import httpx
import redis.asyncio as aioredis
from httpx_aiohttp import AiohttpTransport

from bench.stats import ms, percentile, print_report, workload_args
from bot.conversation import ConversationKey, IncomingMessage
from bot.engine import Engine, EngineConfig
from bot.llm.client import ChatClient
from bot.reply.audience import Audience
from bot.reply.sink import FinalReply
from bot.settings import ConnectionLimits, Limits, Settings, Timeouts
from bot.store import ConversationStore
from bot.store.client import connect

FIRST_TOKEN = 0.2


@contextlib.asynccontextmanager
async def fake_model() -> AsyncIterator[str]:
    """The fake chat-completions server in its own process; yields its base URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.fakes.llm_server",
        "--port",
        str(port),
        "--api-key",
        "",
        "--first-token-delay",
        str(FIRST_TOKEN),
        "--chunk-delay",
        "0",
        stdout=asyncio.subprocess.DEVNULL,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient() as http:
            for _ in range(100):
                try:
                    await http.get(base_url)
                    break
                except httpx.TransportError:
                    await asyncio.sleep(0.1)
        yield base_url
    finally:
        process.terminate()
        await process.wait()


@dataclass
class Sink:
    """Takes every update, as a platform with no rate limit would."""

    min_update_interval: float = 0.0
    first_update_delay: float = 0.0
    updates: int = 0
    finished: float = 0.0
    failed: str | None = None

    async def start(self) -> None:
        return None

    def meet(self, audience: Audience) -> None:
        return None

    async def progress(self, status: str) -> None:
        return None

    async def update(self, text: str) -> None:
        self.updates += 1

    async def finish(self, reply: FinalReply) -> None:
        self.finished = time.perf_counter()

    async def fail(self, message: str) -> None:
        self.failed = message
        self.finished = time.perf_counter()


class RoundTrips:
    """Counts what a client's connections send: one per round trip."""

    sent = 0

    @classmethod
    def count(cls, client: aioredis.Redis) -> None:
        pool = client.connection_pool
        base = pool.connection_class

        class Counting(base):  # type: ignore[valid-type,misc]
            async def send_packed_command(
                self, command: bytes | str | Iterable[bytes], check_health: bool = True
            ) -> None:
                cls.sent += 1
                await super().send_packed_command(command, check_health)

        pool.connection_class = Counting


@dataclass
class Level:
    direct: list[float] = field(default_factory=list)
    engine: list[float] = field(default_factory=list)
    engine_wall: float = 0.0
    engine_turns: int = 0
    redis_trips: int = 0


async def _direct_turn(http: httpx.AsyncClient, url: str, text: str) -> float:
    body = {"model": "gpt-5.5", "stream": True, "messages": [{"role": "user", "content": text}]}
    started = time.perf_counter()
    async with http.stream("POST", url, json=body) as response:
        async for line in response.aiter_lines():
            if line == "data: [DONE]":
                break
            if line.startswith("data: "):
                json.loads(line[6:])
    return time.perf_counter() - started


async def _engine_turn(engine: Engine, key: ConversationKey, text: str) -> float:
    sink = Sink()
    started = time.perf_counter()
    event = f"{key.id}:{time.perf_counter_ns()}"
    await engine.handle(IncomingMessage(key=key, text=text, author="bench", event_id=event), sink)
    if sink.failed:
        raise RuntimeError(f"engine turn failed: {sink.failed}")
    return sink.finished - started


@dataclass
class Bench:
    engine: Engine
    http: httpx.AsyncClient
    url: str
    turns: int
    think: float
    rng: random.Random = field(default_factory=lambda: random.Random(1))

    async def burst(self, n: int) -> Level:
        """All `n` conversations send a turn at the same instant, `turns` times (more for
        small `n`, so every row has at least 30 samples)."""
        level = Level()
        sent = RoundTrips.sent
        keys = [ConversationKey("bench", "burst", str(n), str(i)) for i in range(n)]
        for turn in range(max(self.turns, -(-30 // n))):
            text = f"question {turn}: how does this scale?"
            level.direct += await asyncio.gather(
                *(_direct_turn(self.http, self.url, text) for _ in keys)
            )
            began = time.perf_counter()
            level.engine += await asyncio.gather(
                *(_engine_turn(self.engine, key, text) for key in keys)
            )
            level.engine_wall += time.perf_counter() - began
            level.engine_turns += n
        level.redis_trips = RoundTrips.sent - sent
        return level

    async def paced(self, n: int) -> Level:
        """`n` conversations whose people pause a random think time before each message.

        Each conversation alternates a direct turn and an engine turn, so both are
        measured under the same load at the same moments.
        """
        level = Level()
        sent = RoundTrips.sent

        async def conversation(i: int) -> None:
            key = ConversationKey("bench", "paced", str(n), str(i))
            for turn in range(self.turns):
                text = f"question {turn}: how does this scale?"
                await asyncio.sleep(self.rng.uniform(0, 2 * self.think))
                level.direct.append(await _direct_turn(self.http, self.url, text))
                await asyncio.sleep(self.rng.uniform(0, 2 * self.think))
                level.engine.append(await _engine_turn(self.engine, key, text))
                level.engine_turns += 1

        began = time.perf_counter()
        await asyncio.gather(*(conversation(i) for i in range(n)))
        level.engine_wall = time.perf_counter() - began
        level.redis_trips = RoundTrips.sent - sent
        return level


async def run(
    levels: list[int], turns: int, think: float, redis_url: str
) -> dict[str, dict[int, Level]]:
    results: dict[str, dict[int, Level]] = {"burst": {}, "paced": {}}
    async with fake_model() as base_url:
        redis, _ = connect(Settings(_env_file=None, redis_url=redis_url or None))  # type: ignore[call-arg]
        assert isinstance(redis, aioredis.Redis)
        RoundTrips.count(redis)
        limits = Limits()
        pool = ConnectionLimits(max_connections=1000, max_keepalive=1000)
        llm = ChatClient(api_key=None, base_url=base_url, limits=pool, timeouts=Timeouts())
        engine = Engine(
            store=ConversationStore(redis, limits, prefix="bench:"),
            llm=llm,
            config=EngineConfig(system_prompt="Be brief.", limits=limits, tools=False),
        )
        http = httpx.AsyncClient(
            transport=AiohttpTransport(limits=httpx.Limits(max_connections=1000)), timeout=60
        )
        bench = Bench(engine, http, f"{base_url}/v1/chat/completions", turns, think)
        try:
            await _direct_turn(http, bench.url, "warm up")
            for n in levels:
                results["burst"][n] = await bench.burst(n)
                results["paced"][n] = await bench.paced(n)
        finally:
            await http.aclose()
            await llm.aclose()
            async for key in redis.scan_iter("bench:*"):
                await redis.delete(key)
            await redis.aclose()
    return results


def table(mode: str, results: dict[int, Level]) -> str:
    rows = [
        f"| {mode} | direct p50 | direct p99 | engine p50 | engine p99 "
        "| added p50 | added p99 | engine turns/s | Redis trips/turn |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for n, level in results.items():
        d50, d99 = percentile(level.direct, 50), percentile(level.direct, 99)
        e50, e99 = percentile(level.engine, 50), percentile(level.engine, 99)
        rate = level.engine_turns / level.engine_wall if level.engine_wall else 0.0
        trips = level.redis_trips / level.engine_turns if level.engine_turns else 0.0
        rows.append(
            f"| {n} | {ms(d50)} | {ms(d99)} | {ms(e50)} | {ms(e99)} "
            f"| {ms(e50 - d50)} | {ms(e99 - d99)} | {rate:.0f} | {trips:.2f} |"
        )
    return "\n".join(rows)


def main() -> None:
    args = workload_args(__doc__.splitlines()[0], "1,50,500")
    results = asyncio.run(run(args.levels, args.turns, args.think, args.redis_url))
    print_report(
        table("burst: concurrent", results["burst"]),
        table(f"paced ({args.think:g} s think): conversations", results["paced"]),
        "times in ms; fake model in its own process: 200 ms to first token",
    )


if __name__ == "__main__":
    main()
