"""The local broker is a real Kafka: a produce/consume round trip over loopback; starts of
the stack do not overlap, and a service that runs is never started a second time."""

from __future__ import annotations

import re
import subprocess
import threading
from importlib import resources
from pathlib import Path

import psycopg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from tests.ingest.conftest import free_port
from wcs_audit.settings import Settings
from wcs_audit.stack import StackError, stack_lock, stack_status, stack_up
from wcs_audit.stack.kafka import (
    DEDUPE_BUFFER_BYTES,
    KafkaPaths,
    kafka_running,
    start_kafka,
    stop_kafka,
)
from wcs_audit.stack.postgres import libpq_conninfo, start_postgres

pytestmark = pytest.mark.kafka


async def test_round_trip_on_a_fresh_topic(stack: Settings, topic: str) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=stack.kafka_bootstrap, acks="all", enable_idempotence=True
    )
    await producer.start()
    try:
        sent = [
            await producer.send_and_wait(
                topic, f"body-{i}".encode(), key=b"session-1", headers=[("hook", b"connect")]
            )
            for i in range(5)
        ]
    finally:
        await producer.stop()
    assert len({meta.partition for meta in sent}) == 1, "one key must stay on one partition"

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=stack.kafka_bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        batch = await consumer.getmany(timeout_ms=10_000, max_records=5)
        records = [record for records in batch.values() for record in records]
    finally:
        await consumer.stop()
    assert [r.value for r in records] == [f"body-{i}".encode() for i in range(5)]
    assert {r.key for r in records} == {b"session-1"}
    assert all(r.headers == (("hook", b"connect"),) for r in records)


def test_the_broker_runs_with_kafkas_own_jvm_options_and_gc_log(stack: Settings) -> None:
    if not kafka_running(stack):
        pytest.skip("Kafka here is not the local stack's")
    gc_log = KafkaPaths.of(stack).gc_log.read_text()
    assert "Using G1" in gc_log
    command = Path(f"/proc/{KafkaPaths.of(stack).pid.read_text().strip()}/cmdline").read_bytes()
    options = command.split(b"\0")
    assert b"-XX:MaxGCPauseMillis=20" in options
    heap = stack.kafka_heap.encode()
    assert [o for o in options if o[:4] in (b"-Xms", b"-Xmx")] == [b"-Xms" + heap, b"-Xmx" + heap]


async def test_the_broker_keeps_a_small_log_cleaner_buffer(stack: Settings) -> None:
    if not kafka_running(stack):
        pytest.skip("Kafka here is not the local stack's")
    admin = AIOKafkaAdminClient(bootstrap_servers=stack.kafka_bootstrap)
    await admin.start()
    try:
        [response] = await admin.describe_configs([ConfigResource(ConfigResourceType.BROKER, "1")])
    finally:
        await admin.close()
    [(error_code, _, _, _, entries)] = response.resources
    assert error_code == 0
    described = {name: value for name, value, *_ in entries}
    assert described["log.cleaner.dedupe.buffer.size"] == str(DEDUPE_BUFFER_BYTES)


def test_the_broker_logs_through_log4j_to_a_rolled_file(stack: Settings) -> None:
    if not kafka_running(stack):
        pytest.skip("Kafka here is not the local stack's")
    paths = KafkaPaths.of(stack)
    last_line = paths.log.read_text(errors="replace").rstrip("\n").rpartition("\n")[2]
    assert re.fullmatch(r"\[\d{4}-\d\d-\d\d [\d:,]+\] [A-Z]+ .* \([\w.$]+\)", last_line), last_line
    logs = sorted(paths.home.glob("kafka.log*"))
    assert {log.name for log in logs} <= {"kafka.log", *(f"kafka.log.{i}" for i in range(1, 6))}
    assert all(log.stat().st_size < 10 * 1024 * 1024 + 64 * 1024 for log in logs)  # + a line
    assert paths.out.exists()  # what the JVM prints itself, apart from the rolled log
    config = dict(
        line.split(" = ", 1)
        for line in (resources.files("wcs_audit.stack") / "log4j2.properties")
        .read_text()
        .splitlines()
        if " = " in line and not line.startswith("#")
    )
    appender = config["rootLogger.appenderRef.file.ref"]
    assert config["appender.file.name"] == appender
    assert config["appender.file.type"] == "RollingFile"
    assert config["appender.file.policies.size.size"] == "10MB"
    assert config["appender.file.strategy.max"] == "5"


