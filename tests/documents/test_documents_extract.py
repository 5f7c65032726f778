"""Reading each format, in process: the Markdown the model gets, the markers, the limits
and the refusals. The worker process and the engine are tested in test_documents.py."""

from __future__ import annotations

import csv
import io
import json
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from bot.documents.formats import Format, detect, extract
from bot.documents.limits import DocumentLimits
from bot.documents.tables import markdown_table
from bot.errors import (
    DocumentCorrupt,
    DocumentEncrypted,
    DocumentError,
    DocumentTooComplex,
    DocumentUnsupported,
)
from tests.fakes.documents import (
    billion_row_xlsx,
    docx_file,
    encrypted_pdf,
    looping_pdf,
    pdf,
    pptx_file,
    with_cached_values,
    xlsx_file,
    zip_bomb,
)

LIMITS = DocumentLimits()
PDF = "application/pdf"


def test_pdf_pages_are_marked_and_scans_become_images() -> None:
    pages = [f"Intro page {n}" for n in range(1, 7)]
    pages[4] = "The marker phrase BLUE HERON lives here"
    result = extract(pdf([*pages, None]), "report.pdf", "application/pdf", LIMITS)
    assert "## Page 5\n\nThe marker phrase BLUE HERON lives here" in result.text
    assert result.text.index("## Page 4") < result.text.index("## Page 5")
    assert result.text.startswith("Attached PDF “report.pdf” (7 pages):")
    assert len(result.images) == 1 and result.images[0].startswith(b"\x89PNG")
    assert "## Page 7\n\n(page 7 is a scan; it is attached as an image)" in result.text
    assert result.summary == "1 scanned page sent as image"


def test_pdf_over_the_page_limit_says_what_was_read() -> None:
    pages: list[str | None] = [f"page text number {n}" for n in range(1, 121)]
    pages[1] = pages[2] = pages[3] = None
    limits = DocumentLimits(max_pages=40)
    result = extract(pdf(pages), "long.pdf", "", limits)
    assert "## Page 40" in result.text and "## Page 41" not in result.text
    assert result.summary == "read pages 1-40 of 120; 3 scanned pages sent as images"


def test_pdf_cut_at_the_character_limit_says_where() -> None:
    pages = [f"{'word ' * 200}end of page {n}" for n in range(1, 21)]
    result = extract(pdf(pages), "long.pdf", "", DocumentLimits(max_chars=5_000))
    assert result.summary is not None
    assert re.fullmatch(r"read pages 1-\d of 20 \(cut at 5,000 characters\)", result.summary)


def test_a_huge_scanned_page_is_rendered_at_a_bounded_size() -> None:
    poster = pdf([None]).replace(b"/MediaBox [0 0 612 792]", b"/MediaBox [0 0 14400 14400]")
    result = extract(poster, "poster.pdf", PDF, LIMITS)
    with Image.open(io.BytesIO(result.images[0])) as image:
        assert max(image.size) <= 2_000


def test_scans_beyond_the_image_cap_are_counted_not_rendered() -> None:
    result = extract(pdf([None] * 5), "scan.pdf", "", DocumentLimits(max_page_images=2))
    assert len(result.images) == 2
    assert result.summary == (
        "2 scanned pages sent as images; 3 more scanned pages not sent (at most 2 images)"
    )


def test_encrypted_pdf_is_refused_plainly() -> None:
    with pytest.raises(DocumentEncrypted) as refused:
        extract(encrypted_pdf(), "secret.pdf", "application/pdf", LIMITS)
    assert "password-protected" in refused.value.user_message


@pytest.mark.parametrize(
    ("data", "name"),
    [
        (b"%PDF-1.7\n1 0 obj << /Type /Catalog >> garbage", "broken.pdf"),
        (b"this is not a pdf", "fake.pdf"),
        (b"PK\x03\x04 truncated zip", "broken.docx"),
        (b"hello", "sheet.xlsx"),
    ],
)
def test_corrupt_files_are_refused_plainly(data: bytes, name: str) -> None:
    with pytest.raises(DocumentCorrupt) as refused:
        extract(data, name, "", LIMITS)
    assert f"I can't read “{name}”" in refused.value.user_message


