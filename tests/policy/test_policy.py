"""The policy file: loading with line-naming errors, layering, live re-reading."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.cli.main import main
from bot.errors import PolicyFileError
from bot.policy import Base, Place, Policy, PolicySource, parse_policy
from bot.settings import GenerationParams

ISSUE_EXAMPLE = """\
default:                      # everywhere
  allow: true                 # false here + true on some channels = an allowlist
  model: gpt-5.5
  system_prompt: "You are Parley..."
  tools: ["*"]                # tool names the model may call; [] = none
  show_reasoning: true
  temperature: 0.7            # any generation parameter of the settings
  quota:
    user_tokens_per_day: 200000       # absent or 0 = no cap
    channel_tokens_per_day: 2000000
    workspace_tokens_per_day: 20000000
workspaces:                   # keys "<platform>:<workspace or guild id>"
  "slack:T0123": {model: gpt-5.1}
channels:                     # keys "<platform>:<channel id>"
  "slack:C0123": {system_prompt: "You are the support desk...", tools: [current_time]}
users:                        # keys "<platform>:<user id>"
  "slack:U0BAD": {allow: false}
admins: ["slack:U0ADMIN", "discord:1234"]
prices:                       # USD per million tokens, for the cost column of reports
  gpt-5.5: {prompt: 1.25, completion: 10.0, cached: 0.125}
"""

BASE = Base(model="base-model", system_prompt="base prompt", tools=True, show_reasoning=True)


def policy(text: str) -> Policy:
    return Policy(parse_policy(text), BASE)


def test_the_issues_example_resolves_per_place() -> None:
    p = policy(ISSUE_EXAMPLE)
    support = p.effective(Place("slack", "T0123", "C0123", "U1"))
    assert support.decision.allowed
    assert support.persona.model == "gpt-5.1"  # the workspace layer
    assert support.persona.system_prompt == "You are the support desk..."
    assert support.persona.tools.allows("current_time")
    assert not support.persona.tools.allows("calculate")
    assert support.persona.generation.temperature == 0.7
    assert support.quota.user == 200_000 and support.quota.workspace == 20_000_000
    assert support.layers == ("default", "workspaces:slack:T0123", "channels:slack:C0123")

    elsewhere = p.persona(Place("slack", "T9", "C9", "U1"))
    assert elsewhere.model == "gpt-5.5" and elsewhere.tools.allows("calculate")

    bad = p.check_access(Place("slack", "T0123", "C0123", "U0BAD"))
    assert not bad.allowed and bad.reason == "user"
    assert p.is_admin("discord", "1234") and not p.is_admin("slack", "1234")
    assert p.prices["gpt-5.5"].cached == 0.125


def test_an_allowlist_and_roles_between_channel_and_user() -> None:
    p = policy(
        """
default: {allow: false}
channels:
  "discord:10": {allow: true, model: channel-model}
roles:
  "discord:77": {allow: false, model: role-model}
  "discord:88": {allow: true}
users:
  "discord:5": {allow: true}
"""
    )
    assert p.check_access(Place("discord", "g", "11", "1")).reason == "default"
    assert p.check_access(Place("discord", "g", "10", "1")).allowed
    by_role = p.effective(Place("discord", "g", "10", "1", roles=("77",)))
    assert by_role.decision.reason == "role" and by_role.persona.model == "role-model"
    # Roles apply in the file's order: 88 comes after 77 and allows again.
    assert p.check_access(Place("discord", "g", "10", "1", roles=("88", "77"))).allowed
    # The user layer comes last.
    assert p.check_access(Place("discord", "g", "10", "5", roles=("77",))).allowed


def test_a_dm_uses_default_workspaces_and_users_only() -> None:
    p = policy(
        """
default: {model: d}
workspaces: {"slack:T1": {system_prompt: ws}}
channels: {"slack:D1": {allow: false, model: c}}
roles: {"slack:R1": {allow: false}}
users: {"slack:U1": {temperature: 1.5}}
"""
    )
    dm = p.effective(Place("slack", "T1", "D1", "U1", roles=("R1",), is_dm=True))
    assert dm.decision.allowed
    assert (dm.persona.model, dm.persona.system_prompt) == ("d", "ws")
    assert dm.persona.generation.temperature == 1.5


def test_quota_fields_merge_field_by_field() -> None:
    p = policy(
        """
