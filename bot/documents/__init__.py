"""Documents as context: PDFs, Office files, spreadsheets and text files, read exactly.

The engine calls `DocumentReader` (`reader.py`); the rest, one concern each:
`formats.py` detects the format and dispatches, `pdf.py`, `office.py` (Word,
PowerPoint), `sheets.py` (Excel, CSV/TSV) and `markup.py` (HTML, Markdown, JSON, text)
read, `tables.py` renders Markdown tables, `archive.py` guards against zip bombs,
`limits.py` holds the bounds and the record of what was read, `worker.py` runs the
parsers in a child process with time and memory limits, `cache.py` keeps each reading
in Redis once per file content.

Nothing is imported here: the worker process starts as `-m bot.documents.worker` and
should load only what reading needs.
"""
