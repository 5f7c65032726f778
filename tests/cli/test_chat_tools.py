"""`parley chat` shows each tool call as a dim line on the terminal's status stream."""

from __future__ import annotations

import io

from bot.cli.chat import TerminalSink
from bot.reply.sink import FinalReply
from bot.tools import ToolProgress


async def test_a_dim_line_per_finished_call_and_the_answer_stays_clean() -> None:
    out, status = io.StringIO(), io.StringIO()
    sink = TerminalSink(out, status)
    await sink.start()
    await sink.tool_progress(ToolProgress("c1", "lookup", "running", 'key="a"'))
    await sink.tool_progress(ToolProgress("c1", "lookup", "done", "value of a"))
    await sink.tool_progress(ToolProgress("c2", "fail", "error", "the database is on fire"))
    await sink.finish(FinalReply("It is a."))
    shown = status.getvalue()
    assert 'Using lookup(key="a")…' in shown
    assert "\x1b[2m🔧 lookup ✓ value of a\x1b[0m\n" in shown
    assert "\x1b[2m🔧 fail ✗ the database is on fire\x1b[0m\n" in shown
    assert out.getvalue() == "It is a.\n"


async def test_piped_output_gets_no_tool_lines() -> None:
    out = io.StringIO()
    sink = TerminalSink(out, None)
    await sink.tool_progress(ToolProgress("c1", "lookup", "done", "value of a"))
    await sink.finish(FinalReply("A."))
    assert out.getvalue() == "A.\n"
