"""Three `parley serve` processes on one Redis, fed by a round-robin dispatcher.

Each replica is a real subprocess in Slack HTTP mode, pointed at the fake Slack and the
fake model running in the test. The dispatcher posts signed Events API requests the way
a load balancer in front of the replicas would, including Slack's redeliveries landing on
another replica, and several messages of one thread arriving at once on different ones.

What must hold: every message is answered exactly once, in its own thread, and each
answer's request carries the thread's earlier turns in order. A replica killed mid-answer
leaves the others serving; a replica told to stop (SIGTERM) finishes its answer first.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import os
import re
import signal
import socket
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis

from tests.fakes.llm_server import FakeLLM, RecordedRequest, Reply
from tests.fakes.slack_api import BOT_TOKEN, BOT_USER_ID, SIGNING_SECRET, FakeSlack

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

ROOT = Path(__file__).resolve().parents[2]
REPLICAS = 3
SHUTDOWN_GRACE = 20.0
READY_WITHIN = 30.0
ANSWER_WITHIN = 30.0
TOKEN = re.compile(r"\bt\d+m\d+\b")  # each message's own marker, e.g. "t2m0"
# Variables a developer's shell may carry that must not leak into the replicas.
APP_PREFIXES = ("SLACK_", "DISCORD_", "EVOLINK_", "BOT_", "REDIS_", "PORT", "LOG_LEVEL")

Json = dict[str, Any]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Replica:
    name: str
    port: int
    process: asyncio.subprocess.Process
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.process.returncode is None


@dataclass
class Sent:
    """One person's message as the dispatcher sent it."""

    token: str
    channel: str
    thread: str  # the thread's root ts, where the answer must appear
    body: Json


