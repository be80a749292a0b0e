"""How far a long maintenance task (a rebuild, a prune) is, for a progress line."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Progress:
    """``done`` of ``total`` items (those there were when the task started), after
    ``seconds``."""

    done: int
    total: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.done / self.seconds if self.seconds > 0 else 0.0


ProgressSink = Callable[[Progress], None]
