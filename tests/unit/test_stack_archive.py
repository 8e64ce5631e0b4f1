"""Unpacking the OpenSearch archive: executable bits kept, a damaged archive is a clear StackError."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import pytest

from pipeline.errors import StackError
from pipeline.stack.opensearch import _unzip


def _archive(path: Path) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zipped:
        script = zipfile.ZipInfo("opensearch-2.19.6/bin/opensearch")
        script.external_attr = 0o755 << 16
        zipped.writestr(script, "#!/bin/sh\necho hi\n" * 50)
        zipped.writestr("opensearch-2.19.6/lib/core.jar", b"jar bytes " * 500)
    return path


def test_unpacks_without_the_top_folder_and_keeps_exec_bits(tmp_path: Path):
    target = tmp_path / "out"
    _unzip(_archive(tmp_path / "os.zip"), target, strip="opensearch-2.19.6/")
    assert (target / "lib" / "core.jar").read_bytes() == b"jar bytes " * 500
    assert os.access(target / "bin" / "opensearch", os.X_OK)


def test_damaged_archive_is_a_stack_error_and_leaves_nothing(tmp_path: Path):
    archive = _archive(tmp_path / "os.zip")
    data = bytearray(archive.read_bytes())
    middle = len(data) // 3
    data[middle:middle + 40] = b"\0" * 40
    archive.write_bytes(bytes(data))
    target = tmp_path / "out"
    with pytest.raises(StackError, match="cached OpenSearch archive is corrupt") as error:
        _unzip(archive, target, strip="opensearch-2.19.6/")
    assert "~/.m2/repository/org/opensearch" in str(error.value)
    assert not target.exists()


def test_truncated_archive_is_a_stack_error(tmp_path: Path):
    archive = _archive(tmp_path / "os.zip")
    archive.write_bytes(archive.read_bytes()[:200])
    with pytest.raises(StackError, match="corrupt"):
        _unzip(archive, tmp_path / "out", strip="opensearch-2.19.6/")
