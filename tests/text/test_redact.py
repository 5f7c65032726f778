"""Secrets never posted, never logged: the Redactor, the engine's use of it, the log filter."""

from __future__ import annotations

import io
import itertools
import logging
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta

import httpx
import pytest
import redis.asyncio as aioredis
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from slack_sdk.web.async_client import AsyncWebClient

from bot.cli.main import _configure_logging
from bot.conversation import IncomingMessage
from bot.engine import Engine, EngineConfig
from bot.llm.client import ChatClient
from bot.settings import Settings
from bot.store import ConversationStore
from bot.text.redact import REDACTED, RedactingFilter, Redactor, install_log_redaction
from tests.fakes.llm_server import Error, FakeLLM, Reply
from tests.fakes.slack_api import FakeSlack
from tests.test_engine import KEY, RecordingSink

# An example takes about a millisecond; the margin is for a loaded 2-core machine.
DEADLINE = timedelta(seconds=2)

API_KEY = "sk-live-0123456789abcdef"
BOT_TOKEN = "xoxb-fake-bot-token"
SIGNING_SECRET = "fake-signing-secret"
APP_TOKEN = "xapp-1-A0-42-cafe"
DISCORD_TOKEN = "MTA-discord.token.value"
REDIS_PASSWORD = "p@ss word"  # percent-encoded in the URL
SECRETS = (API_KEY, BOT_TOKEN, SIGNING_SECRET, APP_TOKEN, DISCORD_TOKEN, REDIS_PASSWORD)


def make_settings(**overrides: object) -> Settings:
    values: dict[str, object] = {
        "evolink_api_key": API_KEY,
        "slack_bot_token": BOT_TOKEN,
        "slack_signing_secret": SIGNING_SECRET,
        "slack_app_token": APP_TOKEN,
        "discord_bot_token": DISCORD_TOKEN,
        "redis_url": "redis://default:p%40ss%20word@127.0.0.1:6383/13",
        **overrides,
    }
    return Settings(_env_file=None, **values)


REDACTOR = Redactor.from_settings(make_settings())


def assert_clean(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text


# --- the redactor ------------------------------------------------------------------------


def test_every_configured_secret_is_redacted() -> None:
    text = " | ".join((*SECRETS, "p%40ss%20word"))
    assert REDACTOR(text) == " | ".join([REDACTED] * 7)


def test_secrets_are_redacted_url_and_json_encoded_too() -> None:
    redactor = Redactor.from_settings(make_settings(slack_signing_secret='a/b+c"d'))
    assert redactor("?s=a%2Fb%2Bc%22d") == f"?s={REDACTED}"
    assert redactor('{"s": "a/b+c\\"d"}') == f'{{"s": "{REDACTED}"}}'


def test_redis_cluster_seed_passwords_are_secrets() -> None:
    redactor = Redactor.from_settings(
        make_settings(redis_url="redis://:first-pw@h1:7000,redis://:second-pw@h2:7001")
    )
    assert redactor("first-pw second-pw h1") == f"{REDACTED} {REDACTED} h1"


def test_unset_secrets_and_short_values_redact_nothing() -> None:
    redactor = Redactor.from_settings(
        Settings(_env_file=None, evolink_api_key="abc")
    )
    assert not redactor
    assert redactor("abc and sk-live") == "abc and sk-live"


def test_a_growing_text_holds_back_a_possible_secret() -> None:
    text = f"The key is {API_KEY}, done."
    shown = [REDACTOR.visible(text[:end]) for end in range(len(text) + 1)]
    assert shown[len("The key is sk")] == "The key is "
    assert shown[len("The key is ") + len(API_KEY)] == f"The key is {REDACTED}"
    assert shown[-1] == REDACTOR(text) == f"The key is {REDACTED}, done."
    assert all(later.startswith(earlier) for earlier, later in itertools.pairwise(shown))
    # Text that only looks like a secret's beginning is shown once it turns out not to be.
    assert REDACTOR.visible("ask sk-live-0123 later") == "ask sk-live-0123 later"


# Realistic secrets: token characters, none of which can spell a part of "[redacted]".
_SECRET = st.text(alphabet="0123456789xyzXYZ-_.", min_size=4, max_size=16)
_TEXT_ALPHABET = "0123456789xyzXYZ-_. \n[]ab"


@st.composite
def _texts_with_secrets(draw: st.DrawFn) -> tuple[list[str], str]:
    secrets = draw(st.lists(_SECRET, min_size=1, max_size=4))
    pieces = st.one_of(
        st.text(alphabet=_TEXT_ALPHABET, max_size=12),
        st.sampled_from(secrets),
        st.sampled_from(secrets).flatmap(lambda s: st.sampled_from([s[:-1], s[1:], s[:3]])),
    )
    return secrets, "".join(draw(st.lists(pieces, max_size=12)))


@settings(max_examples=300, deadline=DEADLINE)
@given(_texts_with_secrets())
def test_no_secret_survives(case: tuple[list[str], str]) -> None:
    secrets, text = case
    redacted = Redactor(secrets)(text)
    assert not any(secret in redacted for secret in secrets)


@settings(max_examples=200, deadline=DEADLINE)
@given(_texts_with_secrets(), st.data())
def test_no_secret_is_shown_while_the_text_grows(
    case: tuple[list[str], str], data: st.DataObject
) -> None:
    secrets, text = case
    redactor = Redactor(secrets)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(text)), max_size=8)))
    final = redactor(text)
    shown = [redactor.visible(text[:cut]) for cut in cuts]
    for earlier, later in zip(["", *shown], [*shown, final], strict=True):
        assert later.startswith(earlier)
        assert not any(secret in later for secret in secrets)


