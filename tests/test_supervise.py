"""The supervisor restarts a child that dies, and a terminal's Ctrl-C reaches each child as one
SIGTERM from the supervisor (a single, graceful shutdown)."""

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