@dataclass
class Cluster:
    slack: FakeSlack
    llm: FakeLLM
    redis_url: str
    workdir: Path
    http: aiohttp.ClientSession
    replicas: list[Replica] = field(default_factory=list)
    sent: list[Sent] = field(default_factory=list)
    _turn: Iterator[int] = field(default_factory=itertools.count)
    _numbers: Iterator[int] = field(default_factory=itertools.count)

    def env(self, port: int) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(APP_PREFIXES)}
        env.update(
            PYTHONPATH=str(ROOT),
            PORT=str(port),
            REDIS_URL=self.redis_url,
            SLACK_BOT_TOKEN=BOT_TOKEN,
            SLACK_SIGNING_SECRET=SIGNING_SECRET,
            SLACK_API_URL=self.slack.api_url,
            SLACK_FILE_HOSTS="127.0.0.1",
            EVOLINK_BASE_URL=self.llm.base_url,
            EVOLINK_FALLBACK_BASE_URL=self.llm.base_url,
            EVOLINK_API_KEY=self.llm.api_key or "",
            BOT_TOOLS="false",
            BOT_SHUTDOWN_GRACE=str(SHUTDOWN_GRACE),
            LOG_LEVEL="INFO",
        )
        return env

    async def start(self, count: int) -> None:
        for index in range(count):
            port = free_port()
            log = self.workdir / f"replica-{index}.log"
            with log.open("wb") as out:
                process = await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "bot",
                    "serve",
                    cwd=self.workdir,  # no .env of the developer's is read
                    env=self.env(port),
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=out,
                    stderr=asyncio.subprocess.STDOUT,
                )
            self.replicas.append(Replica(f"replica-{index}", port, process, log))
        await asyncio.gather(*(self.wait_ready(r) for r in self.replicas))

    async def wait_ready(self, replica: Replica) -> None:
        loop = asyncio.get_running_loop()
        end = loop.time() + READY_WITHIN
        while loop.time() < end:
            assert replica.running, f"{replica.name} exited:\n{replica.log.read_text()}"
            try:
                async with self.http.get(f"{replica.url}/readyz") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.1)
        raise AssertionError(f"{replica.name} never became ready:\n{replica.log.read_text()}")

    async def stop(self) -> None:
        for replica in self.replicas:
            if replica.running:
                replica.process.send_signal(signal.SIGTERM)
        for replica in self.replicas:
            try:
                await asyncio.wait_for(replica.process.wait(), SHUTDOWN_GRACE + 10)
            except TimeoutError:
                replica.process.kill()
                await replica.process.wait()

    def next_replica(self) -> Replica:
        """Round robin over the replicas still running, as a load balancer would."""
        alive = [r for r in self.replicas if r.running]
        return alive[next(self._turn) % len(alive)]

    def other_than(self, replica: Replica) -> Replica:
        """The running replica after `replica`, where a redelivery of its event lands."""
        alive = [r for r in self.replicas if r.running]
        return alive[(alive.index(replica) + 1) % len(alive)]

    def message(self, thread: int, channel: str, root: str | None = None) -> Sent:
        """A person's mention, new (a thread of its own) or in the thread `root`."""
        token = f"t{thread}m{next(self._numbers)}"
        user = f"U0USER{thread}"
        self.slack.add_user(user, f"Person {thread}")
        message, body = self.slack.person_says(
            channel, f"<@{BOT_USER_ID}> {token} what next?", user=user, thread_ts=root
        )
        sent = Sent(token, channel, root or message.ts, body)
        self.sent.append(sent)
        return sent

    async def post(self, sent: Sent, replica: Replica, *, retry_num: int | None = None) -> int:
        raw, headers = self.slack.signed_request(sent.body, retry_num=retry_num)
        async with self.http.post(f"{replica.url}/slack/events", data=raw, headers=headers) as resp:
            await resp.read()
            return resp.status

    async def deliver_twice(self, sents: list[Sent]) -> set[int]:
        """All at once: each event to the next replica in turn, and Slack's redelivery of
        it to the replica after that. The HTTP statuses seen."""
        deliveries = []
        for sent in sents:
            first = self.next_replica()
            deliveries.append(self.post(sent, first))
            deliveries.append(self.post(sent, self.other_than(first), retry_num=1))
        return set(await asyncio.gather(*deliveries))

    async def stopped_as_duplicates(self) -> int:
        """Events the running replicas' intakes stopped as already claimed (`/metrics`)."""
        total = 0.0
        for replica in self.replicas:
            if replica.running:
                async with self.http.get(f"{replica.url}/metrics") as resp:
                    text = await resp.text()
                total += sum(
                    float(line.rsplit(" ", 1)[1])
                    for line in text.splitlines()
                    if line.startswith('parley_intake_stopped_total{reason="duplicate"}')
                )
        return int(total)

    async def wait_duplicates_refused(self, count: int) -> None:
        """Until `count` redeliveries have been refused: none can still be answered late."""
        loop = asyncio.get_running_loop()
        end = loop.time() + ANSWER_WITHIN
        while (seen := await self.stopped_as_duplicates()) < count:
            assert loop.time() < end, f"{seen} of {count} redeliveries refused"
            await asyncio.sleep(0.05)

    # -- what the tests read ------------------------------------------------------------

    def requests_for(self, token: str) -> list[RecordedRequest]:
        return [r for r in self.llm.requests if token_of(r) == token]

    def answers_to(self, token: str) -> list[tuple[str, str | None]]:
        """(channel, thread) of every bot message that answers `token`, complete."""
        return [
            (m.channel, m.thread_ts)
            for m in self.slack.bot_messages()
            if m.text.startswith("You said:")
            and f" {token} what next?" in m.text
            and not m.streaming
        ]

    async def wait_answered(self, sents: list[Sent]) -> None:
        await self.slack.wait_for(
            lambda: all(self.answers_to(s.token) for s in sents),
            within=ANSWER_WITHIN,
            what=f"answers to {[s.token for s in sents]}",
        )

    async def wait_requested(self, sent: Sent) -> None:
        await self.slack.wait_for(
            lambda: bool(self.requests_for(sent.token)),
            within=ANSWER_WITHIN,
            what=f"the model request for {sent.token}",
        )


def token_of(request: RecordedRequest) -> str | None:
    found = TOKEN.search(request.last_user_text)
    return found.group() if found else None


def assert_answered_once_in_place(cluster: Cluster, sents: list[Sent]) -> None:
    for sent in sents:
        assert len(cluster.requests_for(sent.token)) == 1, f"{sent.token}: model asked twice"
        assert cluster.answers_to(sent.token) == [(sent.channel, sent.thread)], sent.token


def assert_histories_in_order(cluster: Cluster, sents: list[Sent]) -> None:
    """Each request of a thread carries that thread's earlier turns, oldest first."""
    tokens = {s.token for s in sents}
    threads: dict[str, list[RecordedRequest]] = collections.defaultdict(list)
    for request in cluster.llm.requests:
        token = token_of(request)
        if token in tokens:
            thread = next(s.thread for s in sents if s.token == token)
            threads[thread].append(request)
    assert threads
    for requests in threads.values():
        for k, request in enumerate(requests):
            messages = request.body["messages"]
            assert [m["role"] for m in messages] == [
                "system",
                *["user", "assistant"] * k,
                "user",
            ]
            earlier = requests[:k]
            users = [m["content"] for m in messages if m["role"] == "user"]
            answers = [m["content"] for m in messages if m["role"] == "assistant"]
            assert users[:-1] == [r.last_user_text for r in earlier]
            assert answers == [f"You said: {r.last_user_text}" for r in earlier]


