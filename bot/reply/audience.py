"""Who an answer is written for: what it may mention and which links it may preview.

A model's text may carry instructions from a document, a page or a tool's result. Two
ways such text acts on a workspace are pinging people and leaking data through a link
the platform fetches to preview. An `Audience`, built by the engine from the stored
history before any text is shown, tells a platform's sink the people already in the
conversation (only they may stay mentioned), the links people wrote there (only they
may be previewed) and whether the channel's policy lets special mentions through.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

from bot.conversation import ConversationKey
from bot.metrics import Metrics
from bot.store import History
from bot.text.neutralize import LINK_PREVIEW, urls_in

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Audience:
    """The default (nobody, no links, no special mentions) is what an answer gets when
    no history was read: a help text, a failure before the model was asked."""

    conversation: str = ""  # the conversation's id, for the log
    people: frozenset[str] = frozenset()
    links: frozenset[str] = frozenset()
    allow_mentions: bool = False

    def invented_links(self, text: str) -> set[str]:
        """The links in `text` nobody in the conversation wrote."""
        return urls_in(text) - self.links

    def previews(self, text: str) -> bool:
        """Whether a message with `text` may let the platform preview its links: only when
        it has some and people wrote every one of them in the conversation. A preview is a
        fetch made on the bot's behalf, and a model-written address can carry data out in
        it."""
        return bool(urls_in(text)) and not self.invented_links(text)

    def count_invented_links(self, metrics: Metrics, text: str) -> None:
        """Count a message whose previews are withheld for links nobody wrote (once, when
        its text is final)."""
        if self.invented_links(text):
            self.count(metrics, {LINK_PREVIEW: 1}, "link previews")

    def count(self, metrics: Metrics, counts: Mapping[str, int], where: str) -> None:
        """Count what was neutralized in `/metrics` and log it at debug level with the
        conversation, so an operator can see an injection attempt."""
        done = {kind: n for kind, n in counts.items() if n}
        for kind, n in done.items():
            metrics.neutralized.labels(kind).inc(n)
        if done:
            log.debug(
                "neutralized %s in %s of %s",
                ", ".join(f"{n} {kind}" for kind, n in sorted(done.items())),
                where,
                self.conversation,
            )


def audience_of(key: ConversationKey, history: History, *, allow_mentions: bool) -> Audience:
    """The audience of an answer in `key`'s conversation, from the history just read;
    `allow_mentions` is the policy's word for the place (special mentions allowed)."""
    return Audience(key.id, history.people, history.links, allow_mentions)
