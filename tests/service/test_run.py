"""`parley serve` runs on uvloop where it is installed."""

from __future__ import annotations

import asyncio

import pytest
import uvloop

from bot.service import serve as serve_module
from bot.settings import Settings


def test_the_service_runs_on_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    loops: list[asyncio.AbstractEventLoop] = []

    async def serve(settings: Settings) -> int:
        loops.append(asyncio.get_running_loop())
        return 7

    monkeypatch.setattr(serve_module, "serve", serve)
    assert serve_module.run(Settings(_env_file=None)) == 7
    assert isinstance(loops[0], uvloop.Loop)
