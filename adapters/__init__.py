"""Platform adapters: each turns one platform's events into the intake's envelopes and
writes the engine's answers back. `parley serve` finds them through the
`parley.platforms` entry points; a platform's library is imported only when it is
configured."""
