"""The spool on a real disk: order, durability across reopen, torn tails, bounds."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from ingest.spool import Spool, SpooledRecord, SpoolError


def record(i: int, size: int = 10) -> SpooledRecord:
    return SpooledRecord(
        "topic",
        f"key-{i % 3}".encode() if i % 4 else None,
        f"{i:06d}".encode().ljust(size, b"."),
        [("event-id", str(i).encode())],
    )


def values(spool: Spool, limit: int = 1000) -> list[bytes]:
    return [r.value[:6] for _, r in spool.read(limit)]


def test_record_encoding_round_trips() -> None:
    original = SpooledRecord("t", None, b"\x00body", [("a", b""), ("b", b"\xff")])
    assert SpooledRecord.decode(original.encode()) == original


async def test_append_read_confirm_keeps_order(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20)
    spool.open()
    for i in range(10):
        await spool.append(record(i))
    assert spool.depth == 10
    batch = spool.read(4)
    assert [r.value[:6] for _, r in batch] == [f"{i:06d}".encode() for i in range(4)]
    spool.confirm(batch[-1][0], len(batch))
    assert spool.depth == 6
    assert values(spool) == [f"{i:06d}".encode() for i in range(4, 10)]


async def test_reopen_keeps_undrained_records(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20)
    spool.open()
    for i in range(5):
        await spool.append(record(i))
    first = spool.read(2)
    spool.confirm(first[-1][0], 2)
    spool.close()

    reopened = Spool(tmp_path, max_bytes=1 << 20)
    reopened.open()
    assert reopened.depth == 3
    assert values(reopened) == [b"000002", b"000003", b"000004"]


async def test_torn_tail_is_cut_and_appends_continue(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20)
    spool.open()
    for i in range(3):
        await spool.append(record(i))
    spool.close()
    [segment] = tmp_path.glob("*.seg")
    data = segment.read_bytes()
    segment.write_bytes(data + data[:7])  # a crash in the middle of the next frame

    reopened = Spool(tmp_path, max_bytes=1 << 20)
    reopened.open()
    assert reopened.depth == 3
    await reopened.append(record(3))
    assert values(reopened) == [b"000000", b"000001", b"000002", b"000003"]


async def test_corrupt_frame_ends_the_readable_part(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20)
    spool.open()
    for i in range(3):
        await spool.append(record(i))
    spool.close()
    [segment] = tmp_path.glob("*.seg")
    data = bytearray(segment.read_bytes())
    data[-3] ^= 0xFF  # flip a bit in the last record: its CRC no longer matches
    segment.write_bytes(bytes(data))
    reopened = Spool(tmp_path, max_bytes=1 << 20)
    reopened.open()
    assert values(reopened) == [b"000000", b"000001"]


async def test_full_spool_refuses(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=300)
    spool.open()
    accepted = 0
    while spool.size + 100 < 300:
        await spool.append(record(accepted, size=50))
        accepted += 1
    with pytest.raises(SpoolError, match="full"):
        await spool.append(record(accepted, size=50))
    assert 0 < accepted < 100
    assert spool.depth == accepted
    batch = spool.read(100)
    spool.confirm(batch[-1][0], len(batch))
    await spool.append(record(999, size=50))  # room again once drained
    assert spool.depth == 1


async def test_segments_rotate_and_drained_ones_are_deleted(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20, segment_bytes=200)
    spool.open()
    for i in range(30):
        await spool.append(record(i, size=40))
    assert len(list(tmp_path.glob("*.seg"))) > 3
    drained: list[bytes] = []
    while batch := spool.read(7):
        drained += [r.value[:6] for _, r in batch]
        spool.confirm(batch[-1][0], len(batch))
    assert drained == [f"{i:06d}".encode() for i in range(30)]
    assert spool.depth == 0
    assert len(list(tmp_path.glob("*.seg"))) == 1
    spool.close()
    reopened = Spool(tmp_path, max_bytes=1 << 20, segment_bytes=200)
    reopened.open()
    assert reopened.depth == 0


async def test_concurrent_appends_share_fsyncs_and_keep_call_order(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 22)
    spool.open()
    await asyncio.gather(*(spool.append(record(i)) for i in range(200)))
    assert values(spool) == [f"{i:06d}".encode() for i in range(200)]
