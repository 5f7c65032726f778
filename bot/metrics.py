"""Prometheus metrics for `/metrics`, kept in a registry per process (and per test)."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST as CONTENT_TYPE
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["CONTENT_TYPE", "Metrics"]

_LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.turns = Counter(
            "parley_turns",
            "Answers given, by platform and outcome",
            ["platform", "outcome"],
            registry=r,
        )
        self.errors = Counter(
            "parley_errors", "Failures shown to users, by type", ["type"], registry=r
        )
        self.retries = Counter(
            "parley_llm_retries", "Model API retries, by reason", ["reason"], registry=r
        )
        self.fallbacks = Counter(
            "parley_llm_fallbacks",
            "Switches to the fallback base URL or model",
            ["kind"],
            registry=r,
        )
        self.tokens = Counter("parley_tokens", "Tokens used, by kind", ["kind"], registry=r)
        self.first_token = Histogram(
            "parley_time_to_first_token_seconds",
            "From a message to the first answer text",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.total_time = Histogram(
            "parley_answer_seconds",
            "From a message to the final answer",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.intake_stopped = Counter(
            "parley_intake_stopped",
            "Events the intake did not pass to the engine, by reason",
            ["reason"],
            registry=r,
        )
        self.policy_denied = Counter(
            "parley_policy_denied",
            "Messages the policy did not allow, by the layer that said no",
            ["reason"],
            registry=r,
        )
        self.feedback = Counter(
            "parley_feedback",
            "Ratings people gave answers (a changed vote counts again)",
            ["rating", "model"],
            registry=r,
        )
        self.tool_calls = Counter(
            "parley_tool_calls",
            "Tool calls the model made, by tool and outcome (ok, error, timeout, denied, unknown)",
            ["tool", "outcome"],
            registry=r,
        )
        self.tool_rounds = Counter(
            "parley_tool_rounds", "Rounds of tool calls within answers", registry=r
        )
        self.neutralized = Counter(
            "parley_output_neutralized",
            "Mentions in answers made plain text and link previews withheld, by kind",
            ["kind"],
            registry=r,
        )
        self.in_flight = Gauge("parley_answers_in_flight", "Answers being written", registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)
