"""Missing prerequisites stop the local stack with one line that says what to install."""

from __future__ import annotations

from pathlib import Path

import pytest

from wcs_audit.cli import main
from wcs_audit.stack.kafka import KafkaPaths, check_java, fetch_jars
from wcs_audit.stack.process import StackError


def test_missing_java_names_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(StackError, match=r"java not found: install Java 17\+"):
        check_java()


def test_missing_maven_names_what_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(StackError, match="mvn not found: install Maven"):
        fetch_jars(KafkaPaths(libs=tmp_path / "libs", home=tmp_path / "home"))


def test_cli_prints_one_line_and_exits_2(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setenv("WCS_AUDIT_KAFKA_BOOTSTRAP", "127.0.0.1:1")  # nothing answers there
    monkeypatch.setenv("WCS_AUDIT_STATE_DIR", str(tmp_path))
    assert main(["stack", "up"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert err.startswith("wcs-audit: java not found")
