"""Settings come from WCS_AUDIT_* variables, and bad values name the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from wcs_audit.settings import Settings, SettingsError


def test_defaults_point_at_the_local_stack() -> None:
    settings = Settings.from_env({})
    assert settings.kafka_bootstrap == "127.0.0.1:9092"
    assert settings.uses_local_postgres
    assert settings.database_url == "postgresql+psycopg://wcs_audit@127.0.0.1:5433/wcs_audit"
    assert (settings.http_host, settings.http_port, settings.topic) == (
        "127.0.0.1",
        9081,
        "wcs.hooks.v1",
    )


def test_synchronous_commit_of_the_projector_is_one_of_postgresqls_values() -> None:
    assert Settings.from_env({}).projector_synchronous_commit == "off"
    assert (
        Settings.from_env(
            {"WCS_AUDIT_PROJECTOR_SYNCHRONOUS_COMMIT": " Remote_Write "}
        ).projector_synchronous_commit
    ) == "remote_write"


def test_variables_override_defaults() -> None:
    settings = Settings.from_env(
        {
            "WCS_AUDIT_KAFKA_BOOTSTRAP": "kafka:9092",
            "WCS_AUDIT_DATABASE_URL": "postgresql+psycopg://u:p@db/audit",
            "WCS_AUDIT_HTTP_PORT": "8080",
            "WCS_AUDIT_TOPIC": "hooks",
            "WCS_AUDIT_STATE_DIR": "~/x",
        }
    )
    assert settings.kafka_bootstrap == "kafka:9092"
    assert not settings.uses_local_postgres
    assert settings.database_url == "postgresql+psycopg://u:p@db/audit"
    assert settings.http_port == 8080
    assert settings.topic == "hooks"
    assert settings.state_dir == Path("~/x").expanduser()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("WCS_AUDIT_HTTP_PORT", "eighty"),
        ("WCS_AUDIT_TOPIC_PARTITIONS", "0"),
        ("WCS_AUDIT_PROJECTOR_SYNCHRONOUS_COMMIT", "sometimes"),
    ],
)
def test_bad_value_names_the_variable(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({name: value})


def test_every_field_has_its_own_variable() -> None:
    variables = Settings.variables()
    assert all(name.startswith("WCS_AUDIT_") for name in variables)
    assert len(set(variables.values())) == len(variables)
