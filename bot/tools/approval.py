"""Approving a tool that changes something, across replicas, on Redis.

The replica running the answer opens a request (a hash under a random id, living as long
as the wait) and waits on a list with short BLPOPs. A decision may arrive at any replica
(the platform delivers the button press wherever it likes): `decide` checks that the
person is the asker or an admin, records the decision once, and pushes it to the list,
all in one Lua script, so two presses or a press racing the timeout settle exactly once.
Ten minutes without a decision counts as a refusal.
"""

from __future__ import annotations

import logging
import secrets
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from bot.llm.types import ToolCall
from bot.store.client import Client
from bot.tools.base import Tool

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 600.0
_POLL = 1.0  # one BLPOP's wait: well under the store's socket timeout

# KEYS: request hash, decision list. ARGV: user, decision, may decide for anyone (0/1), ttl.
_DECIDE = """
local asker = redis.call('HGET', KEYS[1], 'asker')
if not asker then return 'unknown' end
if redis.call('HEXISTS', KEYS[1], 'decision') == 1 then return 'decided' end
if ARGV[3] ~= '1' and asker ~= ARGV[1] then return 'forbidden' end
redis.call('HSET', KEYS[1], 'decision', ARGV[2], 'decided_by', ARGV[1])
redis.call('RPUSH', KEYS[2], ARGV[2])
redis.call('EXPIRE', KEYS[2], ARGV[4])
return 'ok'
"""

# KEYS: request hash. The waiter gave up: expire it unless a decision got there first.
_EXPIRE = """
if redis.call('HSETNX', KEYS[1], 'decision', 'expired') == 1 then return 'expired' end
return redis.call('HGET', KEYS[1], 'decision')
"""


class Decision(StrEnum):
    APPROVED = "approved"
    DENIED = "denied"
    EXPIRED = "expired"


class DecideOutcome(StrEnum):
    OK = "ok"
    FORBIDDEN = "forbidden"  # neither the asker nor an admin
    DECIDED = "decided"  # someone decided already (or it expired)
    UNKNOWN = "unknown"  # no such request, or long gone


@dataclass(frozen=True, slots=True)
class ApprovalRequest:
    id: str
    conversation: str
    asker_id: str
    tool: str
    summary: str  # the call's arguments in one line, for the buttons' message

    def question(self, asker: str) -> str:
        """What the buttons' message asks; `asker` is how the platform names the asker."""
        return (
            f"{asker}, I'd like to use `{self.tool}` ({self.summary}), which changes "
            "something. Shall I?"
        )


class ApprovalBoard:
    """Requests for approval and their decisions, shared by every replica on one Redis."""

    def __init__(
        self,
        client: Client,
        *,
        admins: frozenset[str] = frozenset(),
        timeout: float = DEFAULT_TIMEOUT,
        prefix: str = "parley:approval:",
    ) -> None:
        self._redis = client
        self._admins = admins
        self._timeout = timeout
        self._prefix = prefix
        self._decide = client.register_script(_DECIDE)
        self._expire = client.register_script(_EXPIRE)

    async def open(
        self, *, conversation: str, asker_id: str, tool: str, summary: str
    ) -> ApprovalRequest:
        request = ApprovalRequest(secrets.token_urlsafe(16), conversation, asker_id, tool, summary)
        key = self._key(request.id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(
                key,
                mapping={
                    "conversation": conversation,
                    "asker": asker_id,
                    "tool": tool,
                    "summary": summary,
                },
            )
            pipe.expire(key, self._ttl)
            await pipe.execute()
        return request

    async def wait(self, request: ApprovalRequest) -> Decision:
        """The decision, or EXPIRED after the timeout (a refusal)."""
        deadline = time.monotonic() + self._timeout
        while (left := deadline - time.monotonic()) > 0:
            popped = await self._redis.blpop([self._list(request.id)], timeout=min(_POLL, left))
            if popped is not None:
                return Decision(_text(popped[1]))
        settled = await self._expire(keys=[self._key(request.id)])
        return Decision(_text(settled)) if settled else Decision.EXPIRED

    async def decide(
        self, request_id: str, user_id: str, *, approve: bool, admin: bool = False
    ) -> DecideOutcome:
        """Record a press of Approve or Deny, from whichever replica received it; `admin`
        (or the board's own admins) may decide for anyone."""
        decision = Decision.APPROVED if approve else Decision.DENIED
        anyone = admin or user_id in self._admins
        outcome = await self._decide(
            keys=[self._key(request_id), self._list(request_id)],
            args=[user_id, decision.value, "1" if anyone else "0", self._ttl],
        )
        return DecideOutcome(_text(outcome))

    @property
    def _ttl(self) -> int:
        return int(self._timeout) + 60

    def _key(self, request_id: str) -> str:
        return f"{self._prefix}{request_id}"

    def _list(self, request_id: str) -> str:
        return f"{self._prefix}{request_id}:decision"


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class AskForApproval(Protocol):
    """Shows the request to the asker with Approve and Deny (the platform's buttons)."""

    async def __call__(self, request: ApprovalRequest) -> None: ...


class BoardApproval:
    """An `ApprovalGate` for one answer: opens a request on the board, has the platform
    show it, and waits for the decision."""

    def __init__(
        self, board: ApprovalBoard, *, conversation: str, asker_id: str, ask: AskForApproval
    ) -> None:
        self._board = board
        self._conversation = conversation
        self._asker_id = asker_id
        self._ask = ask

    async def __call__(self, call: ToolCall, tool: Tool, summary: str) -> bool:
        request = await self._board.open(
            conversation=self._conversation,
            asker_id=self._asker_id,
            tool=tool.name,
            summary=summary,
        )
        await self._ask(request)
        decision = await self._board.wait(request)
        log.info("approval of %s in %s: %s", tool.name, self._conversation, decision.value)
        return decision is Decision.APPROVED
