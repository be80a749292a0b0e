"""Kafka consumers that build PostgreSQL read models of WCS sessions, streams and calls."""
