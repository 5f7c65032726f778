"""Rows of cells as a Markdown table the model reads reliably.

A cell may hold anything (pipes, newlines, backslashes, Markdown), so each is escaped
to stay inside its column on one line: `|` becomes `\\|`, a backslash is doubled, line
breaks become `<br>`. Ragged rows are padded to the widest row.
"""

from __future__ import annotations

from collections.abc import Sequence


def cell_text(value: object) -> str:
    if value is None:
        return ""
    text = value if isinstance(value, str) else str(value)
    text = text.replace("\\", "\\\\").replace("|", "\\|")
    return text.replace("\r\n", "<br>").replace("\r", "<br>").replace("\n", "<br>")


def markdown_table(rows: Sequence[Sequence[object]]) -> str:
    """The rows as a Markdown table, the first row as its header; "" for no rows."""
    if not rows:
        return ""
    width = max(len(row) for row in rows) or 1
    lines = []
    for index, row in enumerate(rows):
        cells = [cell_text(v) for v in row] + [""] * (width - len(row))
        lines.append("| " + " | ".join(cells) + " |")
        if index == 0:
            lines.append("|" + " --- |" * width)
    return "\n".join(lines) + "\n"
