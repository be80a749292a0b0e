"""A durable, bounded, ordered spool of Kafka records on local disk, for when Kafka is away.

Records are appended to segment files ``<seq>.seg`` as ``[length u32][crc32 u32][payload]``;
an append returns only after ``fsync`` (concurrent appends share one ``fsync``: group commit).
The drain position lives in ``cursor`` (replaced atomically), so after a crash every record
appended and not yet confirmed drained is drained again: at least once, in append order.
A torn record at the end of the last segment (crash mid-write) is cut off at open; it was
never acknowledged.
"""

from __future__ import annotations

import asyncio
import logging
import os
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

logger = logging.getLogger(__name__)

_FRAME = struct.Struct(">II")
SEGMENT_BYTES = 16 * 1024 * 1024
READ_CHUNK = 1024 * 1024


class SpoolError(OSError):
    """The spool cannot take the record (full, or the disk failed): answer 503."""


class SpooledRecord(NamedTuple):
    """One Kafka record as kept in the spool (built for every hook: a NamedTuple is as
    immutable as a frozen dataclass and cheaper to build)."""

    topic: str
    key: bytes | None
    value: bytes
    headers: Sequence[tuple[str, bytes]]

    def encode(self) -> bytes:
        """Length-prefixed fields: topic, key (-1 when None), value, headers."""
        parts = [_blob(self.topic.encode())]
        parts.append(struct.pack(">i", -1) if self.key is None else _blob(self.key))
        parts.append(_blob(self.value))
        parts.append(struct.pack(">I", len(self.headers)))
        for name, value in self.headers:
            parts += [_blob(name.encode()), _blob(value)]
        return b"".join(parts)

    @classmethod
    def decode(cls, data: bytes) -> SpooledRecord:
        """Inverse of :meth:`encode`; raises ``struct.error``/``ValueError`` on bad input."""
        reader = _Reader(data)
        topic = reader.blob().decode()
        key = reader.optional_blob()
        value = reader.blob()
        headers = [(reader.blob().decode(), reader.blob()) for _ in range(reader.u32())]
        return cls(topic, key, value, headers)


def _blob(data: bytes) -> bytes:
    return struct.pack(">i", len(data)) + data


class _Reader:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def u32(self) -> int:
        (value,) = struct.unpack_from(">I", self.data, self.pos)
        self.pos += 4
        return int(value)

    def optional_blob(self) -> bytes | None:
        (size,) = struct.unpack_from(">i", self.data, self.pos)
        if size < 0:
            self.pos += 4
            return None
        return self.blob()

    def blob(self) -> bytes:
        (size,) = struct.unpack_from(">i", self.data, self.pos)
        start = self.pos + 4
        if size < 0 or start + size > len(self.data):
            raise ValueError("spool record field overruns its frame")
        self.pos = start + size
        return self.data[start : self.pos]


@dataclass(frozen=True, slots=True)
class Position:
    """Where a record ends: segment number and byte offset after it."""

    segment: int
    offset: int


