"""OpenSearch, single node, from the integ-test distribution.

The integ-test zip is the smallest official build: core plus the netty
transport, no security plugin and no bundled JDK. It lacks the optional
modules (painless scripts, reindex / delete-by-query, analysis-common), which
Peregrine does not use. Maven resolves it from deploy/local/opensearch/pom.xml
into ~/.m2; it is unpacked into `<home>/opensearch`.

OpenSearch refuses to run as root, so under root it runs as a dedicated system
user that owns its install, data and log directories.
"""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess
import zipfile
import zlib
from pathlib import Path
from typing import Callable

from pipeline.errors import StackError
from pipeline.stack.marker import install_needed, write_marker
from pipeline.stack.process import ServerProcess, markers_for
from pipeline.stack.settings import REPO_ROOT, StackSettings
from pipeline.stack.toolchain import JavaHome, mvn_copy_dependencies

NAME = "opensearch"
POM = REPO_ROOT / "deploy" / "local" / "opensearch" / "pom.xml"


def server(settings: StackSettings) -> ServerProcess:
    return ServerProcess(NAME, settings.run_dir / "opensearch.pid", markers_for(NAME, settings.home))


def data_dir(settings: StackSettings) -> Path:
    return settings.data_dir / "opensearch"


def logs_dir(settings: StackSettings) -> Path:
    return settings.logs_dir / "opensearch"


def log_path(settings: StackSettings) -> Path:
    return settings.logs_dir / "opensearch.log"


def install(settings: StackSettings, java: JavaHome, say: Callable[[str], None]) -> None:
    """Make `<home>/opensearch` an unpacked `opensearch_version`; no-op when already whole."""
    root = settings.opensearch_dir
    version = settings.opensearch_version
    if not install_needed(NAME, root, version, POM, say):
        return
    say(f"opensearch {version}: resolving the distribution with mvn (cached in ~/.m2)")
    downloads = settings.home / "downloads"
    shutil.rmtree(downloads, ignore_errors=True)
    mvn_copy_dependencies(
        POM,
        downloads,
        {"opensearch.version": version},
        java=java,
        log_path=settings.logs_dir / "mvn-opensearch.log",
        what=f"OpenSearch {version}",
        extra=("-DexcludeTransitive=true",),
    )
    archive = downloads / f"opensearch-{version}.zip"
    if not archive.is_file():
        raise StackError(f"mvn finished but {archive.name} is not in {downloads}")
    shutil.rmtree(root, ignore_errors=True)
    staging = settings.home / "opensearch.partial"
    shutil.rmtree(staging, ignore_errors=True)
    say(f"opensearch {version}: unpacking")
    _unzip(archive, staging, strip=f"opensearch-{version}/")
    staging.replace(root)
    shutil.rmtree(downloads, ignore_errors=True)
    # config/ is rewritten on each start and gains a keystore: not part of the check.
    write_marker(root, version, skip=("config", "logs", "plugins"))


def _unzip(archive: Path, target: Path, strip: str) -> None:
    """Unpack keeping the executable bits (zipfile drops them) and dropping the top folder."""
    try:
        with zipfile.ZipFile(archive) as zipped:
            bad = zipped.testzip()
            if bad is not None:
                raise zipfile.BadZipFile(f"bad CRC for {bad}")
            for info in zipped.infolist():
                name = info.filename
                if not name.startswith(strip) or name == strip:
                    continue
                rel = name[len(strip):]
                if rel.startswith("/") or ".." in Path(rel).parts:
                    raise zipfile.BadZipFile(f"unsafe path {name}")
                dest = target / rel
                if info.is_dir():
                    dest.mkdir(parents=True, exist_ok=True)
                    continue
                dest.parent.mkdir(parents=True, exist_ok=True)
                with zipped.open(info) as source, open(dest, "wb") as out:
                    shutil.copyfileobj(source, out, 1024 * 1024)
                mode = (info.external_attr >> 16) & 0o777
                if mode:
                    dest.chmod(mode)
    except (zipfile.BadZipFile, zlib.error, EOFError) as error:
        shutil.rmtree(target, ignore_errors=True)
        raise StackError(
            f"the cached OpenSearch archive is corrupt ({error}): delete the opensearch folder under "
            f"~/.m2/repository/org/opensearch/distribution/integ-test-zip/ and run `peregrine stack up` again"
        ) from None


