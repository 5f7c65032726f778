"""Who the bot is, from one `auth.test` per process, for bolt and the platform alike.

Bolt's default single-workspace authorization calls `auth.test` for every request that
arrives before its first answer: the first burst of 200 mentions after a start sent about
140 of them. `OneAuthTest` is passed to the `AsyncApp` as its `authorize`; the platform's
start-up check (which gates readiness) asks the same object, and concurrent callers wait
for the one call in flight. A failed call is not remembered, so the next caller retries.
"""

from __future__ import annotations

import asyncio

from slack_bolt.authorization import AuthorizeResult
from slack_bolt.authorization.async_authorize import AsyncAuthorize
from slack_bolt.context.async_context import AsyncBoltContext

# The function bolt's own single-workspace authorization builds its result with, so
# listeners see exactly the context they did before (bot_user_id, bot_id, team_id, token).
from slack_bolt.middleware.authorization.internals import _to_authorize_result
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse


class OneAuthTest(AsyncAuthorize):
    """Bolt's `authorize` for a single workspace, with one `auth.test` per process."""

    def __init__(self, client: AsyncWebClient) -> None:
        self._client = client
        self._answer: AsyncSlackResponse | None = None
        self._asking: asyncio.Task[AsyncSlackResponse] | None = None
        self.bot_user_id: str | None = None
        """The bot's user id once `auth.test` has answered, else None."""

    async def auth_test(self) -> AsyncSlackResponse:
        """`auth.test`'s answer: the one this process got, or the call now in flight.

        Raises what the call raised (`SlackApiError` for Slack's refusal), to every caller
        waiting on that call; the next call asks Slack again.
        """
        if self._answer is not None:
            return self._answer
        if self._asking is None:
            self._asking = asyncio.create_task(self._ask())
        # A waiter that is cancelled (its request's connection closed) leaves the call
        # running for the others.
        return await asyncio.shield(self._asking)

    async def _ask(self) -> AsyncSlackResponse:
        try:
            answer = await self._client.auth_test()
        finally:
            self._asking = None
        self.bot_user_id = _to_authorize_result(answer, self._client.token, None).bot_user_id
        self._answer = answer
        return answer

    async def __call__(
        self,
        *,
        context: AsyncBoltContext,
        enterprise_id: str | None,
        team_id: str | None,
        user_id: str | None,
        actor_enterprise_id: str | None = None,
        actor_team_id: str | None = None,
        actor_user_id: str | None = None,
    ) -> AuthorizeResult:
        """The request's authorization: the bot's identity, and `user_id` from the request."""
        return _to_authorize_result(await self.auth_test(), self._client.token, user_id)
