"""The two host tools the local stack needs: a Java runtime and Maven.

Java: Kafka 4.x needs 17 or newer; OpenSearch 2.x runs on 17 to 21 and breaks on
24+ (its security manager was removed from the JDK). A machine can have
several JDKs, so candidates are tried in order (PEREGRINE_JAVA_HOME, JAVA_HOME,
the `java` on PATH, /usr/lib/jvm/*) and the first in range wins.

Maven: resolves the servers' artifacts so ~/.m2 is the download cache.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from pipeline.errors import StackError

JAVA_MIN = 17
JAVA_MAX = 21


@dataclass(frozen=True, slots=True)
class JavaHome:
    home: Path
    major: int

    @property
    def java(self) -> Path:
        return self.home / "bin" / "java"


def java_major(home: Path) -> int | None:
    """The major version of the JDK/JRE at `home`, from its `release` file or `java -version`."""
    release = home / "release"
    text = ""
    if release.is_file():
        match = re.search(r'^JAVA_VERSION="([^"]+)"', release.read_text(errors="replace"), re.M)
        text = match.group(1) if match else ""
    if not text:
        java = home / "bin" / "java"
        if not os.access(java, os.X_OK):
            return None
        try:
            probe = subprocess.run([str(java), "-version"], capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            return None
        match = re.search(r'version "([^"]+)"', probe.stderr)
        text = match.group(1) if match else ""
    match = re.match(r"(?:1\.)?(\d+)", text)
    return int(match.group(1)) if match else None


JVM_DIR = Path("/usr/lib/jvm")


def _candidates(env: Mapping[str, str], jvm_dir: Path) -> list[Path]:
    found: list[Path] = []
    for name in ("PEREGRINE_JAVA_HOME", "JAVA_HOME"):
        if env.get(name):
            found.append(Path(env[name]))
    on_path = shutil.which("java", path=env.get("PATH"))
    if on_path:
        found.append(Path(os.path.realpath(on_path)).parent.parent)
    if jvm_dir.is_dir():
        found.extend(sorted(p for p in jvm_dir.iterdir() if p.is_dir() and not p.is_symlink()))
    unique: list[Path] = []
    for path in found:
        if path not in unique:
            unique.append(path)
    return unique


def find_java(env: Mapping[str, str] | None = None, jvm_dir: Path = JVM_DIR) -> JavaHome:
    """The first Java home in the supported range, or a StackError listing what was seen."""
    env = os.environ if env is None else env
    seen: list[str] = []
    for home in _candidates(env, jvm_dir):
        if not os.access(home / "bin" / "java", os.X_OK):
            continue
        major = java_major(home)
        if major is not None and JAVA_MIN <= major <= JAVA_MAX:
            return JavaHome(home, major)
        seen.append(f"{home} (Java {major if major is not None else '?'})")
    detail = f"; found only {', '.join(seen)}" if seen else ""
    raise StackError(
        f"no Java {JAVA_MIN}..{JAVA_MAX} found{detail}: install openjdk-17-jre-headless "
        "or set PEREGRINE_JAVA_HOME to a JDK 17 or 21"
    )


def find_mvn(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    mvn = shutil.which("mvn", path=env.get("PATH"))
    if mvn is None:
        raise StackError(
            "mvn not found on PATH: install Maven (e.g. apt-get install maven); "
            "Peregrine uses it to download Kafka and OpenSearch into ~/.m2"
        )
    return Path(mvn)


def mvn_copy_dependencies(
    pom: Path,
    output_dir: Path,
    properties: Mapping[str, str],
    *,
    java: JavaHome,
    log_path: Path,
    what: str,
    extra: tuple[str, ...] = (),
) -> None:
    """Run `mvn dependency:copy-dependencies` on `pom` into `output_dir`.

    Artifacts already in ~/.m2 are not downloaded again. Output goes to
    `log_path`; a failure raises a StackError with Maven's own error line.
    """
    mvn = find_mvn()
    argv = [str(mvn), "-B", "-q", "-f", str(pom), "dependency:copy-dependencies",
            f"-DoutputDirectory={output_dir}", *extra]
    argv += [f"-D{key}={value}" for key, value in properties.items()]
    env = dict(os.environ, JAVA_HOME=str(java.home))
    log_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=1800)
    except subprocess.TimeoutExpired:
        raise StackError(f"mvn took more than 30 minutes to download {what}; is the network up?") from None
    log_path.write_text(f"$ {' '.join(argv)}\n{done.stdout}\n{done.stderr}")
    if done.returncode != 0:
        errors = [line.strip() for line in (done.stdout + done.stderr).splitlines() if "[ERROR]" in line]
        first = _strip_ansi(errors[0]).replace("[ERROR]", "").strip() if errors else f"exit code {done.returncode}"
        raise StackError(f"mvn could not download {what}: {first[:400]} (full output: {log_path})")


def _strip_ansi(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", text)
