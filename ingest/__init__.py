"""The WCS hook receiver: HTTP -> envelope -> Kafka (or the local spool while Kafka is away)."""
