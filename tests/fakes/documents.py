"""Documents made on the spot for tests and benchmarks: no binary fixtures in the repo.

`pdf()` writes PDF bytes by hand (text pages in Helvetica, image-only "scanned" pages
as grayscale image XObjects); the Office files come from python-docx, python-pptx and
openpyxl; `zip_bomb()` is a DOCX whose one member inflates far past any sane bound.
"""

from __future__ import annotations

import io
import re
import struct
import zipfile
import zlib
from collections.abc import Callable, Sequence

import docx
import openpyxl
import pptx
from pypdf import PdfReader, PdfWriter

Page = str | None  # a text page, or None for a scanned (image-only) page


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def pdf(pages: Sequence[Page], *, scan_size: tuple[int, int] = (200, 260)) -> bytes:
    """A PDF with one page per item: text (lines split on newlines) or a scan (None)."""
    objects: list[bytes] = []

    def add(body: bytes) -> int:
        objects.append(body)
        return len(objects)

    def stream(header: str, data: bytes) -> bytes:
        return f"<< {header} /Length {len(data)} >>\nstream\n".encode() + data + b"\nendstream"

    catalog = add(b"")  # filled in below, once the page tree's number is known
    tree = add(b"")
    font = add(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    kids = []
    for index, page in enumerate(pages):
        if page is None:
            width, height = scan_size
            pixels = bytes(
                (x * 7 + y * 3 + index) % 256 for y in range(height) for x in range(width)
            )
            image = add(
                stream(
                    f"/Type /XObject /Subtype /Image /Width {width} /Height {height} "
                    "/ColorSpace /DeviceGray /BitsPerComponent 8 /Filter /FlateDecode",
                    zlib.compress(pixels),
                )
            )
            content = add(stream("", b"q 612 0 0 792 0 0 cm /Im1 Do Q"))
            resources = f"/XObject << /Im1 {image} 0 R >>"
        else:
            lines = " T* ".join(f"({_escape(line)}) Tj" for line in page.split("\n"))
            text = f"BT /F1 11 Tf 14 TL 56 740 Td {lines} ET".encode("latin-1", "replace")
            content = add(stream("", text))
            resources = f"/Font << /F1 {font} 0 R >>"
        kids.append(
            add(
                f"<< /Type /Page /Parent {tree} 0 R /MediaBox [0 0 612 792] "
                f"/Resources << {resources} >> /Contents {content} 0 R >>".encode()
            )
        )
    objects[catalog - 1] = f"<< /Type /Catalog /Pages {tree} 0 R >>".encode()
    refs = " ".join(f"{k} 0 R" for k in kids)
    objects[tree - 1] = f"<< /Type /Pages /Kids [{refs}] /Count {len(kids)} >>".encode()

    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{offset:010d} 00000 n \n".encode() for offset in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root {catalog} 0 R >>\n".encode()
    out += f"startxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def looping_pdf() -> bytes:
    """A PDF whose page tree lists itself as its own pages: an object loop."""
    data = pdf(["hello", "world"])
    looped = data.replace(b"/Kids [5 0 R 7 0 R] /Count 2", b"/Kids [2 0 R 2 0 R] /Count 2")
    assert looped != data
    return looped


def encrypted_pdf(password: str = "secret") -> bytes:
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf(["confidential"]))))
    writer.encrypt(password, algorithm="RC4-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def docx_file(heading: str, paragraphs: Sequence[str], table: Sequence[Sequence[str]]) -> bytes:
    document = docx.Document()
    document.add_heading(heading, level=1)
    for text in paragraphs:
        document.add_paragraph(text)
    document.add_paragraph("first point", style="List Bullet")
    grid = document.add_table(rows=len(table), cols=len(table[0]))
    for row, values in zip(grid.rows, table, strict=True):
        for cell, value in zip(row.cells, values, strict=True):
            cell.text = value
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def pptx_file(slides: Sequence[tuple[str, str]]) -> bytes:
    """A deck with a title and a body line per slide."""
    deck = pptx.Presentation()
    for title, body in slides:
        slide = deck.slides.add_slide(deck.slide_layouts[1])
        slide.shapes.title.text = title
        slide.placeholders[1].text = body
    out = io.BytesIO()
    deck.save(out)
    return out.getvalue()


def xlsx_file(sheets: dict[str, Sequence[Sequence[object]]]) -> bytes:
    """A workbook; a cell given as a string starting with "=" is a formula."""
    book = openpyxl.Workbook()
    book.remove(book.active)
    for title, rows in sheets.items():
        sheet = book.create_sheet(title)
        for row in rows:
            sheet.append(list(row))
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def with_cached_values(xlsx: bytes, values: dict[str, str]) -> bytes:
    """Write Excel's cached result next to each formula (openpyxl stores none), as Excel
    itself does on save: `values` maps a formula's text to the value to store."""

    def fill(xml: str) -> str:
        for formula, value in values.items():
            cell = f"<f>{formula}</f>"
            xml = re.sub(re.escape(cell) + r"(<v>\s*</v>|<v\s*/>)?", cell + f"<v>{value}</v>", xml)
        return xml

    return _rewrite_member(xlsx, "xl/worksheets/sheet1.xml", fill)


def billion_row_xlsx() -> bytes:
    """A workbook whose one sheet claims the whole grid (A1:XFD1048576) and has cells in
    its first and last row, so a reader that trusts the dimension walks a billion cells."""
    book = xlsx_file({"Huge": [["first row marker"]]})
    return _rewrite_member(
        book,
        "xl/worksheets/sheet1.xml",
        lambda xml: re.sub(
            r'<dimension ref="[^"]*"/>', '<dimension ref="A1:XFD1048576"/>', xml
        ).replace(
            "</sheetData>",
            '<row r="1048576"><c r="XFD1048576" t="inlineStr"><is><t>last</t></is></c>'
            "</row></sheetData>",
        ),
    )


def _rewrite_member(archive: bytes, name: str, change: Callable[[str], str]) -> bytes:
    source = zipfile.ZipFile(io.BytesIO(archive))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for item in source.infolist():
            data = source.read(item)
            if item.filename == name:
                data = change(data.decode()).encode()
            target.writestr(item, data)
    return out.getvalue()


def zip_bomb(inflated: int = 1024 * 1024 * 1024, *, lie: bool = False) -> bytes:
    """A DOCX-shaped zip whose document part inflates to `inflated` bytes of zeros.

    With `lie`, the central directory claims the part is tiny, so only the check made
    while inflating can catch it.
    """
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        with archive.open("word/document.xml", "w", force_zip64=True) as member:
            block = b"\0" * (1024 * 1024)
            for _ in range(inflated // len(block)):
                member.write(block)
    data = out.getvalue()
    if lie:
        data = _understate_sizes(data, "word/document.xml")
    return data


def _understate_sizes(data: bytes, name: str) -> bytes:
    """Rewrite the central directory entry of `name` to claim 1 KB uncompressed."""
    entry = data.rfind(b"PK\x01\x02", 0, data.rfind(name.encode()) + 1)
    # A zip64 entry keeps its sizes in the extra field; rewrite the zip64 uncompressed size.
    (name_len,) = struct.unpack_from("<H", data, entry + 28)
    extra = entry + 46 + name_len
    patched = bytearray(data)
    (header_id,) = struct.unpack_from("<H", data, extra)
    if header_id == 0x0001:
        struct.pack_into("<Q", patched, extra + 4, 1024)
    else:
        struct.pack_into("<I", patched, entry + 24, 1024)
    return bytes(patched)
