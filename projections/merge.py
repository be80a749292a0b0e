"""How partial rows of one read-model row combine, whatever order their events arrive in.

A :class:`Model` names, for each column of a table, the rule that merges two partial rows:

- ``first``: the earliest time wins (``LEAST``), ``last``: the latest (``GREATEST``);
- ``sums``: counters add up (the caller only ever contributes each event once);
- ``keep``: identity columns, the first non-null value stays;
- a :class:`StatusGroup`: columns chosen together by the precedence key
  ``(rank, at, event)``: a terminal status (rank 2) beats any active one (rank 1), which beats a
  request (rank 0); among equal ranks the later event wins, the event id breaks ties;
- the ``attrs`` group: descriptive columns; the latest event that carries a value wins.

Every rule is commutative and associative, so a batch can be folded in memory (:func:`fold`)
and then merged into the table by the same rules in SQL (``projections.upsert``): the result
does not depend on arrival order. One exception, accepted to keep one timestamp per row: the
attrs rule is order-independent only while an attribute never takes two *different* non-null
values from events interleaved with ones that lack it (WCS sends a leg's codecs, name and
parties unchanged in every body that carries them).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

Row = dict[str, Any]


@dataclass(frozen=True, slots=True)
class StatusGroup:
    """Columns set together by the event that wins on ``(rank, at, event)``."""

    rank: str
    at: str
    event: str
    members: tuple[str, ...]

    @property
    def columns(self) -> tuple[str, ...]:
        return (self.rank, self.at, self.event, *self.members)


def status_group(prefix: str = "", extra: tuple[str, ...] = ()) -> StatusGroup:
    """The standard group ``{prefix}status``, ``…_rank``, ``…_at``, ``…_event`` plus ``extra``."""
    return StatusGroup(
        rank=f"{prefix}status_rank",
        at=f"{prefix}status_at",
        event=f"{prefix}status_event",
        members=(f"{prefix}status", *extra),
    )


@dataclass(frozen=True, slots=True)
class Model:
    """The merge rules of one table; ``key`` columns identify the row."""

    key: tuple[str, ...]
    keep: tuple[str, ...] = ()
    first: tuple[str, ...] = ()
    last: tuple[str, ...] = ()
    sums: tuple[str, ...] = ()
    statuses: tuple[StatusGroup, ...] = ()
    attrs: tuple[str, ...] = ()
    attrs_at: str = "attrs_at"
    template: Row = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        template: Row = dict.fromkeys(self.columns)
        template.update(dict.fromkeys(self.sums, 0))
        object.__setattr__(self, "template", template)

    @property
    def columns(self) -> tuple[str, ...]:
        """Every column a partial row carries, in a fixed order."""
        grouped = tuple(c for g in self.statuses for c in g.columns)
        attrs = (*self.attrs, self.attrs_at) if self.attrs else ()
        return (*self.key, *self.keep, *self.first, *self.last, *self.sums, *grouped, *attrs)

    def empty(self, key: Mapping[str, Any]) -> Row:
        """A partial row that contributes nothing but its key."""
        row = self.template.copy()
        row.update(key)
        return row

    def key_of(self, row: Mapping[str, Any]) -> tuple[Any, ...]:
        return tuple(row[name] for name in self.key)


def _least(a: Any, b: Any) -> Any:
    if a is None:
        return b
    return a if b is None or a <= b else b


def _greatest(a: Any, b: Any) -> Any:
    if a is None:
        return b
    return a if b is None or a >= b else b


def status_wins(group: StatusGroup, current: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """True if ``new``'s status beats ``current``'s on ``(rank, at, event)``."""
    if new[group.at] is None:
        return False
    if current[group.at] is None:
        return True
    new_key = (new[group.rank], new[group.at], new[group.event])
    return bool(new_key > (current[group.rank], current[group.at], current[group.event]))


def merge(model: Model, a: Mapping[str, Any], b: Mapping[str, Any]) -> Row:
    """Combines two partial rows of the same key by ``model``'s rules (pure)."""
    row: Row = {name: a[name] for name in model.key}
    for name in model.keep:
        row[name] = a[name] if a[name] is not None else b[name]
    for name in model.first:
        row[name] = _least(a[name], b[name])
    for name in model.last:
        row[name] = _greatest(a[name], b[name])
    for name in model.sums:
        row[name] = a[name] + b[name]
    for group in model.statuses:
        winner = b if status_wins(group, a, b) else a
        row.update({name: winner[name] for name in group.columns})
    if model.attrs:
        row.update(merge_attrs(model, a, b))
    return row


def merge_attrs(model: Model, a: Mapping[str, Any], b: Mapping[str, Any]) -> Row:
    """The attrs rule: ``b``'s non-null values win if ``b`` is strictly newer."""
    at_a, at_b = a[model.attrs_at], b[model.attrs_at]
    newer, older = (b, a) if at_b is not None and (at_a is None or at_b > at_a) else (a, b)
    row: Row = {
        name: newer[name] if newer[name] is not None else older[name] for name in model.attrs
    }
    row[model.attrs_at] = _greatest(at_a, at_b)
    return row


def fold(model: Model, rows: Iterable[Mapping[str, Any]]) -> list[Row]:
    """Merges partial rows by key; one row per key, in first-seen key order."""
    folded: dict[tuple[Any, ...], Row] = {}
    for row in rows:
        key = model.key_of(row)
        current = folded.get(key)
        folded[key] = dict(row) if current is None else merge(model, current, row)
    return list(folded.values())
