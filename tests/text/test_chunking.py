from __future__ import annotations

import random
import re
from datetime import timedelta

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from bot.text.chunking import FENCE, MIN_LIMIT, split_message, split_pieces

# A fence line `split_pieces` adds to reopen a code block: a fence, an info string, a newline.
REOPEN = re.compile(r"```[^\n]*\n")


def _strip_fence_repairs(chunks: list[str]) -> str:
    """Undo the closing/reopening fences split_message adds, to compare with the input."""
    out = []
    for i, chunk in enumerate(chunks):
        if i > 0 and chunks[i - 1].endswith("\n```") and chunk.startswith("```"):
            chunk = chunk.split("\n", 1)[1]
        if i < len(chunks) - 1 and chunk.endswith("\n```") and chunks[i + 1].startswith("```"):
            chunk = chunk[: -len("```")]
        out.append(chunk)
    return "".join(out)


def _fence_lines(chunk: str) -> int:
    return sum(line.strip().startswith(FENCE) for line in chunk.split("\n"))


def _check_split(text: str, limit: int) -> None:
    """The contract, exactly: each piece is `reopen + body + close`, where `body` is the
    next slice of `text` and the repairs are fence lines and nothing else; the bodies put
    together are `text`; every rendered piece fits `limit`; a closed piece has balanced
    fences and the next piece reopens the block; `split_message` posts the rendered
    pieces except blank ones."""
    pieces = split_pieces(text, limit)
    assert "".join(p.body for p in pieces) == text
    assert all(p.body for p in pieces)
    for i, piece in enumerate(pieces):
        assert len(piece.render()) <= limit
        assert piece.reopen == "" or REOPEN.fullmatch(piece.reopen)
        if piece.close:
            expected = FENCE if (piece.reopen + piece.body).endswith("\n") else "\n" + FENCE
            assert piece.close == expected
            assert _fence_lines(piece.render()) % 2 == 0
            assert pieces[i + 1].reopen
        else:
            assert i == len(pieces) - 1 or not pieces[i + 1].reopen
    assert split_message(text, limit) == [p.render() for p in pieces if p.render().strip()]


def test_short_text_is_one_chunk() -> None:
    assert split_message("hello", 2000) == ["hello"]


def test_plain_text_is_lossless_and_within_limit() -> None:
    rng = random.Random(7)
    text = "".join(rng.choice("abc \n") for _ in range(30_000))
    chunks = split_message(text, 500)
    assert all(len(c) <= 500 for c in chunks)
    assert "".join(chunks) == text


def test_prefers_paragraph_boundaries() -> None:
    paragraphs = [("word " * 60).strip() for _ in range(10)]
    chunks = split_message("\n\n".join(paragraphs), 1000)
    assert all(c.rstrip("\n").endswith("word") for c in chunks)


def test_code_block_is_closed_and_reopened_with_its_language() -> None:
    code = "\n".join(f"print({i})" for i in range(600))
    text = f"Here:\n\n```python\n{code}\n```\n\nDone."
    chunks = split_message(text, 2000)
    assert len(chunks) > 2
    assert all(len(c) <= 2000 for c in chunks)
    assert all(c.count("```") % 2 == 0 for c in chunks)
    assert all(c.startswith("```python\n") for c in chunks[1:-1])
    assert _strip_fence_repairs(chunks) == text


def test_refuses_a_limit_too_small_for_fences() -> None:
    with pytest.raises(ValueError):
        split_message("x" * 100, MIN_LIMIT - 1)


# --- issue 8: a fence line near the limit -----------------------------------------------


@pytest.mark.timeout(10)
@pytest.mark.parametrize("limit", [12_000, 2_000], ids=["slack", "discord"])
def test_a_fence_line_of_limit_minus_5_then_more_text_terminates(limit: int) -> None:
    text = FENCE + "y" * (limit - 8) + "\nmore text"
    chunks = split_message(text, limit)
    assert all(len(c) <= limit for c in chunks)
    assert chunks[-1].endswith("more text")
    _check_split(text, limit)


@pytest.mark.timeout(10)
@pytest.mark.parametrize("offset", range(-12, 6))
def test_fence_lines_near_the_limit_give_no_piece_over_it(offset: int) -> None:
    limit = 2_000
    text = "Intro.\n" + FENCE + "y" * (limit + offset) + "\ncode\n" + FENCE + "\nAfter."
    assert all(len(c) <= limit for c in split_message(text, limit))
    _check_split(text, limit)


def test_an_unclosed_fence_line_is_not_duplicated() -> None:
    text = FENCE + "y" * 30_000
    chunks = split_message(text, 12_000)
    assert all(len(c) <= 12_000 for c in chunks)
    assert sum(c.count("y") for c in chunks) == 30_000
    _check_split(text, 12_000)


def test_a_long_info_string_is_reopened_without_it() -> None:
    text = FENCE + "python " + "x" * 100 + "\n" + "print(1)\n" * 40 + FENCE
    pieces = split_pieces(text, 100)
    assert len(pieces) > 2
    assert {p.reopen for p in pieces[1:]} == {FENCE + "\n"}
    _check_split(text, 100)


def test_blank_pieces_are_not_posted() -> None:
    text = "a" * 30 + " " * 200
    [chunk] = split_message(text, MIN_LIMIT)
    assert chunk.rstrip() == "a" * 30
    _check_split(text, MIN_LIMIT)


# --- properties ---------------------------------------------------------------------------

_SEGMENTS = st.one_of(
    st.text(alphabet="ab `\n", max_size=40),
    st.sampled_from([FENCE, FENCE + "\n", FENCE + "python\n", "\n" + FENCE + "\n", "\n\n", " "]),
    st.integers(0, 400).map(lambda n: FENCE + "y" * n + "\n"),
    st.integers(0, 400).map(lambda n: "z" * n),
    st.text(max_size=20),  # anything: astral characters, \r, control characters
)

# An example takes about a millisecond; the margin is for a loaded 2-core machine.
DEADLINE = timedelta(seconds=2)
TEXTS = st.lists(_SEGMENTS, max_size=30).map("".join)
LIMITS = st.integers(MIN_LIMIT, 300)


@pytest.mark.timeout(60)
@settings(max_examples=300, deadline=DEADLINE)
@given(text=TEXTS, limit=LIMITS)
@example(text=FENCE + "y" * 32 + "\nmore text", limit=MIN_LIMIT)
@example(text=FENCE + "y" * 300, limit=100)
def test_any_text_splits_within_the_limit_and_losslessly(text: str, limit: int) -> None:
    _check_split(text, limit)


@pytest.mark.timeout(60)
@settings(max_examples=100, deadline=DEADLINE)
@given(text=st.text(alphabet="ab \n", max_size=400), limit=LIMITS)
def test_text_without_fences_is_split_verbatim(text: str, limit: int) -> None:
    chunks = split_message(text, limit)
    assert all(len(c) <= limit for c in chunks)
    assert "".join(chunks) == "".join(p.body for p in split_pieces(text, limit) if p.body.strip())
    assert all(not p.reopen and not p.close for p in split_pieces(text, limit))