@pytest.fixture
async def cluster(
    fake_llm: FakeLLM,
    redis_url: str,
    redis_client: aioredis.Redis,
    tmp_path: Path,
) -> AsyncIterator[Cluster]:
    async with FakeSlack() as slack, aiohttp.ClientSession() as http:
        cluster = Cluster(slack, fake_llm, redis_url, tmp_path, http)
        try:
            await cluster.start(REPLICAS)
            yield cluster
        finally:
            await cluster.stop()


async def test_every_event_is_answered_once_in_order(cluster: Cluster) -> None:
    # Answers stream slowly enough that replicas overlap on one thread's messages.
    cluster.llm.default = Reply(chunk_delay=0.02)
    roots = [cluster.message(i, f"C{i:03d}") for i in range(4)]
    # Each thread starts on one replica, and Slack redelivers the event to another.
    assert await cluster.deliver_twice(roots) == {200}
    await cluster.wait_answered(roots)

    # Three more messages in every thread at once; round robin puts a thread's three on
    # three different replicas, and each is also redelivered to yet another one.
    follow_ups = [
        cluster.message(i, root.channel, root.thread)
        for _ in range(3)
        for i, root in enumerate(roots)
    ]
    assert await cluster.deliver_twice(follow_ups) == {200}
    await cluster.wait_answered(follow_ups)

    # Every redelivery has been refused, so no late duplicate can still come.
    everything = roots + follow_ups
    await cluster.wait_duplicates_refused(len(everything))
    asked = [token_of(r) for r in cluster.llm.requests]
    assert sorted(asked, key=str) == sorted(s.token for s in everything)
    assert_answered_once_in_place(cluster, everything)
    assert_histories_in_order(cluster, everything)


async def test_a_replica_killed_mid_answer_leaves_the_others_serving(cluster: Cluster) -> None:
    cluster.llm.default = Reply(chunk_delay=0.2)  # a few seconds per answer
    victim, *survivors = cluster.replicas
    doomed = cluster.message(0, "C100")
    others = [cluster.message(i, f"C10{i}") for i in (1, 2)]
    statuses = await asyncio.gather(
        cluster.post(doomed, victim),
        *(cluster.post(sent, replica) for sent, replica in zip(others, survivors, strict=True)),
    )
    assert set(statuses) == {200}
    for sent in (doomed, *others):
        await cluster.wait_requested(sent)

    victim.process.kill()
    assert await victim.process.wait() == -signal.SIGKILL

    await cluster.wait_answered(others)
    # Threads keep going on the survivors, and new ones start there.
    cluster.llm.default = Reply(chunk_delay=0.01)
    more = [
        cluster.message(i, sent.channel, sent.thread)
        for i, sent in zip((1, 2), others, strict=True)
    ]
    more.append(cluster.message(3, "C103"))
    for sent in more:
        assert await cluster.post(sent, cluster.next_replica()) == 200
    await cluster.wait_answered(more)

    assert_answered_once_in_place(cluster, others + more)
    assert_histories_in_order(cluster, others + more)
    # The killed replica's message was asked once and nobody else picked it up.
    assert len(cluster.requests_for(doomed.token)) == 1
    assert cluster.answers_to(doomed.token) == []
    for replica in survivors:
        async with cluster.http.get(f"{replica.url}/readyz") as resp:
            assert resp.status == 200


async def test_sigterm_finishes_the_answer_in_flight_then_exits_0(cluster: Cluster) -> None:
    cluster.llm.default = Reply(chunk_delay=0.2)
    stopping = cluster.replicas[0]
    in_flight = cluster.message(0, "C200")
    assert await cluster.post(in_flight, stopping) == 200
    await cluster.wait_requested(in_flight)

    stopping.process.send_signal(signal.SIGTERM)
    # New work is refused while the answer finishes, so Slack redelivers it elsewhere.
    late = cluster.message(1, "C201")
    loop = asyncio.get_running_loop()
    end = loop.time() + 5
    while (status := await cluster.post(late, stopping)) == 200:
        assert loop.time() < end, "the stopping replica kept taking new events"
        late = cluster.message(1, "C201")
        await asyncio.sleep(0.05)
    assert status == 503
    assert await cluster.post(late, cluster.other_than(stopping), retry_num=1) == 200

    assert await asyncio.wait_for(stopping.process.wait(), SHUTDOWN_GRACE + 10) == 0
    # It exited only after the answer was complete in Slack.
    assert_answered_once_in_place(cluster, [in_flight])
    await cluster.wait_answered([late])
    assert_answered_once_in_place(cluster, [late])
    log = stopping.log.read_text()
    assert "Traceback" not in log, log
