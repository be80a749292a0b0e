"""The receiver's lock-free request metrics, as Prometheus reads them."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from ingest.metrics import RequestMetrics


def rendered(metrics: RequestMetrics) -> str:
    registry = CollectorRegistry()
    registry.register(metrics)
    return generate_latest(registry).decode()


def test_answers_are_counted_by_hook_and_status() -> None:
    metrics = RequestMetrics((0.001, 1))
    for hook, status in [("connect", 200), ("connect", 200), ("unknown", 400)]:
        metrics.count(hook, status)
    text = rendered(metrics)
    assert 'wcs_audit_ingest_requests_total{hook="connect",status="200"} 2.0' in text
    assert 'wcs_audit_ingest_requests_total{hook="unknown",status="400"} 1.0' in text


def test_latency_buckets_are_cumulative_with_upper_bounds_included() -> None:
    metrics = RequestMetrics((0.001, 1))
    for seconds in (0.0005, 0.001, 0.5, 30.0):
        metrics.observe(seconds)
    text = rendered(metrics)
    assert 'wcs_audit_ingest_request_seconds_bucket{le="0.001"} 2.0' in text
    assert 'wcs_audit_ingest_request_seconds_bucket{le="1.0"} 3.0' in text
    assert 'wcs_audit_ingest_request_seconds_bucket{le="+Inf"} 4.0' in text
    assert "wcs_audit_ingest_request_seconds_count 4.0" in text
    assert "wcs_audit_ingest_request_seconds_sum 30.5015" in text
