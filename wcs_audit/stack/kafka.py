"""The local Apache Kafka broker: a single KRaft broker+controller on loopback, run with the JVM.

The broker's jars come from Maven Central through Maven (``pom.xml`` beside this file) and are
cached under ``<cache_dir>/kafka-<version>``; its data and log live under ``<state_dir>/kafka``
and survive restarts.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient

from wcs_audit.settings import Settings
from wcs_audit.stack.process import (
    StackError,
    pid_alive,
    read_pid,
    spawn_detached,
    stop_pid,
    tail,
)


def pinned_version() -> str:
    """The Kafka version pinned in ``pom.xml`` (the one place it is written)."""
    pom = resources.files(__package__).joinpath("pom.xml").read_text()
    match = re.search(r"<kafka.version>([^<]+)</kafka.version>", pom)
    assert match, "pom.xml must pin <kafka.version>"
    return match.group(1)


VERSION = pinned_version()
READY_TIMEOUT_S = 90.0
# The log cleaner's key map, one array allocated at start and kept for the broker's life.
# Kafka's default, 128 MiB, was two thirds of the local broker's live heap: with it every
# young collection left the old generation above the marking threshold, and under the
# receiver benchmark's load (5,000 hooks/s) the broker paused 20 times in 55 s (Remark and
# Cleanup pauses among them, 121 ms in all). With 16 MiB and the heap committed whole: 3
# young pauses, 32-59 ms in all. 16 MiB maps ~600,000 keys per cleaning pass; the compacted
# topics of a one-node stack (consumer offsets) hold a few thousand.
DEDUPE_BUFFER_BYTES = 16 * 1024 * 1024
# The JVM options Kafka's own kafka-run-class.sh starts a broker with (its GC log as below):
# short G1 pauses (a produce waits out a pause) instead of the JVM's 200 ms default goal.
# The heap is committed whole from the start (-Xms = -Xmx, as kafka-server-start.sh does): the
# broker grew it from 256 MB only under load, and the smaller heap ran concurrent marking
# cycles over and over (see DEDUPE_BUFFER_BYTES). Beyond Kafka's options, AlwaysPreTouch
# touches the heap at start (as Elasticsearch does): a page's first touch is dear on this VM,
# and a fresh broker's collection that copied 5 MB into untouched regions paused 105 ms.
JVM_OPTIONS = (
    "-server",
    "-XX:+UseG1GC",
    "-XX:+AlwaysPreTouch",
    "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-Djava.awt.headless=true",
)


@dataclass(frozen=True, slots=True)
class KafkaPaths:
    """Where the local broker's jars, configuration, data and logs live."""

    libs: Path
    home: Path

    @classmethod
    def of(cls, settings: Settings) -> KafkaPaths:
        return cls(
            libs=settings.cache_dir / f"kafka-{VERSION}" / "libs",
            home=settings.state_dir / "kafka",
        )

    @property
    def data(self) -> Path:
        return self.home / "data"

    @property
    def config(self) -> Path:
        return self.home / "server.properties"

    @property
    def log(self) -> Path:
        return self.home / "kafka.log"

    @property
    def out(self) -> Path:
        """What the JVM prints itself (log4j writes :attr:`log`, rolled)."""
        return self.home / "kafka.out"

    @property
    def pid(self) -> Path:
        return self.home / "kafka.pid"

    @property
    def gc_log(self) -> Path:
        return self.home / "kafkaServer-gc.log"


def check_java() -> str:
    """Returns the ``java`` executable; raises :class:`StackError` unless it is Java 17 or newer."""
    java = shutil.which("java")
    if java is None:
        raise StackError(
            "java not found: install Java 17+ (Debian: apt-get install openjdk-17-jre)"
        )
    out = subprocess.run([java, "-version"], capture_output=True, text=True, check=False).stderr
    match = re.search(r'version "(\d+)', out)
    if match is None or int(match.group(1)) < 17:
        raise StackError(f"Java 17+ is needed for Kafka {VERSION}, found: {out.splitlines()[:1]}")
    return java