def run_as(settings: StackSettings) -> tuple[int, int] | None:
    """(uid, gid) of the user OpenSearch runs as when we are root; None otherwise.

    The user is created on first use (a locked system account with no shell).
    """
    if os.geteuid() != 0:
        return None
    name = settings.opensearch_user
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        useradd = shutil.which("useradd")
        if useradd is None:
            raise StackError(f"OpenSearch cannot run as root and useradd is missing to create user {name!r}") from None
        done = subprocess.run(
            [useradd, "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
             "--shell", "/usr/sbin/nologin", name],
            capture_output=True, text=True,
        )
        if done.returncode != 0:
            raise StackError(f"cannot create system user {name!r} for OpenSearch: {done.stderr.strip()}") from None
        entry = pwd.getpwnam(name)
    _check_traversable(settings.home, name)
    return entry.pw_uid, entry.pw_gid


def _check_traversable(home: Path, user: str) -> None:
    """Every parent of `home` must let others pass, or the OpenSearch user cannot reach its files."""
    for parent in [home, *home.parents]:
        try:
            mode = parent.stat().st_mode
        except OSError:
            continue
        if not mode & stat.S_IXOTH:
            raise StackError(
                f"user {user!r} cannot enter {parent} (no o+x), so OpenSearch cannot reach {home}: "
                "set PEREGRINE_HOME to a directory under a world-traversable path"
            )


def _chown_tree(root: Path, uid: int, gid: int) -> None:
    if not root.exists():
        return
    if root.stat().st_uid == uid:
        # Owned already: only fix the top files we rewrite on each start.
        for path in (root / "config").glob("**/*") if (root / "config").is_dir() else ():
            os.chown(path, uid, gid, follow_symlinks=False)
        return
    os.chown(root, uid, gid)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            os.chown(os.path.join(dirpath, name), uid, gid, follow_symlinks=False)


def configure(settings: StackSettings, owner: tuple[int, int] | None) -> None:
    """Write opensearch.yml for a single loopback node and hand the dirs to `owner`."""
    root = settings.opensearch_dir
    for directory in (data_dir(settings), logs_dir(settings), _tmp_dir(settings)):
        directory.mkdir(parents=True, exist_ok=True)
    (root / "config" / "opensearch.yml").write_text("\n".join([
        "# Written by `peregrine stack up` on every start; edit pipeline/stack/settings.py instead.",
        "cluster.name: peregrine-local",
        "node.name: peregrine-local-1",
        f"path.data: {data_dir(settings)}",
        f"path.logs: {logs_dir(settings)}",
        f"network.host: {settings.host}",
        f"http.port: {settings.opensearch_port}",
        "discovery.type: single-node",
        "cluster.routing.allocation.disk.threshold_enabled: false",
        "action.destructive_requires_name: false",
        "",
    ]))
    if owner is not None:
        for directory in (root, data_dir(settings), logs_dir(settings), _tmp_dir(settings)):
            _chown_tree(directory, *owner)


def _tmp_dir(settings: StackSettings) -> Path:
    return settings.data_dir / "opensearch-tmp"


def argv(settings: StackSettings) -> list[str]:
    return [str(settings.opensearch_dir / "bin" / "opensearch")]


def environment(settings: StackSettings, java: JavaHome) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENSEARCH_", "ES_", "JAVA_TOOL_OPTIONS"))}
    heap = settings.opensearch_heap
    env.update(
        JAVA_HOME=str(java.home),
        OPENSEARCH_JAVA_HOME=str(java.home),
        OPENSEARCH_TMPDIR=str(_tmp_dir(settings)),
        OPENSEARCH_JAVA_OPTS=" ".join([f"-Xms{heap}", f"-Xmx{heap}", *markers_for(NAME, settings.home)]),
    )
    env.pop("HOME", None)
    return env
