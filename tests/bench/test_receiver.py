"""The receiver benchmark's reading of the broker's GC log (the figures, not their timing)."""

from __future__ import annotations

import datetime
from pathlib import Path

from bench.receiver import broker_pauses

G1_LOG = """\
[2026-12-07T23:18:02.688+0000][gc,start    ] GC(27) Pause Young (Normal) (G1 Evacuation Pause)
[2026-12-07T23:18:02.699+0000][gc          ] GC(27) Pause Young (Normal) (G1 Evacuation Pause) 692M->82M(1024M) 11.490ms
[2026-12-07T23:18:02.699+0000][gc,cpu      ] GC(27) User=0.02s Sys=0.00s Real=0.01s
[2026-12-07T23:19:00.772+0000][gc          ] GC(28) Pause Young (Normal) (G1 Evacuation Pause) 691M->82M(1024M) 18.196ms
[2026-12-07T23:19:05.551+0000][gc          ] GC(29) Pause Remark 9M->9M(1024M) 3.667ms
"""  # noqa: E501
ZGC_LOG = """\
[2026-12-07T23:19:06.512+0000][gc,phases   ] GC(0) Pause Mark Start 0.007ms
[2026-12-07T23:19:06.540+0000][gc,phases   ] GC(0) Concurrent Mark 28.001ms
[2026-12-07T23:19:06.558+0000][gc,phases   ] GC(0) Pause Mark End 0.009ms
"""


def at(text: str) -> float:
    return datetime.datetime.fromisoformat(text).timestamp()


def test_pauses_are_those_that_ended_in_the_window_across_rotated_files(tmp_path: Path) -> None:
    log = tmp_path / "kafkaServer-gc.log"
    log.write_text(ZGC_LOG)
    (tmp_path / "kafkaServer-gc.log.0").write_text(G1_LOG)
    (tmp_path / "kafka.log").write_text("[2026-12-07 23:19:01] GC(1) Pause Young 99.0ms\n")

    window = broker_pauses(log, at("2026-12-07T23:18:30+00:00"), at("2026-12-07T23:19:06.55+00:00"))

    assert window == {"count": 3, "total_ms": 21.87, "longest_ms": 18.196}


def test_a_window_without_pauses_counts_none(tmp_path: Path) -> None:
    log = tmp_path / "kafkaServer-gc.log"
    log.write_text(G1_LOG)

    window = broker_pauses(log, at("2026-12-07T23:18:03+00:00"), at("2026-12-07T23:19:00+00:00"))

    assert window == {"count": 0, "total_ms": 0, "longest_ms": 0.0}
