"""The garbage collector's settings for the long-running services."""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 50_000
# projector and rebuild: a batch holds hundreds of thousands of young objects until it commits
BATCH_YOUNG_THRESHOLD = 400_000


def settle_heap(young: int = YOUNG_THRESHOLD) -> None:
    """Freezes what start-up built (it lives as long as the process, the collector can skip
    it) and lets ``young`` objects be allocated before a young-generation collection.

    The services free almost everything by reference counting; the collector is there for
    the rare cycle. With CPython's default threshold (700) a projector batch, thousands of
    events of a dozen containers each, alive until its transaction commits, is rescanned by
    every tenth young collection. ``bench.projector`` measured 163 µs of CPU per event with
    the default and 128 µs with 50,000 (and 136 µs with the collector off). The projector
    uses :data:`BATCH_YOUNG_THRESHOLD`: with 50,000 its collections still took 2.7 of 22.8 s
    of CPU (11 %), with 400,000 1.0 of 17.0 s; 87 and 86 against 82 and 77 µs per event in
    two pairs of runs.
    """
    gc.freeze()
    gc.set_threshold(young, 20, 100)
