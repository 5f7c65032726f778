"""Token estimates, made offline.

Exact tokenizers (tiktoken) download their tables at run time, which fails on a closed
network, and the budget only has to be roughly right: about four bytes of UTF-8 a token
for English and code, and a flat cost for an image.
"""

from __future__ import annotations

IMAGE_TOKENS = 1_000  # a middling image at the API's default detail


def estimate_tokens(text: str) -> int:
    if not text:
        return 0
    return len(text.encode("utf-8")) // 4 + 1
