"""`publisher serve` settles its heap before serving: a full collection under load walks
only what requests made, not the ~175,000 objects of a started server."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from publisher.schedule.daemon import settle_heap


@pytest.fixture
def thawed() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()


def test_settling_puts_what_starting_made_out_of_the_collectors_reach(thawed: None) -> None:
    """After settling, the objects alive at start are frozen and a full collection skips them."""
    kept = [{"n": n} for n in range(50_000)]
    before = len(gc.get_objects())
    settle_heap()
    assert gc.get_freeze_count() >= len(kept)
    assert len(gc.get_objects()) < before - len(kept)
