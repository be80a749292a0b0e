"""Every Prometheus metric of the projector, registered on the projector's own registry."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

if TYPE_CHECKING:
    from projections.consume import BatchResult

BATCH_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
LAG_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 3600)


@dataclass(frozen=True, slots=True)
class ProjectorMetrics:
    """The projector's metrics; ``outcome`` is applied, retry, duplicate or rejected."""

    registry: CollectorRegistry
    batches: Counter
    records: Counter
    batch_seconds: Histogram
    lag_seconds: Histogram
    next_offset: Gauge
    end_offset: Gauge

    @classmethod
    def create(cls) -> ProjectorMetrics:
        registry = CollectorRegistry(auto_describe=True)
        return cls(
            registry=registry,
            batches=Counter(
                "wcs_audit_projector_batches", "Batches committed to PostgreSQL", registry=registry
            ),
            records=Counter(
                "wcs_audit_projector_records",
                "Kafka records consumed, by outcome",
                ["outcome"],
                registry=registry,
            ),
            batch_seconds=Histogram(
                "wcs_audit_projector_batch_seconds",
                "Time to apply and commit one batch",
                buckets=BATCH_BUCKETS,
                registry=registry,
            ),
            lag_seconds=Histogram(
                "wcs_audit_projector_lag_seconds",
                "Per committed batch: from the receipt of its oldest hook to its commit, the "
                "longest any of its hooks waited to be visible in the read models",
                buckets=LAG_BUCKETS,
                registry=registry,
            ),
            next_offset=Gauge(
                "wcs_audit_projector_next_offset",
                "Next offset to apply, by topic and partition (as stored in PostgreSQL)",
                ["topic", "partition"],
                registry=registry,
            ),
            end_offset=Gauge(
                "wcs_audit_projector_end_offset",
                "End offset of the partition as the projector's latest fetch of it saw it; "
                "minus next_offset: the records it is behind",
                ["topic", "partition"],
                registry=registry,
            ),
        )

    def observe_batch(
        self, result: BatchResult, seconds: float, oldest: datetime | None = None
    ) -> None:
        """Records one committed batch; ``oldest``: the receive time of its oldest hook."""
        self.batches.inc()
        self.batch_seconds.observe(seconds)
        if oldest is not None:
            self.lag_seconds.observe(max(0.0, (datetime.now(UTC) - oldest).total_seconds()))
        for outcome, count in (
            ("applied", result.applied),
            ("retry", result.retries),
            ("duplicate", result.duplicates),
            ("rejected", result.rejected),
        ):
            if count:
                self.records.labels(outcome).inc(count)
        for (topic, partition), offset in result.positions.items():
            self.next_offset.labels(topic, str(partition)).set(offset)
        for (topic, partition), offset in result.ends.items():
            self.end_offset.labels(topic, str(partition)).set(offset)
