"""The slack-bolt `AsyncApp`: built-in request checks, the ack-time gate, the listeners."""

from __future__ import annotations

import logging

from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.authorization import OneAuthTest
from adapters.slack.feedback import COMMENT_VIEW, FEEDBACK_ACTION
from adapters.slack.gate import AckGate
from adapters.slack.handlers import Handlers


class _ClientOverToken(logging.Filter):
    """Bolt reads SLACK_BOT_TOKEN from the environment on its own and warns that the
    client handed to it wins over that token; that is the intent, so the warning goes."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "`token` will be unused" not in record.getMessage()


BOLT_LOG = logging.getLogger("slack_bolt")
BOLT_LOG.addFilter(_ClientOverToken())


def build_app(
    *,
    client: AsyncWebClient,
    authorize: OneAuthTest,
    signing_secret: str,
    slash_command: str,
    gate: AckGate,
    handlers: Handlers,
) -> AsyncApp:
    """Signature verification stays on (HTTP mode; Socket Mode requests skip it), and
    listeners run after the ack, so every event is acknowledged within Slack's 3 s.
    `authorize` is the platform's own: one `auth.test` per process serves both.

    Bolt's own filter of the bot's events is off: the intake's ignore step
    (`bot.intake.steps`) is the one place that drops the bot's and other bots' messages,
    counted in `parley_intake_stopped_total`, for Slack and Discord alike."""
    app = AsyncApp(
        name="parley",
        client=client,
        authorize=authorize,
        signing_secret=signing_secret,
        process_before_response=False,
        request_verification_enabled=True,
        ignoring_self_events_enabled=False,
        logger=BOLT_LOG,
    )
    app.use(gate.middleware)
    app.event("app_mention")(handlers.on_message)
    app.event("message")(handlers.on_message)
    app.event("assistant_thread_started")(handlers.on_assistant_thread)
    app.command(slash_command)(handlers.on_command)
    app.action(FEEDBACK_ACTION)(handlers.on_feedback)
    app.view(COMMENT_VIEW)(handlers.on_comment)
    return app
