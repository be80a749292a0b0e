"""The Alembic history of the wcs-audit schema (target metadata: ``projections.tables``)."""
