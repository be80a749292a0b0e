"""Kafka's own acknowledgement latency, measured beside a load: the broker's part of a hook's
answer time, with nothing of the receiver in it.

    .venv/bin/python -m bench.ack_probe --topic T --seconds 10 [--interval-ms 10] [--wait-for-go]

Sends one sample keep-alive body at a time (``acks=all``, idempotent, as the receiver sends),
waits for its acknowledgement, pauses ``--interval-ms`` and sends the next: 100 light produce
requests per second by default. Prints one JSON line: how many were sent, and the p50, p99
and max of send-to-acknowledgement in ms. :mod:`bench.receiver` runs it during each of the
receiver's fixed-rate runs; on its own it measures the idle broker.

With ``--wait-for-go`` it connects first, prints ``ready`` and starts probing when a line
arrives on stdin: its start-up (imports and connection, about half a second of a core here)
then stays out of the measured load.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time

from aiokafka import AIOKafkaProducer

from bench.lag import percentile
from bench.receiver import SAMPLES
from wcs_audit.settings import Settings


async def probe(
    bootstrap: str, topic: str, seconds: float, interval_s: float, wait_for_go: bool = False
) -> list[float]:
    """Acknowledgement latencies (ms) of one-record batches sent one after another."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    body = (SAMPLES / "StreamKeepAliveEvent.json").read_bytes()
    partitions = len(await producer.partitions_for(topic))
    latencies: list[float] = []
    if wait_for_go:
        print("ready", flush=True)
        sys.stdin.readline()  # nothing else runs in this loop meanwhile
    try:
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            batch = producer.create_batch()
            batch.append(key=b"ack-probe", value=body, timestamp=None)
            started = time.perf_counter()
            delivery = await producer.send_batch(
                batch, topic, partition=len(latencies) % partitions
            )
            await delivery
            latencies.append((time.perf_counter() - started) * 1000)
            await asyncio.sleep(interval_s)
    finally:
        await producer.stop()
    return latencies


def summary(latencies: list[float]) -> dict[str, float | None]:
    """Count, p50, p99 and max of ``latencies`` (ms)."""
    return {
        "sent": len(latencies),
        "p50_ms": percentile(latencies, 0.50),
        "p99_ms": percentile(latencies, 0.99),
        "max_ms": round(max(latencies), 2) if latencies else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--topic", required=True)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--interval-ms", type=float, default=10.0)
    parser.add_argument("--wait-for-go", action="store_true")
    args = parser.parse_args()
    settings = Settings.from_env(os.environ)
    latencies = asyncio.run(
        probe(
            settings.kafka_bootstrap,
            args.topic,
            args.seconds,
            args.interval_ms / 1000,
            args.wait_for_go,
        )
    )
    print(json.dumps(summary(latencies)))


if __name__ == "__main__":
    main()