default: {quota: {user_tokens_per_day: 100, reset_hour_utc: 6}}
channels: {"slack:C1": {quota: {channel_tokens_per_day: 1000, downgrade_model: mini}}}
"""
    )
    rule = p.effective(Place("slack", "T", "C1", "U")).quota
    assert (rule.user, rule.channel, rule.workspace) == (100, 1000, 0)
    assert (rule.reset_hour_utc, rule.downgrade_model, rule.downgrade_at) == (6, "mini", 0.8)


def test_no_policy_file_means_the_settings_behaviour() -> None:
    p = Policy(base=BASE)
    found = p.effective(Place("slack", "T", "C", "U"))
    assert found.decision.allowed and not found.quota.capped
    assert found.persona.model == "base-model"
    assert found.persona.system_prompt == "base prompt"
    assert found.persona.tools.allows("anything")
    assert not found.persona.allow_mentions and found.persona.approve_tools.none
    assert not Policy(base=Base(tools=False)).persona(Place("slack")).tools.allows("x")
    # BOT_TOOLS off means no tools at all, whatever the file lists.
    listed = parse_policy('default:\n  tools: ["*"]\nchannels:\n  "slack:C": {tools: [x]}\n')
    off = Policy(listed, Base(tools=False))
    assert not off.persona(Place("slack", "T", "C", "U")).tools.allows("x")
    assert not off.persona(Place("slack")).tools.allows("x")


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("default:\n  alow: false\n", 2, "default.alow: Extra inputs are not permitted"),
        ("default:\n  model: x\n  temperature: 3\n", 3, "less than or equal to 2"),
        ("channels:\n  'slack:C1': {}\n  'slack:C1': {}\n", 3, "appears twice"),
        ("default: {allow: true\n", 2, "expected ','"),
        ("users:\n  U1: {allow: false}\n", 2, "users.U1: String should match pattern"),
        ("prices:\n  m:\n    prompt: 1\n", 3, "prices.m.completion: Field required"),
        ("- a\n", 1, "must be a mapping"),
        ("a: &a [*a, *a, *a]\n", 1, "too much data"),
        ("a: " + "[" * 3000 + "\n", 1, "nested too deeply"),
        ("default: {model: x}\n\x00", 2, "invalid character"),
        ("default: !!python/object:os.system {}\n", 1, "could not determine a constructor"),
    ],
)
def test_errors_name_the_line_and_the_problem(text: str, line: int, words: str) -> None:
    with pytest.raises(PolicyFileError) as caught:
        parse_policy(text, "policy.yaml")
    assert caught.value.line == line
    assert str(caught.value).startswith(f"policy.yaml:{line}: ")
    assert words in str(caught.value)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.text(max_size=300))
def test_arbitrary_text_is_a_policy_or_a_line_naming_error(text: str) -> None:
    try:
        parse_policy(text, "p.yaml")
    except PolicyFileError as exc:
        assert exc.line is not None and exc.line >= 1
        assert str(exc).startswith(f"p.yaml:{exc.line}: ")


_yaml_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 10**7) | st.floats(-3, 3) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=12,
)
_field_names = st.sampled_from(
    ["allow", "model", "tools", "temperature", "top_k", "stop", "quota", "x", "show_reasoning"]
)
_layer_like = st.dictionaries(_field_names, _yaml_values, max_size=4)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["default", "channels", "users", "prices", "admins", "extra"]),
        _layer_like | st.dictionaries(st.sampled_from(["slack:C1", "C1"]), _layer_like),
        max_size=4,
    )
)
def test_arbitrary_yaml_documents_are_a_policy_or_a_line_naming_error(data: Any) -> None:
    text = yaml.safe_dump(data)
    try:
        parse_policy(text, "p.yaml")
    except PolicyFileError as exc:
        assert exc.line is not None and 1 <= exc.line <= text.count("\n") + 1


_LAYER_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "allow": st.booleans(),
    "model": st.sampled_from(["m1", "m2", "m3"]),
    "system_prompt": st.text(max_size=5),
    "tools": st.lists(st.sampled_from(["a", "b", "*"]), max_size=2),
    "temperature": st.sampled_from([0.0, 0.5, 1.0]),
    "max_tokens": st.integers(1, 9),
    "show_reasoning": st.booleans(),
    "allow_mentions": st.booleans(),
}
_layers = st.fixed_dictionaries({}, optional=_LAYER_VALUES)
_ORDER = ("default", "workspaces", "channels", "roles", "users")


@settings(max_examples=200, deadline=None)
@given(st.tuples(*(_layers for _ in _ORDER)), st.booleans())
def test_later_layers_win_field_by_field(layers: tuple[dict[str, Any], ...], dm: bool) -> None:
    ws, ch, role, user = ("slack:T1", "slack:C1", "slack:R1", "slack:U1")
    document = {
        "default": layers[0],
        "workspaces": {ws: layers[1]},
        "channels": {ch: layers[2]},
        "roles": {role: layers[3]},
        "users": {user: layers[4]},
    }
    p = Policy(parse_policy(yaml.safe_dump(document)), BASE)
    found = p.effective(Place("slack", "T1", "C1", "U1", roles=("R1",), is_dm=dm))
    applied = [layer for name, layer in zip(_ORDER, layers, strict=True)]
    if dm:
        applied = [layers[0], layers[1], layers[4]]

    def last(name: str, default: Any) -> Any:
        values = [layer[name] for layer in applied if name in layer]
        return values[-1] if values else default

    assert found.decision.allowed is last("allow", True)
    assert found.persona.model == last("model", BASE.model)
    assert found.persona.system_prompt == last("system_prompt", BASE.system_prompt)
    assert found.persona.tools.patterns == tuple(last("tools", ["*"]))
    assert found.persona.generation == GenerationParams(
        temperature=last("temperature", None), max_tokens=last("max_tokens", None)
    )
    assert found.persona.show_reasoning is last("show_reasoning", True)
    assert found.persona.allow_mentions is last("allow_mentions", False)


def _write(path: Path, text: str) -> None:
    # A new file renamed into place, as editors and config maps do: a new inode every time.
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


async def test_the_file_is_re_read_when_it_changes_and_a_bad_edit_keeps_the_last_good(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "policy.yaml"
    _write(path, "default: {model: first}\n")
    source = PolicySource(path, BASE, check_interval=0.0)
    source.load()
    here = Place("slack", "T", "C", "U")
    assert source.persona(here).model == "first"

    _write(path, "default: {model: second}\n")
    assert source.persona(here).model == "first"  # the re-read runs in the background
    await _until(lambda: source.persona(here).model == "second")

    with caplog.at_level(logging.ERROR, logger="bot.policy.source"):
        _write(path, "default:\n  model: third\n  temprature: 1\n")
        await _until(lambda: source.policy is not None and "temprature" in caplog.text)
    assert source.persona(here).model == "second"
    assert "policy.yaml:3: default.temprature" in caplog.text

    _write(path, "default: {model: fourth}\n")
    await _until(lambda: source.persona(here).model == "fourth")


async def test_the_file_is_checked_at_most_once_per_interval(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    _write(path, "default: {model: first}\n")
    source = PolicySource(path, BASE, check_interval=3600)
    source.load()
    _write(path, "default: {model: second}\n")
    for _ in range(100):
        assert source.persona(Place("slack")).model == "first"
    assert await source.reload()  # an explicit reload sees the change
    assert source.persona(Place("slack")).model == "second"


async def _until(condition: Any) -> None:
    async with asyncio.timeout(10):
        # Each look at the policy is what notices a change, as a message does in service.
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.01)


@pytest.mark.parametrize("command", ["serve", "chat"])
def test_a_bad_file_at_start_up_exits_2_with_the_line(
    command: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("default:\n  allow: maybe\n")
    monkeypatch.setenv("BOT_POLICY_FILE", str(path))
    assert main([command]) == 2
    err = capsys.readouterr().err
    assert f"{path}:2: default.allow: Input should be a valid boolean" in err


def test_a_missing_file_at_start_up_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BOT_POLICY_FILE", str(tmp_path / "nope.yaml"))
    assert main(["serve"]) == 2
    assert "nope.yaml: can't be read" in capsys.readouterr().err
