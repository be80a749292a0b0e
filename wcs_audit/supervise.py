"""Runs functions in child processes, restarts a child that dies, stops them all on a signal."""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
from collections.abc import Callable, Sequence
from multiprocessing.process import BaseProcess

logger = logging.getLogger(__name__)

RESTART_DELAY_S = 1.0
STOP_GRACE_S = 30.0


def run_in_own_group(target: Callable[[], object]) -> None:
    """Runs ``target`` in a process group of its own: a Ctrl-C in the terminal reaches only the
    supervisor, which stops every child with one SIGTERM, in order."""
    os.setpgid(0, 0)
    target()


def supervise(targets: Sequence[tuple[str, Callable[[], object]]]) -> None:
    """Forks one process per ``(name, target)`` and blocks until SIGINT or SIGTERM.

    A child that exits is started again after a second (the projector exits on purpose after
    a failed batch). On the signal every child gets SIGTERM and up to 30 s to finish.
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
    for child in children:
        child.join(timeout=STOP_GRACE_S)