def fetch_jars(paths: KafkaPaths) -> None:
    """Resolves the pinned Kafka and its runtime dependencies into ``paths.libs`` (cached).

    Blocks while Maven downloads (tens of seconds the first time, nothing afterwards).
    """
    stamp = paths.libs / ".complete"
    if stamp.exists():
        return
    mvn = shutil.which("mvn")
    if mvn is None:
        raise StackError(
            "mvn not found: install Maven to fetch Kafka (Debian: apt-get install maven)"
        )
    print(f"stack: fetching Apache Kafka {VERSION} from Maven Central …", file=sys.stderr)
    with resources.as_file(resources.files(__package__).joinpath("pom.xml")) as pom:
        result = subprocess.run(
            [
                mvn,
                "-q",
                "-B",
                "-f",
                str(pom),
                "dependency:copy-dependencies",
                f"-DoutputDirectory={paths.libs}",
                "-DincludeScope=runtime",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
    if result.returncode != 0:
        raise StackError(
            f"mvn could not fetch Kafka {VERSION}:\n{tail(result.stdout + result.stderr)}"
        )
    stamp.write_text(VERSION)


def server_properties(settings: Settings, paths: KafkaPaths) -> str:
    """The broker configuration: one KRaft node, loopback only, one replica of everything."""
    host, port = loopback_address(settings.kafka_bootstrap)
    controller = f"{host}:{settings.kafka_controller_port}"
    return "\n".join(
        [
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.bootstrap.servers={controller}",
            f"listeners=PLAINTEXT://{host}:{port},CONTROLLER://{controller}",
            f"advertised.listeners=PLAINTEXT://{host}:{port}",
            "controller.listener.names=CONTROLLER",
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name=PLAINTEXT",
            f"log.dirs={paths.data}",
            f"num.partitions={settings.topic_partitions}",
            "auto.create.topics.enable=false",
            "offsets.topic.replication.factor=1",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "share.coordinator.state.topic.replication.factor=1",
            "share.coordinator.state.topic.min.isr=1",
            "group.initial.rebalance.delay.ms=0",
            f"log.cleaner.dedupe.buffer.size={DEDUPE_BUFFER_BYTES}",
            "",
        ]
    )


def loopback_address(bootstrap: str) -> tuple[str, int]:
    """Splits ``WCS_AUDIT_KAFKA_BOOTSTRAP`` for the local broker, which listens on loopback only."""
    host, _, port = bootstrap.split(",", maxsplit=1)[0].rpartition(":")
    if host not in {"127.0.0.1", "localhost"} or not port.isdigit():
        raise StackError(
            f"the local Kafka listens on loopback only; WCS_AUDIT_KAFKA_BOOTSTRAP={bootstrap!r} "
            "should be 127.0.0.1:<port> (or point it at your own Kafka and skip the local stack)"
        )
    return "127.0.0.1", int(port)


def format_storage(java: str, paths: KafkaPaths) -> None:
    """Formats the KRaft storage once; later starts keep the data."""
    if (paths.data / "meta.properties").exists():
        return
    classpath = f"{paths.libs}/*"
    cluster_id = subprocess.run(
        [java, "-cp", classpath, "kafka.tools.StorageTool", "random-uuid"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()[-1]
    result = subprocess.run(
        [
            java,
            "-cp",
            classpath,
            "kafka.tools.StorageTool",
            "format",
            "--standalone",
            "-t",
            cluster_id,
            "-c",
            str(paths.config),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise StackError(f"kafka storage format failed:\n{tail(result.stdout + result.stderr)}")


def accepts_tcp(host: str, port: int) -> bool:
    """True when something listens at ``host:port`` (a cheap probe before a Kafka client)."""
    try:
        socket.create_connection((host, port), timeout=1).close()
    except OSError:
        return False
    return True


async def _answers_metadata(bootstrap: str) -> bool:
    host, _, port = bootstrap.split(",", maxsplit=1)[0].rpartition(":")
    if not accepts_tcp(host, int(port)):
        return False
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
    try:
        await admin.start()
        await admin.describe_cluster()
    except Exception:
        return False
    finally:
        await admin.close()
    return True


def answers_metadata(bootstrap: str) -> bool:
    """True when a broker at ``bootstrap`` answers a metadata request; blocks a few seconds."""
    return asyncio.run(_answers_metadata(bootstrap))


def start_kafka(settings: Settings, ready_timeout_s: float = READY_TIMEOUT_S) -> None:
    """Starts the local broker unless one already answers; returns once it answers metadata.

    A broker this stack started that is alive but slow to answer (busy, still loading its
    logs) is waited for, never started a second time on the same data directory. Raises
    :class:`StackError` with the log's tail when the broker exits or does not get ready.
    """
    if answers_metadata(settings.kafka_bootstrap):
        return
    paths = KafkaPaths.of(settings)
    running = our_broker_pid(paths)
    if running is not None:
        wait_until_ready(settings.kafka_bootstrap, running, paths, ready_timeout_s)
        return
    java = check_java()
    fetch_jars(paths)
    paths.data.mkdir(parents=True, exist_ok=True)
    paths.config.write_text(server_properties(settings, paths))
    format_storage(java, paths)
    with resources.as_file(resources.files(__package__).joinpath("log4j2.properties")) as log4j:
        pid = spawn_detached(
            [
                java,
                f"-Xms{settings.kafka_heap}",
                f"-Xmx{settings.kafka_heap}",
                *JVM_OPTIONS,
                f"-Xlog:gc*:file={paths.gc_log}:time,tags:filecount=5,filesize=20M",
                f"-Dlog4j2.configurationFile={log4j}",
                "-Dkafka.logs.dir=" + str(paths.home),
                "-cp",
                f"{paths.libs}/*",
                "kafka.Kafka",
                str(paths.config),
            ],
            log=paths.out,
        )
    paths.pid.write_text(str(pid))
    wait_until_ready(settings.kafka_bootstrap, pid, paths, ready_timeout_s)


def wait_until_ready(bootstrap: str, pid: int, paths: KafkaPaths, timeout_s: float) -> None:
    """Polls the broker until it answers metadata, the process dies, or the time runs out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            raise StackError(f"Kafka exited during start-up; {log_tails(paths)}")
        if answers_metadata(bootstrap):
            return
        time.sleep(0.5)
    raise StackError(
        f"Kafka (pid {pid}) did not answer at {bootstrap} within {timeout_s:.0f}s; "
        f"{log_tails(paths)}"
    )


def log_tails(paths: KafkaPaths) -> str:
    """The ends of the broker's log and of what the JVM printed, those that exist."""
    return "\n".join(
        f"{file}:\n{tail(file.read_text(errors='replace'))}"
        for file in (paths.log, paths.out)
        if file.exists()
    )


def our_broker_pid(paths: KafkaPaths) -> int | None:
    """The pid of the live broker this stack started from ``paths``, or None.

    The pid file alone is not trusted: a pid recorded before a reboot or a crash may since have
    been given to another process, which must be neither waited for nor stopped.
    """
    pid = read_pid(paths.pid)
    if pid is None or not pid_alive(pid):
        return None
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except FileNotFoundError:
        return None
    return pid if str(paths.config).encode() in argv else None


def stop_kafka(settings: Settings) -> bool:
    """Stops the broker this stack started (a clean controlled shutdown). False if none ran."""
    paths = KafkaPaths.of(settings)
    if our_broker_pid(paths) is None:
        paths.pid.unlink(missing_ok=True)
        return False
    return stop_pid(paths.pid, grace_s=60.0)


def kafka_running(settings: Settings) -> bool:
    """True when the broker this stack started is alive."""
    return our_broker_pid(KafkaPaths.of(settings)) is not None