def test_a_pdf_object_loop_is_refused() -> None:
    with pytest.raises(DocumentCorrupt, match="page 1 is damaged"):
        extract(looping_pdf(), "loop.pdf", PDF, LIMITS)


def test_legacy_and_binary_formats_are_unsupported_with_a_way_out() -> None:
    with pytest.raises(DocumentUnsupported, match=r"save it as \.docx"):
        extract(b"\xd0\xcf\x11\xe0 old word", "old.doc", "application/msword", LIMITS)
    with pytest.raises(DocumentUnsupported, match="binary"):
        extract(b"\x00\x01\x02\x00" * 10, "blob.txt", "text/plain", LIMITS)


def test_zip_bombs_are_refused_from_the_directory_and_while_inflating() -> None:
    small = DocumentLimits(max_unzipped_bytes=20 * 1024 * 1024)
    bomb = zip_bomb(64 * 1024 * 1024)
    assert detect(bomb, "bomb.docx", "") is Format.DOCX
    with pytest.raises(DocumentTooComplex, match="archive bomb"):
        extract(bomb, "bomb.docx", "", small)
    # The directory understates the size: inflating stops at the declared size and the
    # member fails its checksum, so nothing past the bound is ever held.
    with pytest.raises(DocumentError):
        extract(zip_bomb(64 * 1024 * 1024, lie=True), "bomb.docx", "", small)


def test_docx_keeps_headings_lists_and_tables() -> None:
    data = docx_file(
        "Quarterly plan",
        ["The marker phrase is GREEN FALCON."],
        [["Team", "Budget"], ["Ops", "12 | 13"]],
    )
    text = extract(data, "plan.docx", "", LIMITS).text
    assert "## Quarterly plan" in text
    assert "The marker phrase is GREEN FALCON." in text
    assert "- first point" in text
    assert "| Team | Budget |\n| --- | --- |\n| Ops | 12 \\| 13 |" in text


def test_pptx_marks_slides_with_titles() -> None:
    data = pptx_file([("Welcome", "hello"), ("Numbers", "RED KITE on slide two"), ("End", "bye")])
    result = extract(data, "deck.pptx", "", LIMITS)
    assert "## Slide 2\n\n### Numbers\n\n- RED KITE on slide two" in result.text
    assert result.text.startswith("Attached PowerPoint deck “deck.pptx” (3 slides):")
    assert result.summary is None


def test_xlsx_sheets_are_named_tables_with_formula_values() -> None:
    book = xlsx_file(
        {
            "Budget": [["Item", "Cost"], ["Rent", 1200], ["Food", 300], ["Total", "=SUM(B2:B3)"]],
            "Notes": [["WHITE OWL"]],
        }
    )
    book = with_cached_values(book, {"SUM(B2:B3)": "1500"})
    result = extract(book, "budget.xlsx", "", LIMITS)
    assert '## Sheet "Budget"\n\n| Item | Cost |' in result.text
    assert "| Total | 1500 |" in result.text and "SUM" not in result.text
    assert '## Sheet "Notes"' in result.text and "WHITE OWL" in result.text


def test_sheet_rows_are_capped_and_said() -> None:
    book = xlsx_file({"Log": [[n, n * 2] for n in range(1, 2001)]})
    result = extract(book, "log.xlsx", "", DocumentLimits(max_rows=100))
    assert "| 100 | 200 |" in result.text and "| 101 |" not in result.text
    assert result.summary == 'sheet "Log" cut after row 100'


def test_a_sheet_claiming_the_whole_grid_is_read_to_the_caps_only() -> None:
    result = extract(billion_row_xlsx(), "huge.xlsx", "", DocumentLimits(max_rows=1_000))
    assert "| first row marker |" in result.text and "last" not in result.text
    assert result.summary == 'sheet "Huge" cut after row 1,000; sheet "Huge" cut after column 256'


def test_csv_and_tsv_become_tables() -> None:
    result = extract(b"name,score\nada,3\n", "s.csv", "text/csv", LIMITS)
    assert "| name | score |\n| --- | --- |\n| ada | 3 |" in result.text
    result = extract(b"a\tb\n1\t2\n", "s.tsv", "", LIMITS)
    assert "| a | b |" in result.text


