"""Word (.docx) and PowerPoint (.pptx) files as Markdown.

python-docx and python-pptx (both MIT, pure Python over lxml) read the documents'
XML directly; they never run macros or fetch linked content, and `archive.verified_zip`
has already counted every inflated byte before they see the file. markitdown (MIT)
wraps these same libraries but pulls in many more dependencies for formats Parley does
not read.

Word: paragraphs and tables in reading order; "Heading N" and "Title" styles become
Markdown headings, list styles become list items. Word files have no fixed pages (page
breaks depend on the printer), so they carry no page markers. PowerPoint: `## Slide N`
with its title, text in reading order (top to bottom, left to right), tables, and the
speaker notes.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import docx
import pptx
from docx.table import Table as DocxTable
from docx.text.paragraph import Paragraph
from pptx.shapes.group import GroupShape

from bot.documents.archive import verified_zip
from bot.documents.limits import DocumentLimits, Reading
from bot.documents.tables import markdown_table


def read_docx(data: bytes, name: str, limits: DocumentLimits, reading: Reading) -> None:
    document = docx.Document(verified_zip(data, name, limits))
    for block in document.iter_inner_content():
        text = _docx_table(block) if isinstance(block, DocxTable) else _docx_paragraph(block)
        if text and not reading.add(text):
            return


def _docx_paragraph(paragraph: Paragraph) -> str:
    text = paragraph.text.strip()
    if not text:
        return ""
    style = (paragraph.style.name if paragraph.style is not None else "") or ""
    if style == "Title":
        return f"\n# {text}\n\n"
    if style.startswith("Heading ") and style[8:].isdigit():
        return f"\n{'#' * min(int(style[8:]) + 1, 6)} {text}\n\n"
    if "List Number" in style:
        return f"1. {text}\n"
    numbered = paragraph._p.pPr is not None and paragraph._p.pPr.numPr is not None
    if "List" in style or numbered:
        return f"- {text}\n"
    return f"{text}\n\n"


def _docx_table(table: DocxTable) -> str:
    rows = [[cell.text.strip() for cell in row.cells] for row in table.rows]
    return "\n" + markdown_table(rows) + "\n"


def read_pptx(data: bytes, name: str, limits: DocumentLimits, reading: Reading) -> None:
    reading.unit = "slide"
    presentation = pptx.Presentation(verified_zip(data, name, limits))
    slides = list(presentation.slides)
    reading.total = len(slides)
    for number, slide in enumerate(slides[: limits.max_pages], start=1):
        lines = [f"\n\n## Slide {number}\n"]
        title = slide.shapes.title
        if title is not None and title.text_frame.text.strip():
            lines.append(f"\n### {title.text_frame.text.strip()}\n")
        for shape in _reading_order(slide.shapes):
            if title is not None and shape.shape_id == title.shape_id:
                continue
            lines.append(_shape_text(shape))
        if slide.has_notes_slide:
            notes = slide.notes_slide.notes_text_frame
            if notes is not None and notes.text.strip():
                lines.append(f"\nSpeaker notes: {notes.text.strip()}\n")
        if not reading.add("".join(lines)):
            return
        reading.read = number


def _reading_order(shapes: Iterable[Any]) -> Iterator[Any]:
    """Shapes top to bottom, then left to right; groups opened in place."""
    for shape in sorted(shapes, key=lambda s: (s.top or 0, s.left or 0)):
        if isinstance(shape, GroupShape):
            yield from _reading_order(shape.shapes)
        else:
            yield shape


def _shape_text(shape: Any) -> str:
    if getattr(shape, "has_table", False) and shape.has_table:
        rows = [[cell.text.strip() for cell in row.cells] for row in shape.table.rows]
        return "\n" + markdown_table(rows) + "\n"
    if not getattr(shape, "has_text_frame", False) or not shape.has_text_frame:
        return ""
    out = []
    for paragraph in shape.text_frame.paragraphs:
        text = "".join(run.text for run in paragraph.runs).strip()
        if text:
            out.append("  " * paragraph.level + f"- {text}\n")
    return "\n" + "".join(out) if out else ""
