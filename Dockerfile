# The wcs-audit image: receiver, projector and migrations (compose.yaml picks the command).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    WCS_AUDIT_STATE_DIR=/var/lib/wcs-audit
WORKDIR /app
COPY pyproject.toml README.md ./
COPY wcs_audit ./wcs_audit
COPY ingest ./ingest
COPY projections ./projections
COPY migrations ./migrations
COPY simulator ./simulator
RUN pip install . && useradd --system --home /var/lib/wcs-audit --create-home wcs-audit \
    && install -d -o wcs-audit -g wcs-audit /var/lib/wcs-audit/spool
USER wcs-audit
EXPOSE 9081
ENTRYPOINT ["wcs-audit"]