class Spool:
    """The spool in ``directory``, holding at most ``max_bytes`` of frames not yet drained.

    Single-process, single event loop: :meth:`append` may be called concurrently; one drainer
    calls :meth:`read` and :meth:`confirm`.
    """

    def __init__(self, directory: Path, max_bytes: int, segment_bytes: int = SEGMENT_BYTES) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self._sizes: dict[int, int] = {}  # segment -> durable size
        self._cursor = Position(1, 0)
        self._depth = 0
        self._pending_bytes = 0
        self._pending: list[tuple[bytes, asyncio.Future[None]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._tail: int | None = None  # file descriptor of the last segment
        self.refusing = False  # the last append failed, and nothing was drained since

    # -- opening and recovery ---------------------------------------------------------------

    def open(self) -> None:
        """Creates the directory or recovers it: cuts torn tails, counts undrained records.

        Blocks on disk I/O (start-up only). Raises ``OSError`` when the directory is unusable.
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        cursor_file = self.directory / "cursor"
        if cursor_file.exists():
            cursor_segment, cursor_offset = cursor_file.read_text().split()
            self._cursor = Position(int(cursor_segment), int(cursor_offset))
        segments = sorted(int(p.stem) for p in self.directory.glob("*.seg"))
        for segment in segments:
            if segment < self._cursor.segment:
                self._segment_path(segment).unlink()
                continue
            self._sizes[segment] = self._recover_segment(segment, last=segment == segments[-1])
        if not self._sizes:
            self._sizes[self._cursor.segment] = 0
            self._segment_path(self._cursor.segment).touch()
        self._tail = os.open(self._segment_path(max(self._sizes)), os.O_WRONLY | os.O_APPEND)
        # counted a segment at a time, so a large spool is never held in memory at once
        self._depth = sum(
            len(
                self._scan_segment(
                    segment, self._cursor.offset if segment == self._cursor.segment else 0, None
                )
            )
            for segment in sorted(self._sizes)
            if segment >= self._cursor.segment
        )
        logger.info("ingest.spool.opened", extra={"records": self._depth, "bytes": self.size})

    def _recover_segment(self, segment: int, *, last: bool) -> int:
        path = self._segment_path(segment)
        data = path.read_bytes()
        good = 0
        for end, _ in _frames(data, 0):
            good = end
        if good < len(data):
            logger.warning(
                "ingest.spool.torn_tail_cut",
                extra={
                    "segment": segment,
                    "kept": good,
                    "cut": len(data) - good,
                    "last_segment": last,
                },
            )
            with path.open("r+b") as file:
                file.truncate(good)
                file.flush()
                os.fsync(file.fileno())
        return good

    def close(self) -> None:
        """Closes the tail segment; pending appends must have finished."""
        if self._tail is not None:
            os.close(self._tail)
            self._tail = None

    # -- appending -------------------------------------------------------------------------

    @property
    def depth(self) -> int:
        """Records appended (or being appended) and not yet confirmed drained."""
        return self._depth

    @property
    def size(self) -> int:
        """Bytes of frames not yet drained, including appends in progress."""
        drained = self._cursor.offset
        return sum(self._sizes.values()) - drained + self._pending_bytes

    async def append(self, record: SpooledRecord) -> None:
        """Appends ``record``; returns once it is fsync'd. Raises :class:`SpoolError`.

        The record counts in :attr:`depth` from the moment of the call (before any await).
        """
        payload = record.encode()
        frame = _FRAME.pack(len(payload), zlib.crc32(payload)) + payload
        if self.size + len(frame) > self.max_bytes:
            self.refusing = True
            raise SpoolError(f"spool full ({self.size} of {self.max_bytes} bytes)")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((frame, future))
        self._pending_bytes += len(frame)
        self._depth += 1
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_pending())
        try:
            await asyncio.shield(future)
        except SpoolError:
            self._depth -= 1
            raise

    async def _flush_pending(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            data = b"".join(frame for frame, _ in batch)
            try:
                segment = self._rotate_if_full()
                await asyncio.to_thread(_write_durably, self._tail_fd(), data)
            except OSError as error:
                self.refusing = True
                self._pending_bytes -= len(data)
                for _, future in batch:
                    future.set_exception(SpoolError(f"spool write failed: {error}"))
                continue
            self._sizes[segment] += len(data)
            self._pending_bytes -= len(data)
            for _, future in batch:
                future.set_result(None)

    def _tail_fd(self) -> int:
        assert self._tail is not None, "open() the spool before appending"
        return self._tail

    def _rotate_if_full(self) -> int:
        segment = max(self._sizes)
        if self._sizes[segment] < self.segment_bytes:
            return segment
        os.close(self._tail_fd())
        segment += 1
        self._tail = os.open(
            self._segment_path(segment), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600
        )
        self._sizes[segment] = 0
        _fsync_dir(self.directory)
        return segment

    # -- draining --------------------------------------------------------------------------

    def read(self, limit: int) -> list[tuple[Position, SpooledRecord]]:
        """Up to ``limit`` durable records after the cursor, oldest first (blocks on disk)."""
        return [
            (end, SpooledRecord.decode(payload)) for end, payload in self._scan(self._cursor, limit)
        ]

    def confirm(self, position: Position, records: int) -> None:
        """Marks every record up to ``position`` drained (``records`` of them); deletes
        segments left behind. Blocks on one atomic file replace plus fsync."""
        self._cursor = position
        self._depth -= records
        self.refusing = False
        if position.offset >= self._sizes[position.segment] and position.segment < max(self._sizes):
            self._cursor = Position(position.segment + 1, 0)
        _replace_durably(
            self.directory / "cursor", f"{self._cursor.segment} {self._cursor.offset}\n".encode()
        )
        for segment in [s for s in self._sizes if s < self._cursor.segment]:
            del self._sizes[segment]
            self._segment_path(segment).unlink(missing_ok=True)

    def _scan(self, start: Position, limit: int | None) -> list[tuple[Position, bytes]]:
        found: list[tuple[Position, bytes]] = []
        offset = start.offset
        for segment in sorted(s for s in self._sizes if s >= start.segment):
            wanted = None if limit is None else limit - len(found)
            found += self._scan_segment(segment, offset, wanted)
            if limit is not None and len(found) >= limit:
                break
            offset = 0
        return found

    def _scan_segment(
        self, segment: int, offset: int, limit: int | None
    ) -> list[tuple[Position, bytes]]:
        """Frames of one segment from ``offset`` up to its durable size, read in chunks."""
        found: list[tuple[Position, bytes]] = []
        size = self._sizes[segment]
        with self._segment_path(segment).open("rb") as file:
            file.seek(offset)
            buffer = b""
            while offset + len(buffer) < size and (limit is None or len(found) < limit):
                buffer += file.read(min(READ_CHUNK, size - offset - len(buffer)))
                frames = _frames(buffer, offset)
                if limit is not None:
                    frames = frames[: limit - len(found)]
                if frames:
                    consumed = frames[-1][0] - offset
                    buffer, offset = buffer[consumed:], frames[-1][0]
                found += [(Position(segment, end), payload) for end, payload in frames]
        return found

    def _segment_path(self, segment: int) -> Path:
        return self.directory / f"{segment:012d}.seg"


def _frames(data: bytes, base: int) -> list[tuple[int, bytes]]:
    """Valid frames of ``data`` as ``(end offset + base, payload)``; stops at the first bad one."""
    frames, pos = [], 0
    while pos + _FRAME.size <= len(data):
        size, crc = _FRAME.unpack_from(data, pos)
        end = pos + _FRAME.size + size
        payload = data[pos + _FRAME.size : end]
        if end > len(data) or zlib.crc32(payload) != crc:
            break
        frames.append((base + end, payload))
        pos = end
    return frames


def _write_durably(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]
    os.fsync(fd)


def _replace_durably(path: Path, data: bytes) -> None:
    temporary = path.with_suffix(".tmp")
    with temporary.open("wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())
    temporary.replace(path)
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
