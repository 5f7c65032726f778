"""When and how one chat request tries again: backoff, fallback base URL, fallback model.

`RetryPlan` is pure bookkeeping (no I/O, no clock): the client asks it after every
failure and either gets a `Retry` (how long to sleep, what was switched) or the error
back, raised, when the request has to give up.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from bot.errors import APIConnectionError, APIStatusError, LLMError
from bot.llm.wire import suggested_model
from bot.settings import RetryPolicy

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
# Statuses that, once retries are used up, mean "this model is down": try another one.
MODEL_DOWN_STATUSES = frozenset({502, 503})

Switch = Literal["base_url", "model"]


class StreamCut(APIConnectionError):
    """The response ended (or the connection dropped) before the answer was complete."""

    kind = "stream_cut"


@dataclass(frozen=True, slots=True)
class Retry:
    delay: float
    reason: str  # the failed attempt's error kind, for logs and metrics
    switched: Switch | None = None


def model_unavailable(exc: LLMError) -> bool:
    """404, or 403 about the model: another model may well answer."""
    if not isinstance(exc, APIStatusError):
        return False
    if exc.status == 404:
        return True
    return exc.status == 403 and (exc.param == "model" or "model" in exc.api_message.lower())


class RetryPlan:
    """The retry state of one request.

    - 429/5xx/connection errors and timeouts: exponential backoff with jitter, or the
      server's `Retry-After` when it gave one; at most `max_attempts` per model and
      `total_budget` seconds of sleep per request.
    - `fallback_after` connection errors or 5xx in a row switch to the other base URL,
      once per request; the new base always gets at least one attempt.
    - A model that is unavailable (404, 403 on the model, 502/503 once retries are used
      up) is replaced by the model `fallback_suggestion` names, else the fallback model;
      each model is tried at most once per request, and gets fresh attempts.
    - A stream cut before anything was shown is retried once, at once.
    - Everything else (400, 401, 402, 413, ...) is raised as it is.
    """

    def __init__(
        self,
        *,
        model: str,
        base_url: str,
        other_base_url: str | None,
        fallback_model: str | None,
        policy: RetryPolicy,
        random: Callable[[], float],
    ) -> None:
        self.model = model
        self.base_url = base_url
        self._other_base_url = other_base_url
        self._fallback_model = fallback_model
        self._policy = policy
        self._random = random
        self._tried_models = {model}
        self._attempts = 0  # on the current model
        self._retries = 0  # backoff exponent
        self._failures_in_row = 0  # on the current base URL
        self._slept = 0.0
        self._cut_retried = False

    def start_attempt(self) -> None:
        self._attempts += 1

    @property
    def attempts(self) -> int:
        """Attempts made on the current model."""
        return self._attempts

    def after_failure(self, exc: LLMError) -> Retry:
        """What to do after `exc`; raises `exc` when the request has to give up."""
        if isinstance(exc, StreamCut):
            if self._cut_retried:
                raise exc
            self._cut_retried = True
            return Retry(0.0, exc.kind)
        if model_unavailable(exc):
            return self._switch_model(exc)
        status = exc.status if isinstance(exc, APIStatusError) else None
        if status is None and not isinstance(exc, APIConnectionError):
            raise exc
        if status is not None and status not in RETRY_STATUSES:
            raise exc
        server_fault = status is None or status >= 500
        self._failures_in_row = self._failures_in_row + 1 if server_fault else 0
        exhausted = self._attempts >= self._policy.max_attempts
        if (
            server_fault
            and self._other_base_url is not None
            and (exhausted or self._failures_in_row >= self._policy.fallback_after)
        ):
            self.base_url, self._other_base_url = self._other_base_url, None
            self._failures_in_row = 0
            self._attempts = min(self._attempts, self._policy.max_attempts - 1)
            return Retry(0.0, exc.kind, "base_url")  # another host: no reason to wait
        wanted = exc.retry_after if isinstance(exc, APIStatusError) else None
        delay = max(wanted or 0.0, self._backoff())
        if exhausted or self._slept + delay > self._policy.total_budget:
            if status in MODEL_DOWN_STATUSES:
                return self._switch_model(exc)
            raise exc
        self._slept += delay
        self._retries += 1
        return Retry(delay, exc.kind)

    def _backoff(self) -> float:
        ceiling = min(self._policy.max_delay, self._policy.base_delay * 2.0**self._retries)
        return ceiling * (0.5 + 0.5 * self._random())  # "equal jitter": never 0, never herds

    def _switch_model(self, exc: LLMError) -> Retry:
        suggestion = exc.fallback_suggestion if isinstance(exc, APIStatusError) else None
        for candidate in (suggested_model(suggestion), self._fallback_model):
            if candidate and candidate not in self._tried_models:
                self._tried_models.add(candidate)
                self.model = candidate
                self._attempts = 0
                return Retry(0.0, exc.kind, "model")
        raise exc
