"""Writing an answer into a platform: the chain of messages an answer becomes.

`ReplySink` (`sink.py`) is the engine's side of the contract: start, progress, update,
finish or fail, and the optional tool-progress and approval capabilities. `MessageChain`
renders the whole answer so far into messages of at most the outlet's
`limit` characters, in order and never half-way; an adapter's `Outlet` only posts,
edits and removes one message (and may stream it, as Slack does). `Audience` is who
an answer may mention and which links it may preview.
"""

from bot.reply.audience import Audience, audience_of
from bot.reply.chain import MessageChain, Outlet

__all__ = ["Audience", "MessageChain", "Outlet", "audience_of"]
