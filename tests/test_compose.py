"""compose.yaml cannot run here (no Docker engine): check that it agrees with the code."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy.engine import make_url

from wcs_audit.cli import build_parser
from wcs_audit.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
APP_SERVICES = ("migrate", "receiver", "projector")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
    return loaded


def env_of(service: dict[str, Any]) -> dict[str, str]:
    return {name: str(value) for name, value in service.get("environment", {}).items()}


def test_the_whole_stack_is_there(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == {"kafka", "postgres", *APP_SERVICES}
    assert compose["services"]["kafka"]["image"].startswith("apache/kafka:4.")
    assert compose["services"]["postgres"]["image"].startswith("postgres:")
    for name in ("kafka", "postgres", "receiver", "projector"):
        assert "healthcheck" in compose["services"][name], name
    assert set(compose["volumes"]) >= {"kafka-data", "postgres-data", "receiver-spool"}


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_services_use_known_settings_and_commands(compose: dict[str, Any], name: str) -> None:
    service = compose["services"][name]
    env = env_of(service)
    unknown = {key for key in env if key.startswith("WCS_AUDIT_")} - set(Settings.variables())
    assert not unknown, f"{name} sets variables no setting reads: {unknown}"
    Settings.from_env(env)  # every value parses
    build_parser().parse_args(service["command"])  # a real wcs-audit command
    assert service["build"] == "."


def test_receiver_port_and_health_match_its_settings(compose: dict[str, Any]) -> None:
    receiver = compose["services"]["receiver"]
    settings = Settings.from_env(env_of(receiver))
    assert settings.http_host == "0.0.0.0"
    assert any(p.endswith(f":{settings.http_port}") for p in receiver["ports"])
    assert f":{settings.http_port}/readyz" in " ".join(receiver["healthcheck"]["test"])
    assert settings.spool_dir is not None
    assert any(v.endswith(f":{settings.spool_dir}") for v in receiver["volumes"])


def test_projector_port_and_health_match_its_settings(compose: dict[str, Any]) -> None:
    projector = compose["services"]["projector"]
    settings = Settings.from_env(env_of(projector))
    assert any(p.endswith(f":{settings.projector_metrics_port}") for p in projector["ports"])
    assert f":{settings.projector_metrics_port}/healthz" in " ".join(
        projector["healthcheck"]["test"]
    )


def test_app_services_reach_kafka_and_postgres(compose: dict[str, Any]) -> None:
    services = compose["services"]
    listeners = services["kafka"]["environment"]["KAFKA_LISTENERS"]
    pg_env = services["postgres"]["environment"]
    for name in APP_SERVICES:
        settings = Settings.from_env(env_of(services[name]))
        host, port = settings.kafka_bootstrap.split(":")
        assert host == "kafka"
        assert f"PLAINTEXT://:{port}" in listeners
        url = make_url(settings.database_url)
        assert (url.host, url.port) == ("postgres", 5432)
        assert (url.username, url.password, url.database) == (
            pg_env["POSTGRES_USER"],
            pg_env["POSTGRES_PASSWORD"],
            pg_env["POSTGRES_DB"],
        )


def test_start_order(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["receiver"]["depends_on"]["kafka"]["condition"] == "service_healthy"
    projector = services["projector"]["depends_on"]
    assert projector["migrate"]["condition"] == "service_completed_successfully"
    assert projector["postgres"]["condition"] == "service_healthy"
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_dockerfile_copies_every_package() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = [
        p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    ]
    dockerfile = (ROOT / "Dockerfile").read_text()
    for package in packages:
        assert f"COPY {package} ./{package}" in dockerfile, package
