from __future__ import annotations

import random

import pytest

from bot.chunking import split_message


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
        split_message("x" * 100, 10)