def test_a_broker_that_cannot_start_shows_what_the_jvm_said(
    stack: Settings, tmp_path: Path
) -> None:
    broken = stack.replace(
        kafka_bootstrap=f"127.0.0.1:{free_port()}",
        kafka_controller_port=free_port(),
        state_dir=tmp_path,
        kafka_heap="lots",  # the JVM refuses it before log4j starts
    )
    with pytest.raises(StackError, match="Kafka exited during start-up") as refused:
        start_kafka(broken, ready_timeout_s=30.0)
    assert str(KafkaPaths.of(broken).out) in str(refused.value)
    assert "Invalid initial heap size: -Xmslots" in str(refused.value)


def test_status_reports_both_services(stack: Settings) -> None:
    status = stack_status(stack)
    assert status.kafka_up
    assert status.postgres_up
    assert status.kafka_bootstrap == stack.kafka_bootstrap


def test_a_second_stack_up_waits_for_the_first_then_reuses_the_services(stack: Settings) -> None:
    finished = threading.Event()

    def second_stack_up() -> None:
        stack_up(stack)
        finished.set()

    with stack_lock(stack):  # as a first `stack up` still starting would hold it
        thread = threading.Thread(target=second_stack_up)
        thread.start()
        assert not finished.wait(1.0)
    thread.join(timeout=60)
    assert finished.is_set()
    assert stack_status(stack).kafka_up


def test_a_live_broker_that_does_not_answer_is_waited_for_never_started_twice(
    stack: Settings,
) -> None:
    if not kafka_running(stack):
        pytest.skip("Kafka here is not the local stack's")
    paths = KafkaPaths.of(stack)
    pid = paths.pid.read_text()
    elsewhere = stack.replace(kafka_bootstrap=f"127.0.0.1:{free_port()}")  # same data directory
    with pytest.raises(StackError, match=rf"Kafka \(pid {pid}\) did not answer at 127\.0\.0\.1"):
        start_kafka(elsewhere, ready_timeout_s=1.0)
    assert paths.pid.read_text() == pid  # no second broker was started
    assert stack_status(stack).kafka_up


def test_a_pid_file_naming_another_process_stops_nothing(stack: Settings, tmp_path: Path) -> None:
    bystander = subprocess.Popen(["sleep", "60"])
    try:
        elsewhere = stack.replace(state_dir=tmp_path)
        paths = KafkaPaths.of(elsewhere)
        paths.home.mkdir(parents=True)
        paths.pid.write_text(str(bystander.pid))  # a stale pid, since given to another process
        assert not kafka_running(elsewhere)
        assert stop_kafka(elsewhere) is False
        assert bystander.poll() is None
        assert not paths.pid.exists()
    finally:
        bystander.kill()
        bystander.wait()


@pytest.mark.postgres
def test_the_local_postgres_runs_with_room_for_the_projectors_writes(stack: Settings) -> None:
    if not stack.uses_local_postgres:
        pytest.skip("PostgreSQL is not the local stack's")
    with psycopg.connect(libpq_conninfo(stack.database_url)) as conn:
        shown = [
            conn.execute(f"SHOW {name}").fetchone() for name in ("shared_buffers", "max_wal_size")
        ]
    assert shown == [("1GB",), ("4GB",)]


@pytest.mark.postgres
def test_a_live_postgres_that_refuses_connections_is_waited_for_never_started_twice(
    stack: Settings,
) -> None:
    if not stack.uses_local_postgres:
        pytest.skip("PostgreSQL here is not the local stack's")
    elsewhere = stack.replace(postgres_port=free_port())  # same data directory, nobody there
    with pytest.raises(StackError, match="PostgreSQL runs but refused connections for 1s"):
        start_postgres(elsewhere, ready_timeout_s=1.0)
    assert stack_status(stack).postgres_up
