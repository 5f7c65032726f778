"""Which format a document is, and the one call that reads any of them.

The format comes from the bytes where they say it (a PDF's `%PDF-` header, a zip's
main part: `word/document.xml`, `ppt/presentation.xml`, `xl/workbook.xml`), else from
the file name and MIME type. A name that promises one thing and bytes that hold another
are refused as corrupt rather than guessed at. `extract` runs inside the worker
process (`bot.documents.worker`); everything it raises for the user is a
`DocumentError` with a plain sentence.
"""

from __future__ import annotations

import io
import zipfile
from enum import StrEnum

from bot.documents.limits import DocumentLimits, Extraction, Reading
from bot.documents.markup import read_html, read_json, read_text
from bot.errors import DocumentCorrupt, DocumentUnsupported


class Format(StrEnum):
    PDF = "PDF"
    DOCX = "Word document"
    PPTX = "PowerPoint deck"
    XLSX = "Excel workbook"
    CSV = "CSV file"
    TSV = "TSV file"
    HTML = "HTML page"
    MARKDOWN = "Markdown file"
    JSON = "JSON file"
    TEXT = "text file"


SUFFIXES = {
    ".pdf": Format.PDF,
    ".docx": Format.DOCX,
    ".docm": Format.DOCX,
    ".pptx": Format.PPTX,
    ".pptm": Format.PPTX,
    ".xlsx": Format.XLSX,
    ".xlsm": Format.XLSX,
    ".csv": Format.CSV,
    ".tsv": Format.TSV,
    ".tab": Format.TSV,
    ".html": Format.HTML,
    ".htm": Format.HTML,
    ".md": Format.MARKDOWN,
    ".markdown": Format.MARKDOWN,
    ".json": Format.JSON,
}
MIMES = {
    "application/pdf": Format.PDF,
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": Format.DOCX,
    "application/vnd.openxmlformats-officedocument.presentationml.presentation": Format.PPTX,
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": Format.XLSX,
    "text/csv": Format.CSV,
    "text/tab-separated-values": Format.TSV,
    "text/html": Format.HTML,
    "text/markdown": Format.MARKDOWN,
    "application/json": Format.JSON,
}
ZIP_MAIN_PARTS = {
    "word/document.xml": Format.DOCX,
    "ppt/presentation.xml": Format.PPTX,
    "xl/workbook.xml": Format.XLSX,
}
# Older or other binary formats people attach, with what to do instead.
LEGACY = {
    ".doc": "old Word .doc files aren't supported; save it as .docx or PDF",
    ".xls": "old Excel .xls files aren't supported; save it as .xlsx or CSV",
    ".ppt": "old PowerPoint .ppt files aren't supported; save it as .pptx or PDF",
    ".odt": "OpenDocument files aren't supported; save it as .docx or PDF",
    ".ods": "OpenDocument files aren't supported; save it as .xlsx or CSV",
    ".odp": "OpenDocument files aren't supported; save it as .pptx or PDF",
    ".rtf": "RTF files aren't supported; save it as .docx or PDF",
    ".epub": "e-books aren't supported; save it as PDF",
    ".zip": "archives aren't supported; attach the files inside it",
}
ZIP_FORMATS = frozenset({Format.DOCX, Format.PPTX, Format.XLSX})


def suffix_of(name: str) -> str:
    return ("." + name.rsplit(".", 1)[-1].lower()) if "." in name else ""


def claimed_format(name: str, mime: str) -> Format | None:
    """The format the name or MIME type claims, before looking at the bytes."""
    suffix = suffix_of(name)
    if suffix in SUFFIXES:
        return SUFFIXES[suffix]
    return MIMES.get(mime.split(";")[0].strip().lower())


def detect(data: bytes, name: str, mime: str) -> Format:
    claimed = claimed_format(name, mime)
    if data.lstrip()[:5] == b"%PDF-":
        return Format.PDF
    if data[:4] == b"PK\x03\x04":
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                names = set(archive.namelist())
        except (zipfile.BadZipFile, OSError, ValueError) as exc:
            raise DocumentCorrupt(name) from exc
        for part, found in ZIP_MAIN_PARTS.items():
            if part in names:
                return found
    legacy = LEGACY.get(suffix_of(name))
    if legacy:
        raise DocumentUnsupported(name, legacy)
    if claimed in ZIP_FORMATS or claimed is Format.PDF:
        raise DocumentCorrupt(name, f"it is not a valid {claimed} (damaged, or renamed?)")
    return claimed or Format.TEXT


def extract(data: bytes, name: str, mime: str, limits: DocumentLimits) -> Extraction:
    """Read one document under `limits`; raises `DocumentError` with the reason it can't."""
    fmt = detect(data, name, mime)
    reading = Reading(max_chars=limits.max_chars)
    # The parser libraries are imported only for their format: a worker process reads
    # one document, and importing all of them would double its start-up time.
    if fmt is Format.PDF:
        from bot.documents.pdf import read_pdf

        read_pdf(data, name, limits, reading)
    elif fmt in (Format.DOCX, Format.PPTX):
        from bot.documents.office import read_docx, read_pptx

        (read_docx if fmt is Format.DOCX else read_pptx)(data, name, limits, reading)
    elif fmt is Format.XLSX:
        from bot.documents.sheets import read_xlsx

        read_xlsx(data, name, limits, reading)
    elif fmt in (Format.CSV, Format.TSV):
        from bot.documents.sheets import read_delimited

        read_delimited(data, name, limits, reading, "\t" if fmt is Format.TSV else ",")
    elif fmt is Format.HTML:
        read_html(data, name, reading)
    elif fmt is Format.JSON:
        read_json(data, name, reading)
    elif fmt is Format.MARKDOWN:
        read_text(data, name, reading)
    else:
        read_text(data, name, reading, fence=suffix_of(name).lstrip(".") or "text")
    header = f"Attached {fmt} “{name}”"
    if reading.total:
        header += f" ({reading.total} {reading.unit}{'s' if reading.total != 1 else ''})"
    return Extraction(
        text=f"{header}:\n\n{reading.text}\n",
        images=tuple(reading.images),
        summary=reading.summary(),
    )
