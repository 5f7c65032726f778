"""Operators' control: who may use Parley where, with which persona, and their caps.

`PolicySource` holds the live `BOT_POLICY_FILE`; `Place` says where a message was
written; `check_access`, `persona` and `effective` answer what the policy decides there.
"""

from bot.policy.loader import parse_policy, read_policy_file
from bot.policy.model import Layer, PolicyFile, Price, Quota
from bot.policy.resolve import (
    Base,
    Decision,
    Effective,
    Persona,
    Place,
    Policy,
    QuotaRule,
    ToolFilter,
)
from bot.policy.source import PolicySource, policy_problem

__all__ = [
    "Base",
    "Decision",
    "Effective",
    "Layer",
    "Persona",
    "Place",
    "Policy",
    "PolicyFile",
    "PolicySource",
    "Price",
    "Quota",
    "QuotaRule",
    "ToolFilter",
    "parse_policy",
    "policy_problem",
    "read_policy_file",
]
