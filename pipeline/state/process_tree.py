"""One container's process tree, built from its syscall events.

Falco's events carry the parent's fields because the kernel driver keeps a
thread table; events that arrive from a collector without them (or whose
parent started before the collector) get them here: ``proc.pname``,
``proc.pcmdline``, ``proc.pexepath``, ``proc.ppid`` and ``proc.aname[N]`` /
``proc.apid[N]`` for the ancestors we know.

The tree learns from ``execve``/``execveat`` exits (a process's name, exe and
command line), ``clone``/``fork``/``vfork`` (a child inherits its parent's
image) and ``procexit`` (the process is marked exited). It is bounded: an
exited process is forgotten ``exited_ttl_ns`` of event time after it exited
(children that race their parent's exit still find it; :meth:`expire` runs
once per batch), and past ``max_processes`` the least recently seen process
goes. The dict is kept in recency order (a process seen again moves to the
end; an exit does not move it), so that eviction is O(1) per event, not a
sort.

:meth:`update` says whether the tree changed in a way worth persisting (a
process learnt, exec'd, forked or exited); a process merely seen again only
refreshes its recency in memory, which is written along with the next real
change, so a busy container's tree is not re-written every batch for nothing.

It serialises to compact JSON for a changelog-backed table.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import orjson

EXEC_TYPES = frozenset({"execve", "execveat"})
CLONE_TYPES = frozenset({"clone", "clone3", "fork", "vfork"})
EXIT_TYPES = frozenset({"procexit"})
MAX_ANCESTORS = 8

# Index of each attribute in a process entry (a list, to keep the state small).
NAME, EXE, CMDLINE, PPID, START, SEEN, EXITED = range(7)


@dataclass(frozen=True, slots=True)
class TreeLimits:
    max_processes: int = 4096
    exited_ttl_ns: int = 60 * 1_000_000_000


def _int(value: Any) -> int | None:
    if type(value) is int:  # the usual case first; a bool is not a pid
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


class ProcessTree:
    """pid -> [name, exe, cmdline, ppid, start_ns, last_seen_ns, exited_ns]."""

    __slots__ = ("procs", "last_ns", "limits", "_exited")

    def __init__(self, limits: TreeLimits | None = None, procs: dict[str, list] | None = None, last_ns: int = 0) -> None:
        self.limits = limits or TreeLimits()
        # an OrderedDict: move_to_end and popitem(last=False) are O(1), where a plain dict's
        # "first key" after many deletions at the front is a scan over the holes they leave
        self.procs: OrderedDict[str, list] = OrderedDict(procs or ())
        self.last_ns = last_ns
        self._exited = sum(1 for p in self.procs.values() if p[EXITED] is not None)  # expire() is a no-op while 0

    def __len__(self) -> int:
        return len(self.procs)

    # -- serialisation ------------------------------------------------------

    def to_bytes(self) -> bytes:
        return orjson.dumps({"p": self.procs, "t": self.last_ns})

    @classmethod
    def from_bytes(cls, data: bytes | None, limits: TreeLimits | None = None) -> "ProcessTree":
        if not data:
            return cls(limits)
        raw = orjson.loads(data)
        return cls(limits, raw.get("p", {}), raw.get("t", 0))

    # -- reading --------------------------------------------------------------

    def get(self, pid: int) -> list | None:
        return self.procs.get(str(pid))

    def enrich(self, event: dict) -> dict:
        """The event with the parent/ancestor fields it lacks filled from the tree
        (a new dict when something is added; the same dict otherwise)."""
        pid = _int(event.get("proc.pid"))
        ppid = _int(event.get("proc.ppid"))
        if ppid is None and pid is not None:
            known = self.procs.get(str(pid))
            if known is not None:
                ppid = known[PPID]
        if ppid is None:
            return event
        parent = self.procs.get(str(ppid))
        if parent is None:  # the usual case for a collector that sends parent fields: nothing to add
            return event if "proc.ppid" in event else {**event, "proc.ppid": ppid}
        added: dict[str, Any] = {}
        if "proc.ppid" not in event:
            added["proc.ppid"] = ppid
        if parent is not None:
            if event.get("proc.pname") is None:
                added["proc.pname"] = parent[NAME]
            if event.get("proc.pcmdline") is None and parent[CMDLINE] is not None:
                added["proc.pcmdline"] = parent[CMDLINE]
            if event.get("proc.pexepath") is None and parent[EXE] is not None:
                added["proc.pexepath"] = parent[EXE]
        if "proc.aname[1]" not in event:
            level, current, seen = 1, parent, {pid}
            cursor = ppid
            while current is not None and level <= MAX_ANCESTORS and cursor not in seen:
                seen.add(cursor)
                added[f"proc.aname[{level}]"] = current[NAME]
                added[f"proc.apid[{level}]"] = cursor
                cursor = current[PPID]
                current = self.procs.get(str(cursor)) if cursor is not None else None
                level += 1
        if not added:
            return event
        return {**event, **added}

    # -- learning -------------------------------------------------------------

    def update(self, event: dict) -> bool:
        """Learn from one event; True when the tree changed in a way worth writing
        (a process seen again only moves to the end of the recency order)."""
        etype = event.get("evt.type")
        pid = _int(event.get("proc.pid"))
        if pid is None:
            return False
        now = _int(event.get("evt.time")) or self.last_ns
        if now > self.last_ns:
            self.last_ns = now
        key = str(pid)
        entry = self.procs.get(key)
        if etype in EXEC_TYPES and event.get("evt.dir", "<") == "<":
            ppid = _int(event.get("proc.ppid"))
            if ppid is None and entry is not None:
                ppid = entry[PPID]
            if entry is not None:
                if entry[EXITED] is not None:
                    self._exited -= 1
                self.procs.move_to_end(key)  # most recently seen
            self.procs[key] = [
                event.get("proc.name"), event.get("proc.exepath") or event.get("proc.exe"),
                event.get("proc.cmdline"), ppid, entry[START] if entry else now, now, None,
            ]
        elif etype in CLONE_TYPES:
            child = _int(event.get("evt.rawres"))
            if child is not None and child > 0 and str(child) not in self.procs:
                # the parent's side of a fork: the child starts as a copy of the parent
                source = entry or [event.get("proc.name"), event.get("proc.exepath"), event.get("proc.cmdline"), None, now, now, None]
                self.procs[str(child)] = [source[NAME], source[EXE], source[CMDLINE], pid, now, now, None]
            elif entry is None:
                self.procs[key] = [event.get("proc.name"), event.get("proc.exepath"), event.get("proc.cmdline"),
                                   _int(event.get("proc.ppid")), now, now, None]
            else:
                entry[SEEN] = now
                self.procs.move_to_end(key)
                return False
        elif etype in EXIT_TYPES:
            if entry is None or entry[EXITED] is not None:
                return False
            entry[EXITED] = now
            self._exited += 1
            return True  # not moved: an exited process is the first to go
        elif entry is None:
            if event.get("proc.name") is None:
                return False
            self.procs[key] = [event.get("proc.name"), event.get("proc.exepath"), event.get("proc.cmdline"),
                               _int(event.get("proc.ppid")), now, now, None]
        else:
            entry[SEEN] = now
            self.procs.move_to_end(key)  # most recently seen
            return False
        self._bound()
        return True

    def expire(self) -> int:
        """Forget processes that exited more than the TTL ago (event time). Returns how many."""
        if not self._exited:
            return 0
        cutoff = self.last_ns - self.limits.exited_ttl_ns
        gone = [pid for pid, p in self.procs.items() if p[EXITED] is not None and p[EXITED] < cutoff]
        for pid in gone:
            del self.procs[pid]
        self._exited -= len(gone)
        return len(gone)

    def _bound(self) -> None:
        """Past ``max_processes``, forget the least recently seen (the front of the dict)."""
        procs = self.procs
        while len(procs) > self.limits.max_processes:
            _, gone = procs.popitem(last=False)
            if gone[EXITED] is not None:
                self._exited -= 1
