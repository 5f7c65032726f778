"""A feedback button's value is untrusted input: any string decodes to a bounded rating or None."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bot.intake.feedback import MAX_MODEL, MAX_VALUE, Rating, decode
from bot.usage.feedback import RATINGS


@given(st.text(max_size=400))
def test_any_value_is_a_bounded_rating_or_nothing(value: str) -> None:
    rating = decode(value)
    if rating is not None:
        assert rating.rating in RATINGS
        assert len(rating.model) + len(rating.persona) <= MAX_VALUE


@given(st.sampled_from(RATINGS), st.text(min_size=1, max_size=300), st.text(max_size=300))
def test_every_button_fits_discord_and_reads_back(rating: str, model: str, persona: str) -> None:
    value = Rating(rating, model, persona).encode()
    assert len(value) <= MAX_VALUE
    back = decode(value)
    clean_model = model.replace("|", "")[:MAX_MODEL]
    if clean_model:
        assert back is not None and back.rating == rating and back.model == clean_model
        assert persona.replace("|", "").startswith(back.persona)
    else:
        assert back is None
