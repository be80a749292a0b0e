"""The supervisor restarts a child that dies, and a terminal's Ctrl-C reaches each child as one
SIGTERM from the supervisor (a single, graceful shutdown); a SIGTERM during a child's start-up
stops it, and a child that does not stop is killed after the grace period."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.conftest import wait_for

CHILD = """
import signal, sys, time
from pathlib import Path
from wcs_audit.supervise import supervise

log = Path(sys.argv[1])

def child() -> None:
    seen = []
    def record(signum, _frame):
        seen.append(signal.Signals(signum).name)
        with log.open("a") as out:
            out.write(signal.Signals(signum).name + "\\n")
    signal.signal(signal.SIGINT, record)
    signal.signal(signal.SIGTERM, record)
    with log.open("a") as out:
        out.write("started\\n")
    if len(log.read_text().splitlines()) == 1:
        sys.exit(3)  # the first start dies at once: the supervisor must start it again
    while "SIGTERM" not in seen:
        time.sleep(0.05)

supervise([("child", child)])
"""


def test_child_restarted_and_ctrl_c_gives_one_sigterm(tmp_path: Path) -> None:
    log = tmp_path / "child.log"
    supervisor = subprocess.Popen([sys.executable, "-c", CHILD, str(log)], start_new_session=True)
    try:
        wait_for(lambda: log.exists() and log.read_text().count("started") == 2)
        os.killpg(supervisor.pid, signal.SIGINT)  # what a terminal does on Ctrl-C
        assert supervisor.wait(timeout=30) == 0
    finally:
        if supervisor.poll() is None:
            os.killpg(supervisor.pid, signal.SIGKILL)
            supervisor.wait()
    assert log.read_text().splitlines() == ["started", "started", "SIGTERM"]


STARTING = """
import os, signal, sys, time
from pathlib import Path
from wcs_audit.supervise import supervise

log = Path(sys.argv[1])

def started() -> None:
    with log.open("a") as out:
        out.write(f"{os.getpid()}\\n")

def starting() -> None:  # still starting: no signal handler of its own yet
    started()
    time.sleep(600)

def stuck() -> None:  # ignores SIGTERM altogether
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    started()
    time.sleep(600)

supervise([("starting", starting), ("stuck", stuck)], stop_grace_s=2.0)
"""


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_sigterm_during_start_up_stops_the_child_and_a_stuck_child_is_killed(
    tmp_path: Path,
) -> None:
    log = tmp_path / "child.log"
    supervisor = subprocess.Popen(
        [sys.executable, "-c", STARTING, str(log)], start_new_session=True
    )
    try:
        wait_for(lambda: log.exists() and len(log.read_text().split()) == 2)
        children = [int(pid) for pid in log.read_text().split()]
        supervisor.send_signal(signal.SIGTERM)
        assert supervisor.wait(timeout=20) == 0
        assert [pid for pid in children if alive(pid)] == []
    finally:
        if supervisor.poll() is None:
            os.killpg(supervisor.pid, signal.SIGKILL)
            supervisor.wait()
        for pid in [int(p) for p in log.read_text().split()] if log.exists() else []:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
