"""The install marker: proof that an install finished and is still whole.

It is written last, after every file is in place, and lists each file with its
size. An install killed half way has no marker; a file truncated or deleted
later no longer matches. Either way `stack up` says so and installs again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from pipeline.errors import StackError

MARKER_NAME = ".peregrine-installed.json"


@dataclass(frozen=True, slots=True)
class MarkerCheck:
    """The verdict on an install directory: ok, or why not."""

    ok: bool
    reason: str
    version: str | None = None


def _manifest(root: Path, skip: tuple[str, ...]) -> dict[str, int]:
    files: dict[str, int] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if rel == MARKER_NAME or any(rel == s or rel.startswith(s + "/") for s in skip):
            continue
        if path.is_file() and not path.is_symlink():
            files[rel] = path.stat().st_size
    return files


def write_marker(root: Path, version: str, skip: tuple[str, ...] = ()) -> None:
    """Record `version` and every file under `root` (except `skip` subtrees)."""
    body = {"version": version, "skip": list(skip), "files": _manifest(root, skip)}
    tmp = root / (MARKER_NAME + ".tmp")
    tmp.write_text(json.dumps(body, indent=1, sort_keys=True))
    tmp.replace(root / MARKER_NAME)


def check_marker(root: Path, version: str) -> MarkerCheck:
    """Is `root` a complete install of `version`? Cheap: sizes, not hashes."""
    marker = root / MARKER_NAME
    if not root.is_dir():
        return MarkerCheck(False, "not installed")
    if not marker.is_file():
        if any(root.iterdir()):
            return MarkerCheck(False, "an earlier install did not finish (no marker)")
        return MarkerCheck(False, "not installed")
    try:
        body = json.loads(marker.read_text())
        installed = str(body["version"])
        files = {str(k): int(v) for k, v in body["files"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return MarkerCheck(False, f"its marker {marker} is unreadable")
    if installed != version:
        return MarkerCheck(False, f"version {installed} is installed, {version} is wanted", installed)
    if not files:
        return MarkerCheck(False, "its marker lists no files", installed)
    for rel, size in files.items():
        path = root / rel
        try:
            actual = path.stat().st_size
        except OSError:
            return MarkerCheck(False, f"{rel} is missing", installed)
        if actual != size:
            return MarkerCheck(False, f"{rel} has {actual} bytes, expected {size}", installed)
    return MarkerCheck(True, "installed", installed)


def install_needed(name: str, root: Path, version: str, pom: Path, say: Callable[[str], None]) -> bool:
    """Whether `root` must be (re)installed from `pom`: False when its marker says `version` is whole.

    Says which it is; a reinstall needs the POM of a Peregrine source checkout (StackError without it).
    """
    check = check_marker(root, version)
    if check.ok:
        say(f"{name} {version}: installed")
        return False
    if check.reason != "not installed":
        say(f"{name}: reinstalling, {check.reason}")
    if not pom.is_file():
        raise StackError(f"{pom} is missing: run `peregrine stack up` from a Peregrine source checkout")
    return True
