"""Runs functions in child processes, restarts a child that dies, stops them all on a signal."""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from multiprocessing.process import BaseProcess

logger = logging.getLogger(__name__)

RESTART_DELAY_S = 1.0
STOP_GRACE_S = 30.0


def run_in_own_group(target: Callable[[], object]) -> None:
    """Runs ``target`` in a process group of its own: a Ctrl-C in the terminal reaches only the
    supervisor, which stops every child with one SIGTERM, in order.

    The child starts with the default action for SIGTERM and SIGINT, not the supervisor's
    handlers it was forked with (which only set the supervisor's flag, a copy of it here):
    a SIGTERM that arrives before ``target`` installs its own handler ends the child, instead
    of being lost while the supervisor waits for it.
    """
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    os.setpgid(0, 0)
    target()


def supervise(
    targets: Sequence[tuple[str, Callable[[], object]]], stop_grace_s: float = STOP_GRACE_S
) -> None:
    """Forks one process per ``(name, target)`` and blocks until SIGINT or SIGTERM.

    A child that exits is started again after a second (the projector exits on purpose after
    a failed batch). On the signal every child gets SIGTERM and up to ``stop_grace_s`` to
    finish; one still running then is killed (SIGKILL), so the supervisor always returns.
    """
    context = multiprocessing.get_context("fork")
    stopping = threading.Event()

    def start(name: str, target: Callable[[], object]) -> BaseProcess:
        process = context.Process(target=run_in_own_group, args=(target,), name=name)
        process.start()
        return process

    def stop(_signum: int, _frame: object) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    children = [start(name, target) for name, target in targets]
    logger.info("supervise.started", extra={"children": [name for name, _ in targets]})
    while not stopping.wait(RESTART_DELAY_S):
        for index, (name, target) in enumerate(targets):
            if not children[index].is_alive():
                logger.error(
                    "supervise.child_exited",
                    extra={"child": name, "exitcode": children[index].exitcode},
                )
                children[index] = start(name, target)
    for child in children:
        if child.pid is not None and child.is_alive():
            os.kill(child.pid, signal.SIGTERM)
    deadline = time.monotonic() + stop_grace_s
    for child in children:
        child.join(timeout=max(0.0, deadline - time.monotonic()))
    for child in children:
        if child.is_alive():
            logger.error("supervise.child_killed", extra={"child": child.name})
            child.kill()
            child.join()
