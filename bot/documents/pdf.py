"""PDF: the text layer page by page, and scanned pages as images.

pypdfium2 (Apache-2.0 / BSD-3-Clause bindings to Google's PDFium, the PDF engine of
Chrome; one 8 MB wheel with no other dependency) does both jobs: it reads the text
layer in reading order and renders pages without one, so scans reach the model as
images. It is a C library hardened against hostile PDFs by years of fuzzing in Chrome;
object loops and other malformed structures fail inside it rather than hang Python, and
the worker process's time and memory limits catch whatever does not. pypdf (BSD) is
pure Python and much slower on large files; PyMuPDF is AGPL, so not an option.

Each page is marked `## Page N` so the model can cite it. A page with an image and
fewer than `SCANNED_CHARS` characters of text is treated as scanned and rendered to
PNG, up to `DocumentLimits.max_page_images` pages per document.
"""

from __future__ import annotations

import io

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c

from bot.documents.limits import DocumentLimits, Reading
from bot.errors import DocumentCorrupt, DocumentEncrypted, DocumentTooComplex

SCANNED_CHARS = 20
# Longest side of a rendered page in pixels, whatever the page claims to measure: a page
# declared 200 inches wide must not become a gigabyte bitmap.
MAX_RENDER_SIDE = 2_000


def read_pdf(data: bytes, name: str, limits: DocumentLimits, reading: Reading) -> None:
    reading.unit = "page"
    try:
        document = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        if exc.err_code == pdfium_c.FPDF_ERR_PASSWORD:
            raise DocumentEncrypted(name) from exc
        raise DocumentCorrupt(name, "it is not a PDF I can open (damaged?)") from exc
    skipped_scans = 0
    try:
        reading.total = len(document)
        if reading.total == 0:
            raise DocumentCorrupt(name, "the PDF has no pages")
        for index in range(min(reading.total, limits.max_pages)):
            number = index + 1
            try:
                page = document[index]
            except pdfium.PdfiumError as exc:
                raise DocumentCorrupt(name, f"page {number} is damaged") from exc
            try:
                text = _page_text(page)
                if len(text.strip()) < SCANNED_CHARS and _has_image(page):
                    if len(reading.images) < limits.max_page_images:
                        reading.images.append(_render(page, limits.page_image_dpi))
                        reading.image_pages.append(number)
                        text = f"(page {number} is a scan; it is attached as an image)"
                    else:
                        skipped_scans += 1
                        text = f"(page {number} is a scan; over the image limit, not shown)"
            finally:
                page.close()
            if not reading.add(f"\n\n## Page {number}\n\n{text.strip()}\n"):
                break
            reading.read = number
    except RecursionError as exc:
        raise DocumentTooComplex(name, "its structure loops back on itself") from exc
    finally:
        document.close()
    if skipped_scans:
        reading.notes.append(
            f"{skipped_scans} more scanned page{'s' if skipped_scans > 1 else ''} "
            f"not sent (at most {limits.max_page_images} images)"
        )


def _page_text(page: pdfium.PdfPage) -> str:
    textpage = page.get_textpage()
    try:
        return str(textpage.get_text_range()).replace("\r\n", "\n")
    finally:
        textpage.close()


def _has_image(page: pdfium.PdfPage) -> bool:
    images = page.get_objects(filter=[pdfium_c.FPDF_PAGEOBJ_IMAGE], max_depth=2)
    return next(iter(images), None) is not None


def _render(page: pdfium.PdfPage, dpi: int) -> bytes:
    longest = max(*page.get_size(), 1.0)  # in points
    bitmap = page.render(scale=min(dpi / 72, MAX_RENDER_SIDE / longest), may_draw_forms=False)
    try:
        image = bitmap.to_pil()
        out = io.BytesIO()
        image.convert("L").save(out, format="PNG", optimize=False)
        return out.getvalue()
    finally:
        bitmap.close()
