"""Finding a Java the stack can use among several JDKs, and saying so when there is none."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.errors import StackError
from pipeline.stack.toolchain import find_java, find_mvn, java_major


def _fake_jdk(root: Path, version: str) -> Path:
    (root / "bin").mkdir(parents=True)
    java = root / "bin" / "java"
    java.write_text("#!/bin/sh\nexit 0\n")
    java.chmod(0o755)
    (root / "release").write_text(f'IMPLEMENTOR="Test"\nJAVA_VERSION="{version}"\n')
    return root


def test_major_version_comes_from_the_release_file(tmp_path: Path):
    assert java_major(_fake_jdk(tmp_path / "a", "17.0.15")) == 17
    assert java_major(_fake_jdk(tmp_path / "b", "1.8.0_392")) == 8
    assert java_major(_fake_jdk(tmp_path / "c", "25")) == 25


def test_first_supported_candidate_wins_over_a_too_new_java_home(tmp_path: Path):
    too_new = _fake_jdk(tmp_path / "jdk25", "25.0.1")
    good = _fake_jdk(tmp_path / "jdk17", "17.0.15")
    found = find_java({"JAVA_HOME": str(too_new), "PEREGRINE_JAVA_HOME": "", "PATH": str(good / "bin")})
    assert found.home == good and found.major == 17


def test_peregrine_java_home_comes_first(tmp_path: Path):
    chosen = _fake_jdk(tmp_path / "jdk21", "21.0.4")
    other = _fake_jdk(tmp_path / "jdk17", "17.0.15")
    found = find_java({"PEREGRINE_JAVA_HOME": str(chosen), "JAVA_HOME": str(other), "PATH": ""})
    assert found.home == chosen


def test_mvn_missing_is_a_one_line_stack_error():
    with pytest.raises(StackError, match="mvn not found on PATH") as error:
        find_mvn({"PATH": "/nonexistent"})
    assert "\n" not in str(error.value)


def test_no_usable_java_is_one_line_listing_what_was_found(tmp_path: Path):
    too_new = _fake_jdk(tmp_path / "jvm" / "jdk25", "25.0.1")
    with pytest.raises(StackError) as error:
        find_java({"JAVA_HOME": str(too_new), "PATH": "/nonexistent"}, jvm_dir=tmp_path / "jvm")
    text = str(error.value)
    assert text.startswith("no Java 17..21 found")
    assert f"{too_new} (Java 25)" in text
    assert "PEREGRINE_JAVA_HOME" in text and "\n" not in text
