"""Any JSON a signed request may carry is read as a message event or refused, never a crash."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from adapters.slack.events import BotIdentity, Place, envelope, message_event
from adapters.slack.gate import Malformed, json_body
from tests.fakes.slack_api import BOT_ID, BOT_USER_ID, TEAM_ID

BOT = BotIdentity(BOT_USER_ID, BOT_ID)
FIELDS = [  # the first three are given their own strategies below
    "ts", "channel", "thread_ts", "type", "user", "text", "thread_ts", "subtype", "bot_id",
    "channel_type", "user_team", "files", "bot_profile",
]  # fmt: skip

json_values: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=12,
)
# The right fields with any values, so the interesting branches are reached.
timestamps = st.from_regex(r"\A\d{1,10}\.\d{6}\Z") | st.text(max_size=12)
slackish = st.fixed_dictionaries(
    {"ts": timestamps, "channel": st.text(max_size=12)},
    optional={name: st.text(max_size=12) | json_values for name in FIELDS[3:]}
    | {"thread_ts": timestamps | json_values, "type": st.sampled_from(["app_mention", "message"])},
)


@given(raw=slackish | json_values)
def test_any_event_is_read_or_refused(raw: Any) -> None:
    event = message_event(raw)
    if event is None:
        return
    env = envelope(event, Place.of(TEAM_ID, event), BOT)
    assert isinstance(env.text, str) and isinstance(env.event_id, str)
    assert all(isinstance(f, dict) for f in env.files)


@given(body=st.text(max_size=200) | json_values.map(json.dumps))
def test_any_body_is_judged_without_a_crash(body: str) -> None:
    try:
        parsed = json_body(body, "application/json")
    except Malformed:
        return
    assert isinstance(parsed, dict)
