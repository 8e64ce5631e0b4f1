"""Start, find and stop the stack's server processes, by pid file.

A pid file alone is not proof: pids are reused. A process counts as ours only
when its command line carries the markers we put there at start
(``-Dperegrine.stack=<name>`` and ``-Dperegrine.home=<home>``), so `stack down`
never signals a stranger that happens to have an old pid.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import StackError


@dataclass(frozen=True, slots=True)
class ServerProcess:
    """How to recognise one server of the stack: its pid file and command-line markers."""

    name: str
    pid_file: Path
    markers: tuple[str, ...]


def markers_for(name: str, home: Path) -> tuple[str, ...]:
    return (f"-Dperegrine.stack={name}", f"-Dperegrine.home={home}")


def command_line(pid: int) -> list[str] | None:
    """The argv of a live process, or None when it is gone (or a zombie).

    Right after a fork/exec the cmdline reads empty for a moment; a live,
    non-zombie process with an empty cmdline is asked again briefly.
    """
    for _ in range(50):
        try:
            raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return None
        if raw:
            return [part.decode(errors="replace") for part in raw.split(b"\0") if part]
        if _state(pid) in (None, "Z", "X"):
            return None
        time.sleep(0.01)
    return None


def _state(pid: int) -> str | None:
    """The one-letter state from /proc/<pid>/stat (R, S, Z...), None when gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[0]


def is_ours(pid: int, markers: tuple[str, ...]) -> bool:
    argv = command_line(pid)
    return argv is not None and all(marker in argv for marker in markers)


def read_pid(pid_file: Path) -> int | None:
    try:
        text = pid_file.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def running_pid(server: ServerProcess) -> int | None:
    """The pid of our live server, or None. A stale or foreign pid file is removed."""
    pid = read_pid(server.pid_file)
    if pid is None:
        return None
    if is_ours(pid, server.markers):
        return pid
    server.pid_file.unlink(missing_ok=True)
    return None


def rotate_log(log_path: Path) -> None:
    """Keep the previous run's log as `<name>.1`, so a crash log survives a restart."""
    if log_path.exists():
        log_path.replace(log_path.with_name(log_path.name + ".1"))


def start_detached(
    server: ServerProcess,
    argv: list[str],
    *,
    env: dict[str, str],
    cwd: Path,
    log_path: Path,
    user: tuple[int, int] | None = None,
) -> int:
    """Start `argv` in its own session (it outlives this command), output to `log_path`.

    `user` is (uid, gid) to drop to, for servers that refuse to run as root.
    """
    rotate_log(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    extra: dict[str, object] = {}
    if user is not None:
        extra = {"user": user[0], "group": user[1], "extra_groups": []}
    with open(log_path, "ab") as log:
        try:
            child = subprocess.Popen(
                argv,
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
                **extra,  # type: ignore[arg-type]
            )
        except OSError as error:
            raise StackError(f"cannot start {server.name} ({argv[0]}): {error.strerror}") from None
    server.pid_file.parent.mkdir(parents=True, exist_ok=True)
    server.pid_file.write_text(f"{child.pid}\n")
    return child.pid


def alive(pid: int) -> bool:
    """Running (a zombie is not): signal 0 says it exists, /proc says it is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return _state(pid) not in (None, "Z", "X")


def _reap(pid: int) -> None:
    """Collect the exit status when the process is our child, so it is not left a zombie."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def stop(server: ServerProcess, pid: int, timeout_s: float = 30.0) -> str:
    """SIGTERM, then SIGKILL after `timeout_s`. Only a process that is ours. Returns how."""
    if not is_ours(pid, server.markers):
        server.pid_file.unlink(missing_ok=True)
        return "not ours"
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        _reap(pid)
        if not alive(pid):
            server.pid_file.unlink(missing_ok=True)
            return "stopped"
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)
    for _ in range(50):
        _reap(pid)
        if not alive(pid):
            break
        time.sleep(0.1)
    server.pid_file.unlink(missing_ok=True)
    return "killed"


def log_tail(log_path: Path, lines: int = 20) -> str:
    """The last lines of a log, indented, for an error message."""
    try:
        with open(log_path, "rb") as log:
            log.seek(0, os.SEEK_END)
            size = log.tell()
            log.seek(max(size - 64 * 1024, 0))
            text = log.read().decode(errors="replace")
    except OSError:
        return "    (no log)"
    tail = text.splitlines()[-lines:]
    return "\n".join("    " + line[:300] for line in tail) or "    (log is empty)"
