"""The Redis client for `REDIS_MODE`: one node, a cluster, a sentinel-watched master, or
an embedded in-process server when `REDIS_URL` is unset (fakeredis, and the conversation
store's own keys in plain memory: `EmbeddedRedis`).

Every client keeps its connections (a pool that queues a burst for a connection, for a
bounded time, instead of failing it) and opens each one with no extra round trips: no
HELLO (RESP2 rather than redis-py's default RESP3), no CLIENT SETNAME, no CLIENT SETINFO
(which also spares redis-py a package-metadata lookup per connection), no health-check
PING (a pooled connection that went stale fails its first command with a connection
error, which the one retry answers on a new connection). Only SELECT, for a database
other than 0, is sent once per new connection.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from fakeredis import FakeAsyncRedis, FakeServer
from redis.asyncio import BlockingConnectionPool
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from bot.settings import Settings
from bot.store.memory import Keyspace

log = logging.getLogger(__name__)

Client = aioredis.Redis | RedisCluster

# A dead Redis must fail a request within seconds, not hang it: short connect and socket
# timeouts, and one quick retry, only on connection errors, which is what reconnects a
# pooled connection after a Redis restart. A timed-out write is not retried: it may have
# been applied, and replaying an RPUSH would duplicate a turn.
CONNECT_TIMEOUT = 2.0
SOCKET_TIMEOUT = 5.0
# redis-py's pools refuse a 101st concurrent command ("Too many connections"); a burst
# of turns must queue for a connection instead, for a bounded time.
MAX_CONNECTIONS = 512
POOL_WAIT = 10.0


class EmbeddedRedis(FakeAsyncRedis):
    """The embedded server's client: fakeredis, which carries the conversation keyspace.

    Every part that takes the store's client (usage, quotas, feedback, approvals, the
    document cache, admin) uses fakeredis through it; the conversation store keeps its
    own keys in `conversations` instead (`bot.store.memory` says why). Clients made on one
    `FakeServer` and one `Keyspace` are processes sharing one server.
    """

    def __init__(self, *, server: FakeServer, conversations: Keyspace, **options: Any) -> None:
        super().__init__(server=server, **options)
        self.conversations = conversations


class _BlockingSentinelPool(SentinelConnectionPool, BlockingConnectionPool):
    """The sentinel-watched master's pool, queueing like the single-node one."""


def _connection_options() -> dict[str, Any]:
    return {
        "socket_connect_timeout": CONNECT_TIMEOUT,
        "socket_timeout": SOCKET_TIMEOUT,
        "retry": Retry(
            ExponentialWithJitterBackoff(base=0.05, cap=0.5),
            retries=1,
            supported_errors=(RedisConnectionError,),
        ),
        "driver_info": None,
        "protocol": 2,
    }


def _nodes(urls: str) -> list[tuple[str, int]]:
    """`host:port` pairs from a comma-separated list of `redis://host:port` URLs."""
    nodes = []
    for url in urls.split(","):
        parts = urlsplit(url.strip() if "//" in url else f"redis://{url.strip()}")
        nodes.append((parts.hostname or "127.0.0.1", parts.port or 6379))
    return nodes


def connect(settings: Settings) -> tuple[Client, list[aioredis.Redis]]:
    """A client for `settings.redis_mode`, or an embedded server without `REDIS_URL`.

    Also the clients it uses on the side (the sentinels), to be closed with it.
    """
    url = settings.redis_url
    if not url:
        log.warning(
            "REDIS_URL is not set: using an in-process store; conversation history is "
            "not kept across restarts or shared between replicas"
        )
        embedded = EmbeddedRedis(
            server=FakeServer(),
            conversations=Keyspace(),
            connection_pool_class=BlockingConnectionPool,
            max_connections=MAX_CONNECTIONS,
            timeout=POOL_WAIT,
            protocol=2,
        )
        # fakeredis hands its pool only some of the options: without this, each new
        # connection would look up redis-py's version and send CLIENT SETINFO twice.
        embedded.connection_pool.connection_kwargs["driver_info"] = None
        return embedded, []
    if settings.redis_mode == "cluster":
        first = urlsplit(url.split(",")[0].strip())
        cluster = RedisCluster(
            startup_nodes=[ClusterNode(host, port) for host, port in _nodes(url)],
            max_connections=MAX_CONNECTIONS,
            username=first.username,
            password=first.password,
            ssl=first.scheme == "rediss",
            **_connection_options(),
        )
        return cluster, []
    if settings.redis_mode == "sentinel":
        first = urlsplit(url.split(",")[0].strip())
        sentinel = Sentinel(  # type: ignore[no-untyped-call]
            _nodes(url),
            sentinel_kwargs={
                "socket_connect_timeout": CONNECT_TIMEOUT,
                "socket_timeout": SOCKET_TIMEOUT,
                "driver_info": None,
                "protocol": 2,
            },
            username=first.username,
            password=first.password,
            db=int(first.path.strip("/") or 0),
            **_connection_options(),
        )
        master: aioredis.Redis = sentinel.master_for(
            settings.redis_sentinel_master,
            connection_pool_class=_BlockingSentinelPool,
            max_connections=MAX_CONNECTIONS,
            timeout=POOL_WAIT,
        )
        return master, list(sentinel.sentinels)
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=MAX_CONNECTIONS,
        timeout=POOL_WAIT,
        **_connection_options(),
    )
    return aioredis.Redis.from_pool(pool), []
