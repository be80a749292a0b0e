"""Cold and warm start times of the local stack (Kafka via Maven + JVM, PostgreSQL).

    .venv/bin/python -m bench.stack_start

Cold: empty jar cache, empty Maven repository and empty data, as on a fresh machine (Kafka's
jars are downloaded from Maven Central, the cluster is initialised). Warm: the same stack
stopped and started again. Runs on its own ports and directories beside any running stack, and
deletes those directories at the end.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from wcs_audit.settings import Settings
from wcs_audit.stack.kafka import start_kafka, stop_kafka
from wcs_audit.stack.postgres import start_postgres, stop_postgres


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def timed(action: str, run: Callable[[], object]) -> float:
    started = time.perf_counter()
    run()
    seconds = time.perf_counter() - started
    print(f"{action:<16} {seconds:6.1f} s", flush=True)
    return seconds


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="bench-stack-", dir="/var/tmp"))
    root.chmod(0o755)  # the postgres user must reach its data dir when we are root
    os.environ["MAVEN_OPTS"] = f"-Dmaven.repo.local={root / 'm2'}"  # nothing cached
    settings = Settings.from_env({}).replace(
        kafka_bootstrap=f"127.0.0.1:{free_port()}",
        kafka_controller_port=free_port(),
        postgres_port=free_port(),
        state_dir=root / "state",
        cache_dir=root / "cache",
    )
    print(f"stack in {root}")
    try:
        timed("kafka cold", lambda: start_kafka(settings))
        timed("postgres cold", lambda: start_postgres(settings))
        stop_kafka(settings)
        stop_postgres(settings)
        timed("kafka warm", lambda: start_kafka(settings))
        timed("postgres warm", lambda: start_postgres(settings))
    finally:
        stop_kafka(settings)
        stop_postgres(settings)
        shutil.rmtree(root)  # a fresh Kafka download and cluster each run: 144 MB


if __name__ == "__main__":
    main()