def test_html_becomes_markdown_without_scripts() -> None:
    page = (
        b"<html><head><title>t</title><script>alert('x')</script></head><body>"
        b"<h1>Guide</h1><p>Some <b>bold</b> text.</p><ul><li>one</li><li>two</li></ul>"
        b"<table><tr><th>k</th><th>v</th></tr><tr><td>a</td><td>1</td></tr></table>"
        b"<style>p{}</style></body></html>"
    )
    text = extract(page, "guide.html", "text/html", LIMITS).text
    assert "# Guide" in text and "Some bold text." in text
    assert "- one\n- two" in text and "| k | v |" in text
    assert "alert" not in text and "p{}" not in text


def test_json_markdown_and_source_code() -> None:
    assert '"a": 1' in extract(b'{"a":1}', "d.json", "", LIMITS).text
    with pytest.raises(DocumentCorrupt, match="not valid JSON"):
        extract(b"{nope", "d.json", "", LIMITS)
    assert "# Title\n\n- item" in extract(b"# Title\n\n- item\n", "n.md", "", LIMITS).text
    assert "```py\nprint(1)\n```" in extract(b"print(1)\n", "x.py", "", LIMITS).text


cells = st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=12)


@given(st.lists(st.lists(cells, min_size=1, max_size=5), min_size=1, max_size=6))
def test_markdown_tables_keep_every_cell_in_its_column(rows: list[list[str]]) -> None:
    table = markdown_table(rows)
    lines = table.rstrip("\n").split("\n")
    width = max(len(r) for r in rows)
    assert len(lines) == len(rows) + 1  # no cell broke its line
    for line in lines:
        unescaped_pipes = len(re.findall(r"(?<!\\)(?:\\\\)*\|", line))
        assert unescaped_pipes == width + 1


@given(st.lists(st.lists(cells, min_size=1, max_size=4), min_size=1, max_size=5))
def test_csv_round_trips_into_a_table_with_as_many_rows(rows: list[list[str]]) -> None:
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    try:
        result = extract(out.getvalue().encode(), "t.csv", "text/csv", LIMITS)
    except DocumentError:
        return  # a NUL in a cell makes it binary, which is refused, not crashed on
    body = result.text.split(":\n\n", 1)[1]
    if any(any(cell for cell in row) for row in rows):
        assert body.startswith("| ")


@given(
    st.lists(
        st.one_of(
            st.sampled_from(
                [
                    "<h2>",
                    "</h2>",
                    "<ul>",
                    "<li>",
                    "</ul>",
                    "<table>",
                    "<tr>",
                    "<td>",
                    "</td>",
                    "</table>",
                    "<script>",
                    "</script>",
                    "<pre>",
                    "</pre>",
                    "<p>",
                    "<br>",
                    "|",
                ]
            ),
            # no "<" in free text: "<?" or "<!--" would make the script tag itself text,
            # as in a browser; no NUL, which makes the file binary and refused; no lone
            # surrogates, which no file can hold
            st.text(
                st.characters(blacklist_characters="<\x00", blacklist_categories=("Cs",)),
                max_size=10,
            ),
        ),
        max_size=40,
    )
)
def test_any_html_tag_soup_reads_without_script_text(pieces: list[str]) -> None:
    page = "".join(pieces) + "<script>SECRET_SCRIPT()</script>"
    text = extract(page.encode(), "page.html", "text/html", LIMITS).text
    assert "SECRET_SCRIPT" not in text


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    st.binary(max_size=2_000),
    st.sampled_from(["a.pdf", "a.docx", "a.xlsx", "a.pptx", "a.csv", "a.html", "a.json", "a.txt"]),
    st.sampled_from([b"", b"%PDF-1.4\n", b"PK\x03\x04"]),
)
def test_arbitrary_bytes_never_crash_the_dispatcher(data: bytes, name: str, head: bytes) -> None:
    try:
        result = extract(head + data, name, "", LIMITS)
    except DocumentError as refused:
        assert refused.user_message.endswith(".")
        return
    json.dumps(result.to_dict())  # whatever was read can travel back from the worker
