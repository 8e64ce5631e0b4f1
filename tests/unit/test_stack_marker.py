"""Install markers: a finished install checks out; partial, changed or other-version installs do not."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.stack.marker import MARKER_NAME, check_marker, write_marker


@pytest.fixture
def install(tmp_path: Path) -> Path:
    root = tmp_path / "kafka"
    (root / "libs").mkdir(parents=True)
    (root / "libs" / "kafka_2.13-4.3.1.jar").write_bytes(b"x" * 1000)
    (root / "libs" / "kafka-clients-4.3.1.jar").write_bytes(b"y" * 500)
    (root / "config").mkdir()
    (root / "config" / "server.properties").write_text("node.id=1\n")
    write_marker(root, "4.3.1", skip=("config",))
    return root


def test_complete_install_checks_out(install: Path):
    check = check_marker(install, "4.3.1")
    assert check.ok and check.version == "4.3.1"


def test_skipped_subtrees_may_change(install: Path):
    (install / "config" / "server.properties").write_text("node.id=2\nmore=1\n")
    assert check_marker(install, "4.3.1").ok


def test_truncated_file_is_detected(install: Path):
    (install / "libs" / "kafka_2.13-4.3.1.jar").write_bytes(b"x" * 10)
    check = check_marker(install, "4.3.1")
    assert not check.ok
    assert check.reason == "libs/kafka_2.13-4.3.1.jar has 10 bytes, expected 1000"


def test_missing_file_is_detected(install: Path):
    (install / "libs" / "kafka-clients-4.3.1.jar").unlink()
    assert check_marker(install, "4.3.1").reason == "libs/kafka-clients-4.3.1.jar is missing"


def test_install_without_marker_is_an_unfinished_install(install: Path):
    (install / MARKER_NAME).unlink()
    assert check_marker(install, "4.3.1").reason == "an earlier install did not finish (no marker)"


def test_garbled_marker_is_detected(install: Path):
    (install / MARKER_NAME).write_text("{not json")
    assert "unreadable" in check_marker(install, "4.3.1").reason


def test_other_version_is_not_accepted(install: Path):
    check = check_marker(install, "4.4.0")
    assert not check.ok
    assert check.reason == "version 4.3.1 is installed, 4.4.0 is wanted"


def test_absent_directory_is_not_installed(tmp_path: Path):
    assert check_marker(tmp_path / "nothing", "1.0.0").reason == "not installed"
