"""Whether the projector may go on: shared by the batch handler and the rebalance listener."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass(slots=True)
class ProjectorState:
    """Whether the projector may go on; a failed batch stops it for good (restart to resume).

    ``owned`` is the (topic, partition) pairs this consumer holds, kept by the rebalance
    listener; None until a listener keeps it (then every partition counts as owned).
    """

    stopped: asyncio.Event = field(default_factory=asyncio.Event)
    error: BaseException | None = None
    owned: set[tuple[str, int]] | None = None
    next_offsets: dict[tuple[str, int], int] = field(default_factory=dict)
    """The offset the next record of each owned partition should have: where the listener
    sought it, then the position after each batch. A batch that starts further on skipped
    records Kafka no longer held (retention deleted them before they were projected)."""

    def own(self, pairs: Iterable[tuple[str, int]]) -> None:
        self.owned = (self.owned or set()) | set(pairs)

    def disown(self, pairs: Iterable[tuple[str, int]]) -> None:
        pairs = set(pairs)
        self.owned = (self.owned or set()) - pairs
        for pair in pairs:
            self.next_offsets.pop(pair, None)

    def fail(self, error: BaseException) -> None:
        self.error = error
        self.stopped.set()


class ProjectorStoppedError(RuntimeError):
    """A previous batch failed; this one is not applied (the process is shutting down)."""
