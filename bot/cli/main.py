"""The `parley` command (also `python -m bot`): `parley serve`, `parley chat`, `parley usage`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from datetime import date

from pydantic import ValidationError

from bot.cli.chat_logs import HeldLogHandler
from bot.policy import policy_problem
from bot.settings import Settings
from bot.text.redact import Redactor, install_log_redaction
from bot.usage.command import usage_command
from bot.usage.meter import DIMENSIONS


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="parley",
        description="OpenAI-compatible models (Evolink GPT-5.5 / GPT-5.1) in Slack and Discord.",
        epilog="Settings come from the environment and .env; see .env.example.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("serve", help="run the bot for the configured platforms")
    chat = commands.add_parser("chat", help="talk to the model in this terminal")
    chat.add_argument("--model", help="model for this session (default: BOT_MODEL)")
    chat.add_argument(
        "--new", action="store_true", help="start a fresh conversation instead of continuing"
    )
    usage = commands.add_parser(
        "usage", help="print tokens and cost per user, channel, workspace or model"
    )
    when = usage.add_mutually_exclusive_group()
    when.add_argument("--day", type=_day, metavar="YYYY-MM-DD", help="one day (default: today)")
    when.add_argument("--since", type=_day, metavar="YYYY-MM-DD", help="from this day to today")
    usage.add_argument("--by", choices=DIMENSIONS, default="user", help="grouping (default: user)")
    output = usage.add_mutually_exclusive_group()
    output.add_argument("--json", dest="output", action="store_const", const="json")
    output.add_argument("--csv", dest="output", action="store_const", const="csv")
    return parser


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a day in the form YYYY-MM-DD: {text!r}") from None


def _load_settings() -> Settings | None:
    try:
        return Settings()
    except ValidationError as exc:
        lines = [
            f"  {'.'.join(str(p) for p in err['loc']).upper()}: {err['msg']}"
            for err in exc.errors()
        ]
        sys.stderr.write("parley: invalid settings:\n" + "\n".join(lines) + "\n")
        return None


def _configure_logging(level: str, *, quiet: bool, redactor: Redactor, held: bool = False) -> None:
    # `held`: the chat shows log lines between turns, never inside an answer or a prompt.
    handler = (
        HeldLogHandler(sys.stderr, dim=sys.stderr.isatty())
        if held
        else logging.StreamHandler(sys.stderr)
    )
    logging.basicConfig(
        level=logging.WARNING if quiet else getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=[handler],
    )
    # Every record from every library passes the root handlers: no secret is printed.
    install_log_redaction(redactor)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = _load_settings()
    if settings is None:
        return 2
    # The terminal chat and the report keep the screen for themselves: warnings only.
    _configure_logging(
        settings.log_level,
        quiet=args.command in ("chat", "usage"),
        held=args.command == "chat",
        redactor=Redactor.from_settings(settings),
    )
    if args.command == "usage":
        return asyncio.run(
            usage_command(
                settings, day=args.day, since=args.since, by=args.by, output=args.output or "table"
            )
        )
    problem = policy_problem(settings)
    if problem:
        sys.stderr.write(f"parley {args.command}: {problem}")
        return 2
    try:
        if args.command == "serve":
            from bot.service.serve import run

            return run(settings)
        from bot.cli.chat import chat

        return asyncio.run(chat(settings, model=args.model, fresh=args.new))
    except KeyboardInterrupt:
        return 130
