import gc
from collections.abc import Iterator

import pytest

from wcs_audit.heap import YOUNG_THRESHOLD, settle_heap


@pytest.fixture
def collector() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


@pytest.mark.usefixtures("collector")
def test_settle_heap_freezes_startup_objects_and_collects_young_objects_less_often() -> None:
    built_at_startup = [[index] for index in range(10)]  # lists: tracked by the collector

    settle_heap()

    assert gc.get_freeze_count() >= len(built_at_startup)
    assert gc.get_threshold()[0] == YOUNG_THRESHOLD
