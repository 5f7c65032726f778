"""The store on a real Redis Cluster and on a Sentinel-watched master, through a failover.

Each test starts its own servers on free loopback ports (nothing on disk but the
cluster's and sentinels' own config files, in a temporary directory) and kills them at
the end. Waits are on conditions, with long timeouts: a loaded 2-core machine is slow
to elect and sync.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from bot.conversation import ConversationKey, Role, TextPart, Turn
from bot.settings import Limits, Settings
from bot.store import ConversationStore, HeldTurn
from tests.redis_servers import RedisProcess, free_cluster_port, free_port, info, wait_until

pytestmark = pytest.mark.slow

KEY = ConversationKey("test", "team", "chan", "thread-1")
BIG_BUDGET = 1_000_000
MASTER = "parley"


def user(text: str) -> Turn:
    return Turn.make(Role.USER, [TextPart(text)])


class Servers:
    """Every process a test started, killed at the end whatever happens."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.processes: list[RedisProcess] = []

    def start(self, *args: str, port: int | None = None) -> RedisProcess:
        process = RedisProcess(port or free_port(), *args, workdir=self.workdir)
        self.processes.append(process)
        return process

    def stop(self) -> None:
        for process in self.processes:
            process.stop()


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Servers]:
    made = Servers(tmp_path)
    try:
        yield made
    finally:
        made.stop()


async def conversation_through_a_failover(
    settings: Settings, fail_over: Callable[[], None]
) -> None:
    """A store from `settings`; `fail_over` (blocking) runs during the second message."""
    store = ConversationStore.from_settings(settings)
    try:
        assert await store.ping()
        await conversation(store, lambda: asyncio.to_thread(fail_over))
    finally:
        await store.aclose()


async def conversation(store: ConversationStore, failover: Callable[[], Awaitable[None]]) -> None:
    """Three messages, each delivered twice; the failover happens during the second."""

    async def message(n: int, during: Callable[[], Awaitable[None]] | None = None) -> list[str]:
        claims = [await store.claim_event(f"Ev{n}") for _ in range(2)]
        assert claims == [True, False], "a message was claimed twice"
        held: HeldTurn
        async with store.turn(KEY, user(f"question {n}"), {}, BIG_BUDGET) as held:
            if during is not None:
                await during()  # the lock held and the question stored
            await held.finish(Turn.text(Role.ASSISTANT, f"answer {n}"))
        return [t.plain_text for t in held.history.turns]

    assert await message(1) == ["question 1"]
    assert await message(2, failover) == ["question 1", "answer 1", "question 2"]
    assert await message(3) == [
        "question 1", "answer 1", "question 2", "answer 2", "question 3",
    ]  # fmt: skip
    # The claims made before the failover still hold on the new master (asked of Redis:
    # the store itself remembers its own claims).
    assert not await ConversationStore(store.redis, Limits()).claim_event("Ev1")
    # The other calls reach the conversation's slot too.
    await store.set_model(KEY, "gpt-5.1")
    assert await store.get_model(KEY) == "gpt-5.1"
    assert await store.exists(KEY)
    await store.reset(KEY)
    assert not await store.exists(KEY)


# Cluster


def slot_owner(node: RedisProcess, slot: int) -> tuple[str, int]:
    """The node id and port of the master serving `slot`."""
    with node.client() as client:
        for start, end, master, *_ in client.execute_command("CLUSTER", "SLOTS"):
            if start <= slot <= end:
                port = int(master[1])
                node_id = master[2].decode()
                return node_id, port
    raise AssertionError(f"no master serves slot {slot}")


def start_cluster(servers: Servers) -> list[RedisProcess]:
    nodes = []
    for n in range(4):
        options = ("--cluster-enabled", "yes", "--cluster-node-timeout", "5000")
        nodes.append(
            servers.start(
                *options, "--cluster-config-file", f"nodes-{n}.conf", port=free_cluster_port()
            )
        )
    masters, spare = nodes[:3], nodes[3]
    addresses = [f"127.0.0.1:{m.port}" for m in masters]
    subprocess.run(
        ["redis-cli", "--cluster", "create", *addresses, "--cluster-yes"],
        check=True,
        stdout=subprocess.DEVNULL,
        timeout=120,
    )
    wait_until(
        lambda: all(info(n, "cluster info")["cluster_state"] == "ok" for n in masters),
        "the cluster is up",
    )
    return [*masters, spare]


