"""Parley's own time for a turn with one tool call (a no-op tool), p50 and p99.

Sequential turns against the fake chat-completions server (no delays), measured three
ways in the same run:

- direct: the model requests of the turn sent with httpx and read to `[DONE]` (one for a
  plain turn, two for a tool turn: the tool call, then the answer);
- engine: `Engine.handle` with the Redis store, the real client and a sink;
- added: each turn's engine time minus its direct time: Parley's own time on top of
  the model's.

The tool turn's added time minus the plain turn's is what the tool loop itself costs
(within the noise of a shared machine).

    python -m bench.tools [--turns 300] [--redis-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from dataclasses import dataclass, field

import httpx
import redis.asyncio as aioredis

from bench.engine import Sink
from bench.stats import ms, percentile
from bot.conversation import ConversationKey, IncomingMessage
from bot.engine import Engine, EngineConfig
from bot.llm.client import ChatClient
from bot.settings import Limits
from bot.store import ConversationStore
from bot.tools import ToolBox
from bot.tools.schema import tool_from_function
from tests.fakes.llm_server import FakeLLM, FakeToolCall, Reply

TOOL_CALL = Reply(tool_calls=[FakeToolCall("noop", '{"value": "x"}')])
ANSWER = Reply("Done.")


async def noop(value: str) -> str:
    """Do nothing.

    Args:
        value: Anything.
    """
    return value


@dataclass
class Times:
    direct: list[float] = field(default_factory=list)
    engine: list[float] = field(default_factory=list)

    def added(self, q: float) -> float:
        """Percentile of each turn's engine time minus its own direct time."""
        return percentile([e - d for e, d in zip(self.engine, self.direct, strict=True)], q)


async def _direct(http: httpx.AsyncClient, url: str, requests: int) -> float:
    body = {"model": "gpt-5.5", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    began = time.perf_counter()
    for _ in range(requests):
        async with http.stream("POST", url, json=body) as response:
            async for _line in response.aiter_lines():
                pass
    return time.perf_counter() - began


async def run(turns: int, redis_url: str) -> dict[str, Times]:
    results = {"plain": Times(), "tool": Times()}
    async with FakeLLM(api_key=None) as fake:
        redis = aioredis.from_url(redis_url)
        limits = Limits()
        llm = ChatClient(api_key=None, base_url=fake.base_url)
        engine = Engine(
            store=ConversationStore(redis, limits, prefix="bench-tools:"),
            llm=llm,
            config=EngineConfig(system_prompt="Be brief.", limits=limits),
            toolbox=ToolBox([tool_from_function(noop)]),
        )
        http = httpx.AsyncClient(timeout=30)
        url = f"{fake.base_url}/v1/chat/completions"
        try:
            for turn in range(turns + 10):  # the first 10 warm up
                for kind, replies in (("plain", [ANSWER]), ("tool", [TOOL_CALL, ANSWER])):
                    fake.enqueue(*replies)
                    direct = await _direct(http, url, len(replies))
                    fake.enqueue(*replies)
                    key = ConversationKey("bench", "W", "C", f"{kind}-{turn}")
                    sink = Sink()
                    began = time.perf_counter()
                    await engine.handle(IncomingMessage(key=key, text="hi", author="a"), sink)
                    took = time.perf_counter() - began
                    if sink.failed is not None:
                        raise RuntimeError(sink.failed)
                    if turn >= 10:
                        results[kind].direct.append(direct)
                        results[kind].engine.append(took)
            calls = engine.metrics.registry.get_sample_value(
                "parley_tool_calls_total", {"tool": "noop", "outcome": "ok"}
            )
            if calls != turns + 10:
                raise RuntimeError(f"expected {turns + 10} no-op tool calls, counted {calls}")
        finally:
            await http.aclose()
            await llm.aclose()
            async for key in redis.scan_iter("bench-tools:*"):
                await redis.delete(key)
            await redis.aclose()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=300)
    parser.add_argument(
        "--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/14")
    )
    args = parser.parse_args()
    results = asyncio.run(run(args.turns, args.redis_url))
    print("| turn | direct p50 | engine p50 | added p50 | added p99 |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for kind, times in results.items():
        print(
            f"| {kind} | {ms(percentile(times.direct, 50))} | {ms(percentile(times.engine, 50))} "
            f"| {ms(times.added(50))} | {ms(times.added(99))} |"
        )
    over_plain = results["tool"].added(50) - results["plain"].added(50)
    print(
        f"\n(times in ms, {args.turns} turns each; a tool turn's added p50 minus a plain "
        f"turn's: {ms(over_plain)} ms)"
    )


if __name__ == "__main__":
    main()
