"""The one settings object of wcs-audit, read once from ``WCS_AUDIT_*`` environment variables.

Every service and command builds a :class:`Settings` with :meth:`Settings.from_env` at start-up
and passes it down; nothing else reads the environment. A value that does not parse stops
start-up with a :class:`SettingsError` that names the variable.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PREFIX = "WCS_AUDIT_"
# body fields whose values never leave the receiver: WCS forwards SIP passwords, clients put
# auth tokens in ``custom``
DEFAULT_SECRET_FIELDS = ("sipPassword", "authToken", "token", "password", "secret")


class SettingsError(ValueError):
    """A ``WCS_AUDIT_*`` variable holds a value that cannot be used."""


def _int(text: str) -> int:
    return int(text)


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise ValueError("must be a positive integer")
    return value


def _float(text: str) -> float:
    return float(text)


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise ValueError("must be a positive number")
    return value


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError("must be true or false")


def _csv(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _cidrs(text: str) -> tuple[str, ...]:
    return tuple(str(ipaddress.ip_network(part, strict=False)) for part in _csv(text))


def _path(text: str) -> Path:
    return Path(text).expanduser()


def _optional(text: str) -> str | None:
    return text or None


def _json_object(text: str) -> dict[str, Any] | None:
    if not text.strip():
        return None
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError("must be a JSON object")
    return value


SYNCHRONOUS_COMMIT = ("on", "off", "local", "remote_write", "remote_apply")


def _synchronous_commit(text: str) -> str:
    value = text.strip().lower()
    if value not in SYNCHRONOUS_COMMIT:
        raise ValueError(f"must be one of {', '.join(SYNCHRONOUS_COMMIT)}")
    return value


def _user_password(text: str) -> str | None:
    if not text:
        return None
    if ":" not in text:
        raise ValueError("must be user:password")
    return text


def _default_state_dir() -> Path:
    """Where the local stack keeps its data between runs.

    As root the PostgreSQL server runs as the ``postgres`` user, which cannot enter ``/root``,
    so root's state lives under ``/var/lib``.
    """
    if os.geteuid() == 0:
        return Path("/var/lib/wcs-audit")
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "wcs-audit"


def _default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "wcs-audit"


def _env(name: str, parse: Callable[[str], Any], default: Any = None, **kwargs: Any) -> Any:
    """A settings field bound to ``WCS_AUDIT_<name>``, parsed by ``parse``."""
    metadata = {"env": PREFIX + name, "parse": parse}
    if callable(default):
        return field(default_factory=default, metadata=metadata, **kwargs)
    return field(default=default, metadata=metadata, **kwargs)


@dataclass(frozen=True, slots=True)
class Settings:
    """All configuration of wcs-audit; the defaults work with ``wcs-audit stack up``."""

    # Kafka
    kafka_bootstrap: str = _env("KAFKA_BOOTSTRAP", str, "127.0.0.1:9092")
    topic: str = _env("TOPIC", str, "wcs.hooks.v1")
    rejected_topic: str = _env("REJECTED_TOPIC", str, "wcs.hooks.rejected.v1")
    topic_partitions: int = _env("TOPIC_PARTITIONS", _positive_int, 6)
    topic_replication: int = _env("TOPIC_REPLICATION", _positive_int, 1)
    # -1: Kafka never deletes the audit log (a rebuild replays it from its first record)
    topic_retention_ms: int = _env("TOPIC_RETENTION_MS", _int, -1)

    # PostgreSQL: None means "the local stack's server"
    database_url_env: str | None = _env("DATABASE_URL", _optional, None)

    # HTTP receiver
    http_host: str = _env("HTTP_HOST", str, "127.0.0.1")
    http_port: int = _env("HTTP_PORT", _int, 9081)
    max_body_bytes: int = _env("MAX_BODY_BYTES", _positive_int, 1024 * 1024)
    rejected_keep_bytes: int = _env("REJECTED_KEEP_BYTES", _positive_int, 64 * 1024)
    connect_rest_client_config: dict[str, Any] | None = _env(
        "CONNECT_REST_CLIENT_CONFIG", _json_object, None
    )
    hmac_key: str | None = _env("HMAC_KEY", _optional, None, repr=False)
    basic_auth: str | None = _env("BASIC_AUTH", _user_password, None, repr=False)
    allow_cidrs: tuple[str, ...] = _env("ALLOW_CIDRS", _cidrs, ())
    secret_fields: tuple[str, ...] = _env("SECRET_FIELDS", _csv, DEFAULT_SECRET_FIELDS)
    spool_dir: Path | None = _env("SPOOL_DIR", _path, None)
    spool_max_bytes: int = _env("SPOOL_MAX_BYTES", _positive_int, 1024 * 1024 * 1024)
    produce_timeout_ms: int = _env("PRODUCE_TIMEOUT_MS", _positive_int, 2000)
    linger_ms: int = _env("LINGER_MS", _int, 2)
    receiver_workers: int = _env("RECEIVER_WORKERS", _positive_int, 1)

    # Projector (Kafka -> PostgreSQL read models)
    projector_group: str = _env("PROJECTOR_GROUP", str, "wcs-audit-projections")
    projector_batch_size: int = _env("PROJECTOR_BATCH_SIZE", _positive_int, 5000)
    projector_batch_timeout_ms: int = _env("PROJECTOR_BATCH_TIMEOUT_MS", _positive_int, 200)
    projector_batch_interval_ms: int = _env("PROJECTOR_BATCH_INTERVAL_MS", _int, 200)
    projector_retry_window_s: float = _env("PROJECTOR_RETRY_WINDOW_S", _float, 5.0)
    projector_keepalive_interval_s: float = _env("PROJECTOR_KEEPALIVE_INTERVAL_S", _float, 10.0)
    projector_keepalive_misses: int = _env("PROJECTOR_KEEPALIVE_MISSES", _positive_int, 3)
    projector_stream_silence_s: float = _env("PROJECTOR_STREAM_SILENCE_S", _float, 3600.0)
    projector_session_silence_s: float = _env("PROJECTOR_SESSION_SILENCE_S", _float, 3600.0)
    projector_sweep_interval_s: float = _env("PROJECTOR_SWEEP_INTERVAL_S", _positive_float, 5.0)
    projector_metrics_host: str = _env("PROJECTOR_METRICS_HOST", str, "127.0.0.1")
    projector_metrics_port: int = _env("PROJECTOR_METRICS_PORT", _int, 9082)
    projector_processes: int = _env("PROJECTOR_PROCESSES", _positive_int, 1)
    # PostgreSQL's synchronous_commit for the projector's transactions: "off" is safe because
    # its positions commit with its rows (see projections.consume.session_options)
    projector_synchronous_commit: str = _env(
        "PROJECTOR_SYNCHRONOUS_COMMIT", _synchronous_commit, "off"
    )

    # Local stack (wcs-audit stack up)
    kafka_controller_port: int = _env("KAFKA_CONTROLLER_PORT", _int, 9093)
    kafka_heap: str = _env("KAFKA_HEAP", str, "1g")
    postgres_port: int = _env("POSTGRES_PORT", _int, 5433)
    state_dir: Path = _env("STATE_DIR", _path, _default_state_dir)
    cache_dir: Path = _env("CACHE_DIR", _path, _default_cache_dir)

    # Logging
    log_level: str = _env("LOG_LEVEL", str, "INFO")

    # Simulator (wcs-audit simulate): None means the receiver of these settings
    sim_url: str | None = _env("SIM_URL", _optional, None)
    sim_connections: int = _env("SIM_CONNECTIONS", _positive_int, 64)
    sim_timeout_s: float = _env("SIM_TIMEOUT_S", _float, 30.0)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        """Builds settings from ``environ``; variables that are absent keep their defaults.

        Raises :class:`SettingsError` naming the variable whose value does not parse.
        """
        values: dict[str, Any] = {}
        for spec in dataclasses.fields(cls):
            name = spec.metadata["env"]
            if name not in environ:
                continue
            try:
                values[spec.name] = spec.metadata["parse"](environ[name])
            except ValueError as error:
                raise SettingsError(f"{name}={environ[name]!r}: {error}") from error
        return cls(**values)

    @classmethod
    def variables(cls) -> dict[str, str]:
        """Maps each environment variable to the field it sets (for docs and compose checks)."""
        return {spec.metadata["env"]: spec.name for spec in dataclasses.fields(cls)}

    def replace(self, **changes: Any) -> Settings:
        """A copy with ``changes`` applied (tests give each case its own topic or database)."""
        return dataclasses.replace(self, **changes)

    @property
    def spool_path(self) -> Path:
        """The receiver's spool directory (``WCS_AUDIT_SPOOL_DIR``, else under the state dir)."""
        return self.spool_dir or self.state_dir / "spool"

    @property
    def uses_local_postgres(self) -> bool:
        """True when no ``WCS_AUDIT_DATABASE_URL`` was given, so the local server is used."""
        return self.database_url_env is None

    @property
    def database_url(self) -> str:
        """SQLAlchemy URL (``postgresql+psycopg://…``) of the audit database."""
        if self.database_url_env is not None:
            return self.database_url_env
        return f"postgresql+psycopg://wcs_audit@127.0.0.1:{self.postgres_port}/wcs_audit"
