"""Spreadsheets: Excel workbooks (.xlsx) and CSV/TSV files, as Markdown tables.

openpyxl (MIT) is the reference reader for .xlsx. It is opened `read_only` (rows are
streamed from the sheet XML, so a sheet that claims a billion rows costs nothing until
read, and reading stops at the row, column and cell caps), `data_only` (a formula cell gives
the value Excel last computed and stored, never the formula, and nothing is
evaluated), and without macros or external links. Each sheet is `## Sheet "Name"`
followed by its rows as a table; the first row is the table's header.
"""

from __future__ import annotations

import csv
import io
import warnings
import zipfile
from collections.abc import Iterable, Sequence
from typing import Any

import openpyxl

from bot.documents.archive import verified_zip
from bot.documents.limits import DocumentLimits, Reading
from bot.documents.markup import decode_text
from bot.documents.tables import markdown_table
from bot.errors import DocumentCorrupt


def read_xlsx(data: bytes, name: str, limits: DocumentLimits, reading: Reading) -> None:
    reading.unit = "sheet"
    archive = verified_zip(data, name, limits)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # openpyxl warns about styles and extensions it skips
        try:
            book = openpyxl.load_workbook(
                archive, read_only=True, data_only=True, keep_vba=False, keep_links=False
            )
        except (KeyError, ValueError, TypeError, zipfile.BadZipFile, OSError) as exc:
            raise DocumentCorrupt(name, "the workbook is damaged") from exc
        try:
            sheets = [ws for ws in book.worksheets if hasattr(ws, "iter_rows")]
            reading.total = len(sheets)
            cells_left = limits.max_cells
            for number, sheet in enumerate(sheets[: limits.max_pages], start=1):
                # The declared width bounds each row: read-only mode pads every row to it.
                columns = min(sheet.max_column or 1, limits.max_columns)
                rows, cut_at = _bounded_rows(
                    sheet.iter_rows(values_only=True, max_col=columns), limits.max_rows, cells_left
                )
                cells_left -= sum(len(r) for r in rows)
                title = sheet.title.replace('"', "'")
                if cut_at:
                    reading.notes.append(f'sheet "{title}" cut after row {cut_at:,}')
                if (sheet.max_column or 0) > columns:
                    reading.notes.append(f'sheet "{title}" cut after column {columns}')
                body = markdown_table(rows) if rows else "(empty sheet)\n"
                if not reading.add(f'\n\n## Sheet "{title}"\n\n{body}'):
                    return
                reading.read = number
                if cells_left <= 0:
                    return
        finally:
            book.close()


def read_delimited(
    data: bytes, name: str, limits: DocumentLimits, reading: Reading, delimiter: str
) -> None:
    """CSV or TSV as one table, with the same row and cell caps as a sheet."""
    text = decode_text(data, name)
    try:
        rows, cut_at = _bounded_rows(
            csv.reader(io.StringIO(text, newline=""), delimiter=delimiter),
            limits.max_rows,
            limits.max_cells,
        )
    except csv.Error as exc:
        kind = "TSV" if delimiter == "\t" else "CSV"
        raise DocumentCorrupt(name, f"it is not valid {kind}") from exc
    if cut_at:
        reading.notes.append(f"cut after row {cut_at:,}")
    reading.add(markdown_table(rows) if rows else "(empty file)\n")


def _bounded_rows(
    rows: Iterable[Sequence[Any]], max_rows: int, max_cells: int
) -> tuple[list[list[Any]], int]:
    """At most `max_rows` rows and `max_cells` cells, trailing empty cells and rows dropped;
    plus the row count where it stopped early (0 when it read everything)."""
    kept: list[list[Any]] = []
    cells = 0
    for index, row in enumerate(rows):
        if index >= max_rows or cells >= max_cells:
            return _trim_rows(kept), index
        values = list(row)
        while values and values[-1] in (None, ""):
            values.pop()
        cells += len(values)
        kept.append(values)
    return _trim_rows(kept), 0


def _trim_rows(rows: list[list[Any]]) -> list[list[Any]]:
    while rows and not rows[-1]:
        rows.pop()
    return rows
