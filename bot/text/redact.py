"""Keeping configured secrets out of everything Parley posts and logs.

A model can be talked into repeating a secret, a server can echo one back, and a
library's debug log can print one (slack_sdk logs request bodies at DEBUG). So the
values themselves are replaced, wherever they turn up: `Redactor` in text Parley posts
(the engine applies it where answer text and status reach the sink), `RedactingFilter`
in every log record that reaches the root logger's handlers, from any library.

A streamed answer is shown while it grows, so a secret can arrive split across two
chunks: `Redactor.visible` holds back an ending that could be the start of a secret
until the text after it shows whether it is one.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable
from urllib.parse import quote, unquote, urlsplit

from pydantic import SecretStr

from bot.settings import Settings

REDACTED = "[redacted]"
# Shorter values would redact ordinary words; no real token or key is this short.
MIN_SECRET_LENGTH = 4


class Redactor:
    """Replaces every one of `secrets` with `[redacted]`. Immutable and cheap to call."""

    def __init__(self, secrets: Iterable[str]) -> None:
        values = sorted({s for s in secrets if len(s) >= MIN_SECRET_LENGTH}, key=len, reverse=True)
        self._secrets = tuple(values)
        # Longest first: where two secrets start at the same place, the longer one wins.
        self._pattern = re.compile("|".join(map(re.escape, values))) if values else None
        self._prefixes = frozenset(s[:k] for s in values for k in range(1, len(s)))
        self._longest = len(values[0]) if values else 0

    @classmethod
    def from_settings(cls, settings: Settings) -> Redactor:
        """Every `SecretStr` setting, and the password of every URL setting (`REDIS_URL`,
        which may list several comma-separated nodes)."""
        secrets: list[str] = []
        for name in type(settings).model_fields:
            value = getattr(settings, name)
            if isinstance(value, SecretStr):
                secrets.append(value.get_secret_value())
            elif isinstance(value, str) and "://" in value:
                secrets.extend(_url_passwords(value))
        # As a URL or a JSON string would carry them, too: logs print both.
        encoded = [form for s in secrets for form in (quote(s, safe=""), json.dumps(s)[1:-1])]
        return cls([*secrets, *encoded])

    def __bool__(self) -> bool:
        return bool(self._secrets)

    def __call__(self, text: str) -> str:
        """`text` with every secret replaced."""
        if self._pattern is None:
            return text
        return self._pattern.sub(REDACTED, text)

    def visible(self, text: str) -> str:
        """What may be shown of a text that is still growing: `self(text)` without an
        ending that could be the beginning of a secret. Each result is a prefix of the
        results for longer texts that start with `text`, and of `self(text)`."""
        if self._pattern is None:
            return text
        hold_from = len(text) - self._held_tail(text)
        out: list[str] = []
        pos = 0
        for match in self._pattern.finditer(text):
            if match.start() >= hold_from:
                break
            out += (text[pos : match.start()], REDACTED)
            pos = match.end()
        out.append(text[pos:hold_from])
        return "".join(out)

    def _held_tail(self, text: str) -> int:
        """The length of the longest ending of `text` that a secret starts with (and is
        longer than)."""
        for length in range(min(len(text), self._longest - 1), 0, -1):
            if text[-length:] in self._prefixes:
                return length
        return 0


def _url_passwords(value: str) -> list[str]:
    passwords: list[str] = []
    for url in value.split(","):
        try:
            password = urlsplit(url.strip()).password
        except ValueError:
            continue
        if password:
            passwords += (password, unquote(password))
    return passwords


class RedactingFilter(logging.Filter):
    """Rewrites a log record with its message (and traceback) redacted.

    On a handler, it sees every record the handler emits, whichever logger made it; the
    record is formatted here once (`getMessage()`), so arguments that carry a secret are
    caught too.
    """

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self._redact = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._redact:
            return True
        message = record.getMessage()
        redacted = self._redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self._redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self._redact(record.stack_info)
        return True


def install_log_redaction(redactor: Redactor, logger: logging.Logger | None = None) -> None:
    """Put a `RedactingFilter` on every handler of `logger` (the root logger by default)
    that has none yet. Call it after the handlers are set up."""
    target = logger or logging.getLogger()
    for handler in target.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter(redactor))
