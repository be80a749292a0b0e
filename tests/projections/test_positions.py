"""Positions: next offsets per partition, stored with the batch, never moving backwards."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from projections.positions import load_positions, positions_of, save_positions


@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int
    value: bytes | None = None
    headers: tuple[tuple[str, bytes], ...] = ()


def test_positions_of_a_batch_are_the_next_offsets() -> None:
    batch = [Record("t", 0, 5), Record("t", 1, 9), Record("t", 0, 7), Record("u", 0, 0)]
    assert positions_of(batch) == {("t", 0): 8, ("t", 1): 10, ("u", 0): 1}
    assert positions_of([]) == {}


@pytest.mark.kafka
@pytest.mark.postgres
async def test_a_stored_position_never_moves_backwards(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await save_positions(conn, "p", {("t", 0): 8, ("t", 1): 10})
    async with engine.begin() as conn:  # a late, older batch (e.g. during a rebalance)
        await save_positions(conn, "p", {("t", 0): 5, ("t", 2): 3})
    async with engine.connect() as conn:
        assert await load_positions(conn, "p", {"t"}) == {("t", 0): 8, ("t", 1): 10, ("t", 2): 3}
        assert await load_positions(conn, "other", {"t"}) == {}
