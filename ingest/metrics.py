"""Every Prometheus metric of the receiver, registered on the app's own registry, and their
merge across the workers of one receiver."""

from __future__ import annotations

import bisect
import itertools
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.mmap_dict import MmapedDict, mmap_key
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 15)


class RequestMetrics(Collector):
    """Requests answered, by hook and status, and their latency: counted per request in plain
    Python and turned into metric families only when scraped.

    prometheus_client's ``Counter.inc`` and ``Histogram.observe`` take a lock each time (1.7 µs
    a request, measured here); the receiver answers every request on its one event loop
    thread, so plain integers are exact without one.
    """

    def __init__(self, buckets: tuple[float, ...]) -> None:
        self.bounds = buckets
        self.counts: dict[tuple[str, int], int] = {}
        self.bucket_counts = [0] * (len(buckets) + 1)  # the last one: above every bound
        self.seconds = 0.0

    def count(self, hook: str, status: int) -> None:
        """Counts one answer; ``hook`` is a bounded label value (see ``metric_hook``)."""
        key = (hook, status)
        self.counts[key] = self.counts.get(key, 0) + 1

    def observe(self, seconds: float) -> None:
        """Counts one request's time from its first byte to its answer."""
        self.bucket_counts[bisect.bisect_left(self.bounds, seconds)] += 1
        self.seconds += seconds

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "wcs_audit_ingest_requests",
            "Hook requests answered, by hook and HTTP status",
            labels=["hook", "status"],
        )
        for (hook, status), count in sorted(self.counts.items()):
            requests.add_metric([hook, str(status)], count)
        yield requests
        latency = HistogramMetricFamily(
            "wcs_audit_ingest_request_seconds", "Time from request to answer"
        )
        bounds = (*self.bounds, math.inf)
        cumulative = itertools.accumulate(self.bucket_counts)
        latency.add_metric(
            [],
            [(go_float(b), float(n)) for b, n in zip(bounds, cumulative, strict=True)],
            sum_value=self.seconds,
        )
        yield latency


@dataclass(frozen=True, slots=True)
class IngestMetrics:
    """The receiver's metrics; ``hook`` labels are the known hook names or ``unknown``."""

    registry: CollectorRegistry
    requests: RequestMetrics
    produce_seconds: Histogram
    rejected: Counter
    spooled: Counter
    spool_depth: Gauge
    spool_drained: Counter
    kafka_up: Gauge

    @classmethod
    def create(cls) -> IngestMetrics:
        registry = CollectorRegistry(auto_describe=True)
        requests = RequestMetrics(LATENCY_BUCKETS)
        registry.register(requests)
        return cls(
            registry=registry,
            requests=requests,
            produce_seconds=Histogram(
                "wcs_audit_ingest_produce_seconds",
                "Time from a batch's first record to Kafka's acknowledgement of the batch",
                buckets=LATENCY_BUCKETS,
                registry=registry,
            ),
            rejected=Counter(
                "wcs_audit_ingest_rejected",
                "Requests rejected, by reason",
                ["reason"],
                registry=registry,
            ),
            spooled=Counter(
                "wcs_audit_ingest_spooled", "Records written to the local spool", registry=registry
            ),
            spool_depth=Gauge(
                "wcs_audit_ingest_spool_depth",
                "Records in the spool not yet in Kafka",
                registry=registry,
            ),
            spool_drained=Counter(
                "wcs_audit_ingest_spool_drained",
                "Spooled records delivered to Kafka",
                registry=registry,
            ),
            kafka_up=Gauge(
                "wcs_audit_ingest_kafka_up",
                "1 while records go straight to Kafka, 0 while they are spooled",
                registry=registry,
            ),
        )


GAUGE_MODES = {  # how the workers' values of a gauge merge (prometheus_client's modes)
    "wcs_audit_ingest_spool_depth": "sum",
    "wcs_audit_ingest_kafka_up": "all",  # one series per worker, labelled pid="worker-<n>"
}
Sample = tuple[str, dict[str, str], float]


class SharedMetrics:
    """The metrics of all the receiver's workers (processes sharing one port), as any one of
    them answers a scrape.

    Each worker counts in its own registry, in process: a hook costs no more than with a
    single worker. :meth:`write` copies the registry into the run's ``directory`` (in
    prometheus_client's multiprocess file format) and :meth:`render` merges the copies of every
    worker: counters and histograms add up (those of a worker that exited stay counted), spool
    depths add up, ``kafka_up`` stays per worker. A worker's copy is as old as its last
    :meth:`write`; the answering worker writes its own first.
    """

    def __init__(self, registry: CollectorRegistry, directory: Path, worker: int) -> None:
        self.registry = registry
        self.directory = directory
        self.worker = worker
        self._files: dict[str, MmapedDict] = {}

    def write(self) -> None:
        """Copies the current values of this worker's metrics into its files; blocks briefly
        (memory-mapped files, no fsync: they serve the other workers, not a restart)."""
        for family in self.registry.collect():
            file = self._file(family.type, family.name)
            for name, labels, value in file_samples(family):
                key = mmap_key(
                    family.name, name, list(labels), list(labels.values()), family.documentation
                )
                file.write_value(key, value, 0.0)  # type: ignore[no-untyped-call]

    def render(self) -> bytes:
        """The merged metrics of every worker, in the Prometheus text format."""
        self.write()
        merged = CollectorRegistry(auto_describe=False)
        MultiProcessCollector(merged, path=str(self.directory))  # type: ignore[no-untyped-call]
        return generate_latest(merged)

    def close(self) -> None:
        """Writes a last copy and closes the files."""
        self.write()
        for file in self._files.values():
            file.close()  # type: ignore[no-untyped-call]
        self._files.clear()

    def _file(self, kind: str, name: str) -> MmapedDict:
        """Counters and histograms go to files of this process (they keep counting after it
        exits); gauges to files of this worker slot, which its successor overwrites."""
        if kind == "gauge":
            file_name = f"gauge_{GAUGE_MODES.get(name, 'all')}_worker-{self.worker}.db"
        else:
            file_name = f"{kind}_{os.getpid()}.db"
        file = self._files.get(file_name)
        if file is None:
            file = MmapedDict(str(self.directory / file_name))  # type: ignore[no-untyped-call]
            self._files[file_name] = file
        return file


def file_samples(family: Metric) -> list[Sample]:
    """A metric family's samples as the multiprocess files hold them: no ``_created`` or
    histogram ``_count``, and histogram buckets not cumulative."""
    samples: list[Sample] = []
    below: dict[tuple[tuple[str, str], ...], float] = {}  # labels but le -> previous bucket
    for sample in family.samples:
        derived = family.type == "histogram" and sample.name.endswith("_count")
        if derived or sample.name.endswith("_created"):
            continue
        value = sample.value
        if sample.name.endswith("_bucket"):
            series = tuple((k, v) for k, v in sample.labels.items() if k != "le")
            value, below[series] = value - below.get(series, 0.0), value
        samples.append((sample.name, sample.labels, value))
    return samples


def go_float(value: float) -> str:
    """A bucket bound as Prometheus writes it (``1.0``, ``+Inf``), as its histograms do."""
    return str(floatToGoString(value))  # type: ignore[no-untyped-call]
