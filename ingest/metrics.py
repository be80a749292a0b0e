"""Every Prometheus metric of the receiver, registered on the app's own registry."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 15)


@dataclass(frozen=True, slots=True)
class IngestMetrics:
    """The receiver's metrics; ``hook`` labels are the known hook names or ``unknown``."""

    registry: CollectorRegistry
    requests: Counter
    request_seconds: Histogram
    produce_seconds: Histogram
    rejected: Counter
    spooled: Counter
    spool_depth: Gauge
    spool_drained: Counter
    kafka_up: Gauge

    @classmethod
    def create(cls) -> IngestMetrics:
        registry = CollectorRegistry(auto_describe=True)
        return cls(
            registry=registry,
            requests=Counter(
                "wcs_audit_ingest_requests",
                "Hook requests answered, by hook and HTTP status",
                ["hook", "status"],
                registry=registry,
            ),
            request_seconds=Histogram(
                "wcs_audit_ingest_request_seconds",
                "Time from request to answer",
                buckets=LATENCY_BUCKETS,
                registry=registry,
            ),
            produce_seconds=Histogram(
                "wcs_audit_ingest_produce_seconds",
                "Time for Kafka to acknowledge a record",
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