async def test_a_cluster_keeps_a_conversation_through_a_master_failover(
    servers: Servers,
) -> None:
    *masters, spare = await asyncio.to_thread(start_cluster, servers)
    with masters[0].client() as client:
        slot = int(client.execute_command("CLUSTER", "KEYSLOT", "{" + KEY.id + "}"))
    owner_id, owner_port = slot_owner(masters[0], slot)

    def add_replica() -> None:
        with spare.client() as client:
            client.execute_command("CLUSTER", "MEET", "127.0.0.1", str(owner_port))
        wait_until(
            lambda: info(spare, "cluster info")["cluster_known_nodes"] == "4", "the spare meets"
        )
        with spare.client() as client:
            client.execute_command("CLUSTER", "REPLICATE", owner_id)
        wait_until(
            lambda: info(spare, "replication").get("master_link_status") == "up",
            "the replica is in sync",
        )

    await asyncio.to_thread(add_replica)
    urls = ",".join(f"redis://127.0.0.1:{m.port}" for m in masters)

    def fail_over() -> None:
        with spare.client() as client:
            client.execute_command("CLUSTER", "FAILOVER")
        wait_until(lambda: slot_owner(masters[0], slot)[1] == spare.port, "the replica leads")

    settings = Settings(_env_file=None, redis_url=urls, redis_mode="cluster")
    await conversation_through_a_failover(settings, fail_over)


# Sentinel


def sentinel_config(workdir: Path, port: int, master_port: int) -> Path:
    path = workdir / f"sentinel-{port}.conf"
    path.write_text(
        f"port {port}\n"
        "bind 127.0.0.1\n"
        f"sentinel monitor {MASTER} 127.0.0.1 {master_port} 2\n"
        f"sentinel down-after-milliseconds {MASTER} 2000\n"
        f"sentinel failover-timeout {MASTER} 10000\n"
    )
    return path


def start_sentinels(servers: Servers) -> tuple[RedisProcess, RedisProcess, list[RedisProcess]]:
    master = servers.start()
    replica = servers.start("--replicaof", "127.0.0.1", str(master.port))
    wait_until(
        lambda: info(replica, "replication").get("master_link_status") == "up",
        "the replica is in sync",
    )
    sentinels = []
    for _ in range(3):
        port = free_port()
        config = sentinel_config(servers.workdir, port, master.port)
        sentinels.append(servers.start(str(config), "--sentinel", port=port))

    def watched() -> bool:
        with sentinels[0].client() as client:
            replicas = client.execute_command("SENTINEL", "REPLICAS", MASTER)
            others = client.execute_command("SENTINEL", "SENTINELS", MASTER)
        return len(replicas) == 1 and len(others) == 2

    wait_until(watched, "the sentinels know the replica and each other")
    return master, replica, sentinels


async def test_a_sentinel_set_keeps_a_conversation_through_a_master_failover(
    servers: Servers,
) -> None:
    master, replica, sentinels = await asyncio.to_thread(start_sentinels, servers)
    urls = ",".join(f"redis://127.0.0.1:{s.port}" for s in sentinels)

    def fail_over() -> None:
        with master.client() as client:
            client.execute_command("WAIT", 1, 10_000)  # the replica has every write
        with sentinels[0].client() as client:
            client.execute_command("SENTINEL", "FAILOVER", MASTER)

        def promoted() -> bool:
            with sentinels[0].client() as client:
                _, port = client.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER)
            return int(port) == replica.port and info(replica, "replication")["role"] == "master"

        wait_until(promoted, "the replica is promoted")

    settings = Settings(
        _env_file=None, redis_url=urls, redis_mode="sentinel", redis_sentinel_master=MASTER
    )
    await conversation_through_a_failover(settings, fail_over)
