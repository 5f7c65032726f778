"""The `parley` command (also `python -m bot`): `parley serve` and `parley chat`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from bot.policy import policy_problem
from bot.settings import Settings


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
    return parser


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


def _configure_logging(level: str, *, quiet: bool) -> None:
    logging.basicConfig(
        level=logging.WARNING if quiet else getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = _load_settings()
    if settings is None:
        return 2
    # The terminal chat keeps the screen for the conversation: warnings only.
    _configure_logging(settings.log_level, quiet=args.command == "chat")
    problem = policy_problem(settings)
    if problem:
        sys.stderr.write(f"parley {args.command}: {problem}")
        return 2
    try:
        if args.command == "serve":
            from bot.serve import serve

            return asyncio.run(serve(settings))
        from bot.chat import chat

        return asyncio.run(chat(settings, model=args.model, fresh=args.new))
    except KeyboardInterrupt:
        return 130
