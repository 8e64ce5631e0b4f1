"""Is a TCP port free, and if not, who holds it?

A server that cannot bind its port dies with a Java stack trace deep in its
log. Checking first lets `stack up` say which process is in the way.
"""

from __future__ import annotations

import errno
import os
import socket
from pathlib import Path

from pipeline.errors import StackError


def port_in_use(host: str, port: int) -> bool:
    """True when binding host:port fails because something already listens there."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # SO_REUSEADDR: a port in TIME_WAIT from a stopped server counts as free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            if error.errno in (errno.EADDRINUSE, errno.EACCES):
                return True
            raise StackError(f"cannot check port {host}:{port}: {error.strerror}") from None
    return False


def listener_pid(port: int) -> int | None:
    """The pid of a process listening on `port` (any address), when /proc tells us."""
    inodes = _listening_inodes(port)
    if not inodes:
        return None
    for pid_dir in Path("/proc").iterdir():
        if not pid_dir.name.isdigit():
            continue
        try:
            for fd in (pid_dir / "fd").iterdir():
                try:
                    target = os.readlink(fd)
                except OSError:
                    continue
                if target.startswith("socket:[") and target[8:-1] in inodes:
                    return int(pid_dir.name)
        except OSError:  # gone, or not ours to look at
            continue
    return None


def _listening_inodes(port: int) -> set[str]:
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            if len(cols) < 10 or cols[3] != "0A":  # 0A = LISTEN
                continue
            if int(cols[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(cols[9])
    return inodes


def describe_pid(pid: int) -> str:
    """`pid 123 (python3 -m http.server 9200)`, as much as /proc shows."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        command = " ".join(part.decode(errors="replace") for part in raw.split(b"\0") if part)
    except OSError:
        command = ""
    if len(command) > 120:
        command = command[:117] + "..."
    return f"pid {pid} ({command})" if command else f"pid {pid}"


def ensure_port_free(host: str, port: int, what: str, env_var: str) -> None:
    """Raise a StackError naming the holder when `port` is taken."""
    if not port_in_use(host, port):
        return
    pid = listener_pid(port)
    holder = describe_pid(pid) if pid is not None else "another process"
    raise StackError(
        f"port {host}:{port} for {what} is already in use by {holder}; "
        f"stop it or choose another port with {env_var}"
    )
