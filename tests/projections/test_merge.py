"""Merge rules: the folded row does not depend on the order of the partial rows."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import pytest

from projections.merge import Model, fold, merge, status_group

MODEL = Model(
    key=("id",),
    keep=("app",),
    first=("first_at",),
    last=("last_at",),
    sums=("count",),
    statuses=(status_group(extra=("info",)),),
    attrs=("codec",),
)


def t(second: int) -> datetime:
    return datetime(2024, 7, 1, 12, 0, second, tzinfo=UTC)


def part(second: int, **values: Any) -> dict[str, Any]:
    row = MODEL.empty({"id": "leg"})
    row.update(first_at=t(second), last_at=t(second), count=1)
    row.update(values)
    return row


def status(second: int, name: str, rank: int, event: int, info: str | None = None) -> Any:
    return part(
        second,
        status=name,
        status_rank=rank,
        status_at=t(second),
        status_event=UUID(int=event),
        info=info,
    )


PARTS = [
    status(1, "PENDING", 0, 1),
    status(2, "PUBLISHING", 1, 2),
    part(3, codec="VP8", attrs_at=t(3), app="defaultApp"),
    status(9, "UNPUBLISHED", 2, 3, "Stopped by user"),
    status(12, "PUBLISHING", 1, 4),  # a keep-alive that arrives after the end
    part(5, codec="VP8", attrs_at=t(5)),
    part(7, codec=None, attrs_at=t(7)),
]


@pytest.mark.parametrize("order", list(itertools.permutations(range(len(PARTS)), 4))[::97])
def test_fold_is_independent_of_order(order: tuple[int, ...]) -> None:
    rest = [i for i in range(len(PARTS)) if i not in order]
    (row,) = fold(MODEL, [PARTS[i] for i in (*order, *rest)])
    assert (row["status"], row["info"], row["status_at"]) == (
        "UNPUBLISHED",
        "Stopped by user",
        t(9),
    )
    assert (row["first_at"], row["last_at"], row["count"]) == (t(1), t(12), 7)
    assert (row["codec"], row["attrs_at"], row["app"]) == ("VP8", t(7), "defaultApp")


@pytest.mark.parametrize(
    ("current", "new", "winner"),
    [
        (status(1, "PENDING", 0, 1), status(2, "PUBLISHING", 1, 2), "PUBLISHING"),
        (status(2, "PUBLISHING", 1, 2), status(1, "PENDING", 0, 1), "PUBLISHING"),
        (status(5, "FAILED", 2, 5), status(9, "PLAYING", 1, 9), "FAILED"),
        (status(5, "STOPPED", 2, 5), status(7, "FAILED", 2, 7), "FAILED"),
        (status(5, "HOLD", 1, 5), status(5, "ESTABLISHED", 1, 6), "ESTABLISHED"),
        (status(5, "HOLD", 1, 5), part(8), "HOLD"),
        (part(8), status(5, "HOLD", 1, 5), "HOLD"),
    ],
)
def test_status_precedence(current: Any, new: Any, winner: str) -> None:
    assert merge(MODEL, current, new)["status"] == winner
    assert merge(MODEL, new, current)["status"] == winner


def test_the_latest_non_null_attribute_wins() -> None:
    older, newer = part(3, codec="VP8", attrs_at=t(3)), part(5, codec="H264", attrs_at=t(5))
    assert merge(MODEL, older, newer)["codec"] == merge(MODEL, newer, older)["codec"] == "H264"


def test_repeating_a_status_changes_nothing_but_counters() -> None:
    once = status(2, "PUBLISHING", 1, 2)
    twice = merge(MODEL, once, once)
    assert {k: v for k, v in twice.items() if k != "count"} == {
        k: v for k, v in once.items() if k != "count"
    }
