"""The projections' schema as SQLAlchemy Core tables; Alembic's ``target_metadata``.

DDL reaches a database only through the migrations in ``migrations/versions``.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, DateTime, Integer, MetaData, Table, Text, func

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

projection_positions = Table(
    "projection_positions",
    metadata,
    Column("projection", Text, primary_key=True, comment="consumer group that owns the offset"),
    Column("topic", Text, primary_key=True),
    Column("partition", Integer, primary_key=True),
    Column(
        "next_offset",
        BigInteger,
        nullable=False,
        comment="offset of the next record to apply (Kafka's committed-offset convention)",
    ),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    comment="Kafka positions of each projection, written in the same transaction as its rows",
)
