"""The collector settings `parley serve` applies once it has started."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from bot.service import collector


@pytest.fixture
def restored_collector() -> Iterator[None]:
    before = gc.get_threshold()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


@pytest.mark.usefixtures("restored_collector")
def test_settling_freezes_what_start_up_left_and_collects_young_objects_less_often() -> None:
    kept_from_start_up = [[n] for n in range(10)]

    collector.settle()

    # Frozen objects sit in no generation, so no collection walks them again.
    walked = {id(o) for o in gc.get_objects()}
    assert not any(id(o) in walked for o in kept_from_start_up)
    assert gc.get_freeze_count() >= len(kept_from_start_up)
    assert gc.get_threshold() == (collector.YOUNG_THRESHOLD, *collector.OLDER_THRESHOLDS)


@pytest.mark.usefixtures("restored_collector")
def test_a_cycle_made_after_settling_is_still_collected() -> None:
    collector.settle()

    class Node:
        other: object

    cycle = Node()
    cycle.other = cycle
    del cycle

    assert gc.collect() >= 1
