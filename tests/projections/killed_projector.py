"""A real projector process that kills itself with SIGKILL at one point of one batch.

    python -m tests.projections.killed_projector written|committed N

Settings come from ``WCS_AUDIT_*`` variables, as for ``wcs-audit projector``. The process
dies on its N-th batch: with ``written``, once the batch's rows and positions are written and
before its transaction commits; with ``committed``, once it committed and before Kafka hears of
it. Nothing is flushed or closed by the process: the kernel closes its PostgreSQL and Kafka
connections, as when the OOM killer or an operator's ``kill -9`` ends a projector.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import uvloop

from projections.app import create_app
from projections.consume import BatchResult
from wcs_audit.settings import Settings


async def run_until_killed(point: str, batch: int) -> None:
    batches = 0

    async def die(reached: str, _: BatchResult) -> None:
        nonlocal batches
        batches += reached == "written"
        if reached == point and batches == batch:
            os.kill(os.getpid(), signal.SIGKILL)

    projector = create_app(Settings.from_env(os.environ), die)
    await projector.start()
    await asyncio.Event().wait()


if __name__ == "__main__":
    uvloop.run(run_until_killed(sys.argv[1], int(sys.argv[2])))
