"""Process plumbing shared by the local Kafka and PostgreSQL: detached start, pid files, stop."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Sequence
from pathlib import Path


class StackError(RuntimeError):
    """The local stack cannot start or stop; the message says what to do."""


def tail(text: str, lines: int = 25) -> str:
    """The last ``lines`` lines of ``text``, for error messages."""
    return "\n".join(text.splitlines()[-lines:])


def spawn_detached(argv: Sequence[str], log: Path) -> int:
    """Starts ``argv`` in its own session, output appended to ``log``; returns its pid.

    The process outlives the command that started it (``wcs-audit stack up`` returns), so no
    ``Popen`` object is kept that would warn about it on garbage collection.
    """
    with log.open("ab") as out:
        return os.posix_spawn(
            argv[0],
            list(argv),
            dict(os.environ),
            setsid=True,
            file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                (os.POSIX_SPAWN_DUP2, out.fileno(), 1),
                (os.POSIX_SPAWN_DUP2, out.fileno(), 2),
            ],
        )


def read_pid(pid_file: Path) -> int | None:
    """The pid recorded in ``pid_file``, or None when there is none."""
    try:
        return int(pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def pid_alive(pid: int) -> bool:
    """True while ``pid`` runs; reaps it when it is our exited child."""
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass  # not our child
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return True  # not Linux: trust kill(0)


def stop_pid(pid_file: Path, grace_s: float) -> bool:
    """SIGTERM the process in ``pid_file``, SIGKILL it after ``grace_s``; False if none ran."""
    pid = read_pid(pid_file)
    if pid is None or not pid_alive(pid):
        pid_file.unlink(missing_ok=True)
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if pid_alive(pid):
        os.kill(pid, signal.SIGKILL)
    pid_file.unlink(missing_ok=True)
    return True