@settings(max_examples=200, deadline=DEADLINE)
@given(st.lists(_SECRET, max_size=4), st.text(max_size=200))
def test_text_without_a_secret_is_unchanged(secrets: list[str], text: str) -> None:
    assume(not any(secret in text for secret in secrets))
    redactor = Redactor(secrets)
    assert redactor(text) == text
    assert text.startswith(redactor.visible(text))


# --- what Parley posts -------------------------------------------------------------------


@pytest.fixture
async def secret_llm() -> AsyncIterator[FakeLLM]:
    async with FakeLLM(api_key=API_KEY) as fake:
        yield fake


@pytest.fixture
async def engine(secret_llm: FakeLLM, redis_client: aioredis.Redis) -> AsyncIterator[Engine]:
    config = make_settings(evolink_base_url=secret_llm.base_url, bot_tools=False)
    llm = ChatClient.from_settings(config)
    yield Engine(
        store=ConversationStore(redis_client, config.limits()),
        llm=llm,
        config=EngineConfig.from_settings(config),
    )
    await llm.aclose()


async def answer(engine: Engine, text: str = "what are the secrets?") -> RecordingSink:
    sink = RecordingSink()
    await engine.handle(IncomingMessage(key=KEY, text=text, author="ana"), sink)
    return sink


async def test_secrets_in_a_streamed_answer_are_never_shown(
    engine: Engine, secret_llm: FakeLLM
) -> None:
    # Three characters a chunk: each secret arrives split across several chunks.
    text = f"The key is {API_KEY} and the bot token is {BOT_TOKEN}."
    secret_llm.enqueue(Reply(text, chunk_size=3, reasoning=f"Recall {SIGNING_SECRET} now"))
    sink = await answer(engine)

    assert sink.final is not None
    assert sink.final.text == f"The key is {REDACTED} and the bot token is {REDACTED}."
    assert len(sink.updates) > 5
    assert all(sink.final.text.startswith(shown) for shown in sink.updates)
    assert len(set(sink.updates)) == len(sink.updates)  # a held-back tail is no update
    for shown in [*sink.updates, *sink.progress_seen]:
        # Not even the beginning of a secret is shown while the rest is on its way.
        for secret in SECRETS:
            assert secret[:4] not in shown
    assert any(REDACTED in status for status in sink.progress_seen)


async def test_a_failure_message_echoing_a_secret_is_redacted(
    engine: Engine, secret_llm: FakeLLM
) -> None:
    secret_llm.enqueue(Error(400, message=f"token {BOT_TOKEN} is not allowed here"))
    sink = await answer(engine)

    assert sink.failure is not None
    assert f"token {REDACTED} is not allowed" in sink.failure
    assert_clean(sink.failure)


# --- what Parley logs ----------------------------------------------------------------------


@pytest.fixture
def log_output() -> Iterator[io.StringIO]:
    """A root handler at DEBUG with the redaction installed, as `parley serve` sets it up."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    install_log_redaction(REDACTOR)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
        for other in root.handlers:
            for log_filter in [f for f in other.filters if isinstance(f, RedactingFilter)]:
                other.removeFilter(log_filter)


async def test_slack_sdk_debug_request_logs_are_redacted(log_output: io.StringIO) -> None:
    async with FakeSlack(bot_token=BOT_TOKEN) as slack:
        client = AsyncWebClient(token=BOT_TOKEN, base_url=slack.api_url)
        await client.chat_postMessage(channel="C1", text=f"key {API_KEY}")
        await client.api_call("auth.test", params={"token": BOT_TOKEN})

    logged = log_output.getvalue()
    assert "Sending a request" in logged and "Received the following response" in logged
    assert f"key {REDACTED}" in logged
    assert_clean(logged)


async def test_httpx_request_logs_are_redacted(log_output: io.StringIO) -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(200, text="ok"))
    async with httpx.AsyncClient(transport=transport) as client:
        await client.get(f"https://api.example.test/v1/check?token={BOT_TOKEN}")

    logged = log_output.getvalue()
    assert "HTTP Request: GET https://api.example.test/v1/check?token=" in logged
    assert_clean(logged)


def test_arguments_and_tracebacks_are_redacted(log_output: io.StringIO) -> None:
    log = logging.getLogger("some.library")
    log.debug("connecting with %s", DISCORD_TOKEN)
    log.info({"password": REDIS_PASSWORD})
    try:
        raise RuntimeError(f"refused key {API_KEY}")
    except RuntimeError:
        log.exception("call failed")

    logged = log_output.getvalue()
    assert f"connecting with {REDACTED}" in logged
    assert f"RuntimeError: refused key {REDACTED}" in logged
    assert_clean(logged)


def test_records_without_secrets_keep_their_arguments() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "%d items", (3,), None)
    assert RedactingFilter(REDACTOR).filter(record)
    assert (record.msg, record.args) == ("%d items", (3,))


def test_the_cli_logging_setup_installs_the_filter() -> None:
    root = logging.getLogger()
    handler = logging.StreamHandler(io.StringIO())
    root.addHandler(handler)
    try:
        _configure_logging("INFO", quiet=False, redactor=REDACTOR)
        assert all(
            any(isinstance(f, RedactingFilter) for f in h.filters) for h in root.handlers
        )
    finally:
        root.removeHandler(handler)
        for other in root.handlers:
            for log_filter in [f for f in other.filters if isinstance(f, RedactingFilter)]:
                other.removeFilter(log_filter)
