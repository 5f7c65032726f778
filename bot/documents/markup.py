"""Text-like formats: plain text and source code, Markdown, JSON and HTML.

Text is decoded as UTF-8 (a UTF-16 byte-order mark is honoured); bytes that decode to
many NULs are binary, not text, and refused. HTML is turned into Markdown with the
standard library's tokenizer: headings, lists, tables, links' text and paragraphs kept;
scripts, styles and everything else that would run or render is dropped, never run.
"""

from __future__ import annotations

import json
from html.parser import HTMLParser

from bot.documents.limits import Reading
from bot.documents.tables import markdown_table
from bot.errors import DocumentCorrupt, DocumentUnsupported


def decode_text(data: bytes, name: str) -> str:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16", errors="replace")
    if b"\x00" in data[:8192]:
        raise DocumentUnsupported(name, "it looks like a binary file, not text")
    return data.decode("utf-8-sig", errors="replace")


def read_text(data: bytes, name: str, reading: Reading, fence: str = "") -> None:
    """Plain text and source code as a fenced block; Markdown (fence "") as it is."""
    text = decode_text(data, name)
    if not fence:
        reading.add(text)
        return
    ticks = "````" if "```" in text else "```"
    reading.add(f"{ticks}{fence}\n{text.rstrip()}\n{ticks}\n")


def read_json(data: bytes, name: str, reading: Reading) -> None:
    text = decode_text(data, name)
    try:
        parsed = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise DocumentCorrupt(name, "it is not valid JSON") from exc
    try:
        pretty = json.dumps(parsed, indent=2, ensure_ascii=False)
    except (ValueError, RecursionError):
        pretty = text
    reading.add(f"```json\n{pretty}\n```\n")


def read_html(data: bytes, name: str, reading: Reading) -> None:
    converter = _HTMLToMarkdown()
    converter.feed(decode_text(data, name))
    converter.close()
    reading.add(converter.markdown())


BLOCKS = frozenset("p div section article header footer main aside blockquote pre br hr".split())
SKIPPED = frozenset("script style noscript template iframe object embed svg head".split())


class _HTMLToMarkdown(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self._out: list[str] = []
        self._skip = 0
        self._lists: list[tuple[str, int]] = []
        self._table: list[list[str]] | None = None
        self._cell: list[str] | None = None
        self._pre = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in SKIPPED:
            self._skip += 1
        elif self._skip:
            return
        elif len(tag) == 2 and tag[0] == "h" and tag[1] in "123456":
            self._out.append("\n\n" + "#" * int(tag[1]) + " ")
        elif tag in ("ul", "ol"):
            self._lists.append((tag, 0))
        elif tag == "li":
            kind, count = self._lists[-1] if self._lists else ("ul", 0)
            if self._lists:
                self._lists[-1] = (kind, count + 1)
            bullet = f"{count + 1}." if kind == "ol" else "-"
            self._out.append("\n" + "  " * max(len(self._lists) - 1, 0) + bullet + " ")
        elif tag == "table":
            self._table = []
        elif tag == "tr" and self._table is not None:
            self._table.append([])
        elif tag in ("td", "th") and self._table is not None:
            self._cell = []
        elif tag == "pre":
            self._pre += 1
            self._out.append("\n\n```\n")
        elif tag in BLOCKS:
            self._out.append("\n\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in SKIPPED:
            self._skip = max(self._skip - 1, 0)
        elif self._skip:
            return
        elif tag in ("ul", "ol") and self._lists:
            self._lists.pop()
            self._out.append("\n")
        elif tag in ("td", "th") and self._table is not None and self._cell is not None:
            if not self._table:
                self._table.append([])
            self._table[-1].append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "table" and self._table is not None:
            rows = [row for row in self._table if row]
            self._table = None
            self._out.append("\n\n" + markdown_table(rows) + "\n")
        elif tag == "pre" and self._pre:
            self._pre -= 1
            self._out.append("\n```\n\n")
        elif (len(tag) == 2 and tag[0] == "h" and tag[1] in "123456") or tag in BLOCKS:
            self._out.append("\n\n")

    def handle_data(self, data: str) -> None:
        if self._skip:
            return
        if self._cell is not None:
            self._cell.append(data)
        elif self._pre:
            self._out.append(data)
        elif self._table is None:
            words = " ".join(data.split())
            before = " " if data[:1].isspace() else ""
            after = " " if data[-1:].isspace() and words else ""
            self._out.append(before + words + after)

    def markdown(self) -> str:
        text = "".join(self._out)
        lines = [line.rstrip() for line in text.splitlines()]
        collapsed: list[str] = []
        for line in lines:
            if line or (collapsed and collapsed[-1]):
                collapsed.append(line)
        return "\n".join(collapsed).strip() + "\n"
