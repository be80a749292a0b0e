"""A prune deletes the audit log's old hooks and the bodies only they had, records itself, and
keeps the read models; it is refused while a projector runs."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from projections.guard import ProjectionsBusyError, projections_lock
from projections.payloads import StoredPayloads
from projections.progress import Progress
from projections.prune import Pruned, prune
from projections.tables import audit_log_prunes, streams
from tests.conftest import service_env
from tests.projections.story import T0
from tests.projections.test_payloads import apply, bodies_of, first_batch, second_batch, stored
from wcs_audit.cli import main
from wcs_audit.settings import Settings

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

# first_batch() is received 0-50 s after T0, second_batch() 60-90 s after
CUT = T0 + timedelta(seconds=60)


async def two_batches(engine: AsyncEngine, settings: Settings) -> None:
    """Projects both batches: 10 hooks, 3 bodies (the keep-alives' body in both batches)."""
    payloads = StoredPayloads()
    await apply(engine, settings, first_batch(), payloads)
    await apply(engine, settings, second_batch(), payloads)


async def rows_of(engine: AsyncEngine, table: Any) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        return [dict(row._mapping) for row in await conn.execute(select(table))]


def same(pruned: Pruned, hooks: int, payloads: int) -> bool:
    return (pruned.hooks, pruned.payloads) == (hooks, payloads)


async def test_a_prune_deletes_old_hooks_and_the_bodies_only_they_had(
    engine: AsyncEngine, projector_settings: Settings
) -> None:
    await two_batches(engine, projector_settings)
    legs = await rows_of(engine, streams)
    seen: list[Progress] = []

    pruned = await prune(projector_settings, CUT, seen.append, chunk=4)

    # the 6 hooks of the first batch; of their 2 bodies, publishStream's (the keep-alives'
    # body is also the second batch's)
    assert same(pruned, hooks=6, payloads=1)
    assert [(p.done, p.total) for p in seen] == [(4, 6), (6, 6)]
    assert await stored(engine) == (bodies_of(second_batch()), 2)
    assert await rows_of(engine, streams) == legs  # the read models are kept
    [recorded] = await rows_of(engine, audit_log_prunes)
    assert (recorded["received_before"], recorded["hooks"], recorded["payloads"]) == (CUT, 6, 1)

    again = await prune(projector_settings, CUT, seen.append)
    assert same(again, hooks=0, payloads=0)
    assert len(await rows_of(engine, audit_log_prunes)) == 2


async def test_a_dry_run_counts_and_deletes_nothing(
    engine: AsyncEngine, projector_settings: Settings
) -> None:
    await two_batches(engine, projector_settings)
    before = await stored(engine)
    everything = T0 + timedelta(days=1)

    assert same(await prune(projector_settings, CUT, print, dry_run=True), hooks=6, payloads=1)
    assert same(await prune(projector_settings, everything, print, dry_run=True), 10, 3)
    assert await stored(engine) == before
    assert await rows_of(engine, audit_log_prunes) == []


async def test_a_prune_after_an_interrupted_one_deletes_the_bodies_left_behind(
    engine: AsyncEngine, projector_settings: Settings
) -> None:
    """Hooks deleted by a prune stopped before its last step leave their bodies; the next
    prune deletes every body no hook points at."""
    await two_batches(engine, projector_settings)
    async with engine.begin() as conn:
        await conn.execute(text("DELETE FROM hook_log WHERE received_at < :cut"), {"cut": CUT})

    assert same(await prune(projector_settings, T0, print, dry_run=True), hooks=0, payloads=1)
    pruned = await prune(projector_settings, T0, print)

    assert same(pruned, hooks=0, payloads=1)
    assert await stored(engine) == (bodies_of(second_batch()), 2)


async def test_a_prune_is_refused_while_a_projector_runs_and_a_dry_run_is_not(
    engine: AsyncEngine, projector_settings: Settings
) -> None:
    await two_batches(engine, projector_settings)
    before = await stored(engine)
    async with projections_lock(engine, exclusive=False):  # as a live projector holds it
        with pytest.raises(ProjectionsBusyError, match="a live projector is running"):
            await prune(projector_settings, CUT, print)
        counted = await prune(projector_settings, CUT, print, dry_run=True)  # only reads
    assert same(counted, hooks=6, payloads=1)
    assert await stored(engine) == before


async def test_the_command_prunes_what_is_older_than_its_days(
    engine: AsyncEngine,
    projector_settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    await two_batches(engine, projector_settings)  # received in 2024
    for name, value in service_env(projector_settings).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("WCS_AUDIT_DATABASE_URL", projector_settings.database_url)
    command = ["projections", "prune", "--older-than"]

    # in a thread: the command runs its own event loop
    assert await asyncio.to_thread(main, [*command, "36500", "--dry-run"]) == 0  # 100 years
    assert capsys.readouterr().out.startswith("would delete 0 hooks received before ")
    assert await asyncio.to_thread(main, [*command, "30"]) == 0
    assert capsys.readouterr().out.startswith("deleted 10 hooks received before ")
    assert await stored(engine) == ([], 0)
    for refused in ("0", "inf", "nan", "36501"):
        with pytest.raises(SystemExit):
            main([*command, refused])
