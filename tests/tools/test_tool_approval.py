"""Approving a tool that changes something: two replicas (two Redis clients) on one Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from fnmatch import fnmatchcase

import pytest
import redis.asyncio as aioredis

from bot.llm.types import ToolCall
from bot.metrics import Metrics
from bot.tools import Tool, ToolBox, ToolCalls, ToolProgress
from bot.tools.approval import (
    ApprovalBoard,
    ApprovalRequest,
    BoardApproval,
    DecideOutcome,
    Decision,
)
from bot.tools.schema import tool_from_function
from tests.untrusted import tool_message, unwrapped


@pytest.fixture
async def other_replica(
    redis_url: str, redis_client: aioredis.Redis
) -> AsyncIterator[aioredis.Redis]:
    client: aioredis.Redis = aioredis.from_url(redis_url)
    yield client
    await client.aclose()


class Shown:
    """What the platform would show: each request, for the test to press a button on."""

    def __init__(self) -> None:
        self.requests: asyncio.Queue[ApprovalRequest] = asyncio.Queue()

    async def __call__(self, request: ApprovalRequest) -> None:
        await self.requests.put(request)


class Deletions:
    def __init__(self) -> None:
        self.deleted: list[str] = []

    async def delete_item(self, item: str) -> str:
        """Delete an item for good.

        Args:
            item: Which one.
        """
        self.deleted.append(item)
        return f"deleted {item}"

    async def peek(self, item: str) -> str:
        """Look at an item."""
        return f"looked at {item}"

    def box(self) -> ToolBox:
        delete = tool_from_function(self.delete_item)
        destructive = Tool(
            delete.name, delete.description, delete.parameters, delete.run, needs_approval=True
        )
        return ToolBox([destructive, tool_from_function(self.peek)])


def _calls(
    box: ToolBox, board: ApprovalBoard, shown: Shown, seen: list[ToolProgress] | None = None
) -> ToolCalls:
    gate = BoardApproval(board, conversation="slack:T:C:1", asker_id="U_ASKER", ask=shown)
    return ToolCalls(
        box,
        Metrics(),
        timeout=5,
        on_progress=(seen if seen is not None else []).append,
        approval=gate,
        needs_approval=lambda name: fnmatchcase(name, "peek*"),
    )


DELETE = ToolCall("c1", "delete_item", '{"item": "prod-db"}')


async def test_only_the_asker_or_an_admin_can_approve_from_another_replica(
    redis_client: aioredis.Redis, other_replica: aioredis.Redis
) -> None:
    waiting = ApprovalBoard(redis_client)
    elsewhere = ApprovalBoard(other_replica, admins=frozenset({"U_ADMIN"}))
    tools, shown, seen = Deletions(), Shown(), []
    calls = _calls(tools.box(), waiting, shown, seen)
    running = asyncio.create_task(calls.run_round([DELETE]))

    request = await shown.requests.get()
    assert (request.tool, request.asker_id, request.summary) == (
        "delete_item",
        "U_ASKER",
        'item="prod-db"',
    )
    assert seen[-1].state == "awaiting_approval" and tools.deleted == []
    assert await elsewhere.decide(request.id, "U_SOMEONE", approve=True) is DecideOutcome.FORBIDDEN
    assert not running.done()
    assert await elsewhere.decide(request.id, "U_ASKER", approve=True) is DecideOutcome.OK
    messages = await running
    assert messages == [tool_message("c1", "deleted prod-db", "delete_item")]
    assert tools.deleted == ["prod-db"]
    assert await elsewhere.decide(request.id, "U_ASKER", approve=False) is DecideOutcome.DECIDED

    # An admin may decide for the asker.
    running = asyncio.create_task(calls.run_round([DELETE]))
    request = await shown.requests.get()
    assert await elsewhere.decide(request.id, "U_ADMIN", approve=True) is DecideOutcome.OK
    await running
    assert tools.deleted == ["prod-db", "prod-db"]


async def test_a_denied_tool_does_not_run_and_the_model_is_told(
    redis_client: aioredis.Redis, other_replica: aioredis.Redis
) -> None:
    tools, shown = Deletions(), Shown()
    metrics = Metrics()
    calls = ToolCalls(
        tools.box(),
        metrics,
        timeout=5,
        on_progress=lambda _: None,
        approval=BoardApproval(
            ApprovalBoard(redis_client), conversation="c", asker_id="U_ASKER", ask=shown
        ),
    )
    running = asyncio.create_task(calls.run_round([DELETE]))
    request = await shown.requests.get()
    assert await ApprovalBoard(other_replica).decide(request.id, "U_ASKER", approve=False) is (
        DecideOutcome.OK
    )
    [message] = await running
    assert unwrapped(message["content"]).startswith("Error: delete_item changes something")
    assert tools.deleted == []
    rendered = metrics.render().decode()
    assert 'parley_tool_calls_total{outcome="denied",tool="delete_item"} 1.0' in rendered


async def test_no_answer_in_time_is_a_refusal_and_a_late_press_changes_nothing(
    redis_client: aioredis.Redis, other_replica: aioredis.Redis
) -> None:
    tools, shown = Deletions(), Shown()
    calls = _calls(tools.box(), ApprovalBoard(redis_client, timeout=0.3), shown)
    [message] = await calls.run_round([DELETE])
    assert unwrapped(message["content"]).startswith("Error: delete_item changes something")
    request = await shown.requests.get()
    late = await ApprovalBoard(other_replica).decide(request.id, "U_ASKER", approve=True)
    assert late is DecideOutcome.DECIDED
    assert tools.deleted == []
    assert await ApprovalBoard(other_replica).decide("no-such-id", "U_ASKER", approve=True) is (
        DecideOutcome.UNKNOWN
    )


async def test_tools_named_for_approval_need_it_and_none_run_without_a_gate(
    redis_client: aioredis.Redis,
) -> None:
    tools, shown = Deletions(), Shown()
    calls = _calls(tools.box(), ApprovalBoard(redis_client, timeout=0.2), shown)
    [peeked] = await calls.run_round([ToolCall("c3", "peek", '{"item": "x"}')])
    # matched "peek*"
    assert unwrapped(peeked["content"]).startswith("Error: peek changes something")
    ungated = ToolCalls(tools.box(), Metrics(), timeout=5, on_progress=lambda _: None)
    [refused] = await ungated.run_round([DELETE])
    assert unwrapped(refused["content"]).startswith("Error: delete_item changes something")
    [fine] = await ungated.run_round([ToolCall("c4", "peek", '{"item": "x"}')])
    assert unwrapped(fine["content"]) == "looked at x"
    assert tools.deleted == []


async def test_a_decision_racing_the_timeout_settles_exactly_once(
    redis_client: aioredis.Redis, other_replica: aioredis.Redis
) -> None:
    for _ in range(20):
        board = ApprovalBoard(redis_client, timeout=0.05)
        request = await board.open(conversation="c", asker_id="U", tool="t", summary="")
        waited, pressed = await asyncio.gather(
            board.wait(request), ApprovalBoard(other_replica).decide(request.id, "U", approve=True)
        )
        if pressed is DecideOutcome.OK:
            assert waited is Decision.APPROVED
        else:
            assert pressed is DecideOutcome.DECIDED and waited is Decision.EXPIRED
