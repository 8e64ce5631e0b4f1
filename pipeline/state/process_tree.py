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
# (proc.aname[N], proc.apid[N]) for N = 1..MAX_ANCESTORS
ANCESTOR_KEYS = tuple((f"proc.aname[{level}]", f"proc.apid[{level}]") for level in range(1, MAX_ANCESTORS + 1))


@dataclass(frozen=True, slots=True)
class TreeLimits:
    max_processes: int = 4096
    exited_ttl_ns: int = 60 * 1_000_000_000


ABSENT = object()  # in enrich_in_place's undo list: the field was not in the event


def as_produced(event: dict, undo: list[tuple[str, Any]] | None) -> dict:
    """``event`` as it was before :meth:`ProcessTree.enrich_in_place` returned ``undo``
    (a new dict, same key order; the event itself is left enriched)."""
    if not undo:
        return event
    original = dict(event)
    for key, before in undo:
        if before is ABSENT:
            del original[key]
        else:
            original[key] = before
    return original


def _int(value: Any) -> int | None:
    if type(value) is int:  # the usual case first; a bool is not a pid
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


class ProcessTree:
    """pid -> [name, exe, cmdline, ppid, start_ns, last_seen_ns, exited_ns]."""

    __slots__ = ("procs", "last_ns", "limits", "_exited", "_ancestry", "_chained")

    def __init__(self, limits: TreeLimits | None = None, procs: dict[str, list] | None = None, last_ns: int = 0) -> None:
        self.limits = limits or TreeLimits()
        # an OrderedDict: move_to_end and popitem(last=False) are O(1), where a plain dict's
        # "first key" after many deletions at the front is a scan over the holes they leave
        self.procs: OrderedDict[str, list] = OrderedDict(procs or ())
        self.last_ns = last_ns
        self._exited = sum(1 for p in self.procs.values() if p[EXITED] is not None)  # expire() is a no-op while 0
        # (pid, ppid) -> the ancestor fields enrich adds, and the pids those walks looked up (known or
        # not): both are emptied when one of those pids is learnt, exec'd or forgotten
        self._ancestry: dict[tuple[int | None, int], dict[str, Any]] = {}
        self._chained: set[str] = set()

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
        copy = dict(event)
        return copy if self.enrich_in_place(copy) else event

    def enrich_in_place(self, event: dict) -> list[tuple[str, Any]] | None:
        """Add to ``event`` the parent/ancestor fields it lacks, from the tree; returns what
        :func:`as_produced` needs to give the event back as it came ((key, value before or
        ABSENT) for each field set), or None when nothing was added. In place: the worker
        does this for every event, and a copy of a 40-field dict costs more than the rest."""
        pid = _int(event.get("proc.pid"))
        ppid = _int(event.get("proc.ppid"))
        if ppid is None and pid is not None:
            known = self.procs.get(str(pid))
            if known is not None:
                ppid = known[PPID]
        if ppid is None:
            return None
        undo: list[tuple[str, Any]] = []
        if "proc.ppid" not in event:
            undo.append(("proc.ppid", ABSENT))
            event["proc.ppid"] = ppid
        parent = self.procs.get(str(ppid))
        if parent is None:  # the usual case for a collector that sends parent fields: nothing (more) to add
            return undo or None
        get = event.get
        if get("proc.pname") is None:
            undo.append(("proc.pname", get("proc.pname", ABSENT)))
            event["proc.pname"] = parent[NAME]
        if parent[CMDLINE] is not None and get("proc.pcmdline") is None:
            undo.append(("proc.pcmdline", get("proc.pcmdline", ABSENT)))
            event["proc.pcmdline"] = parent[CMDLINE]
        if parent[EXE] is not None and get("proc.pexepath") is None:
            undo.append(("proc.pexepath", get("proc.pexepath", ABSENT)))
            event["proc.pexepath"] = parent[EXE]
        if "proc.aname[1]" not in event:
            ancestry = self._ancestry.get((pid, ppid))
            if ancestry is None:
                ancestry = self._ancestors(pid, ppid, parent)
            for key in ancestry:
                undo.append((key, get(key, ABSENT)))
            event.update(ancestry)
        return undo or None

    def _ancestors(self, pid: int | None, ppid: int, parent: list) -> dict[str, Any]:
        """proc.aname[N]/proc.apid[N] from the parent up, as far as the tree knows (a loop stops it)."""
        found: dict[str, Any] = {}
        current, cursor, seen = parent, ppid, {pid}
        procs = self.procs
        chained = self._chained
        chained.add(str(ppid))
        for name_key, pid_key in ANCESTOR_KEYS:
            if current is None or cursor in seen:
                break
            seen.add(cursor)
            found[name_key] = current[NAME]
            found[pid_key] = cursor
            cursor = current[PPID]
            if cursor is None:
                break
            looked_up = str(cursor)
            chained.add(looked_up)
            current = procs.get(looked_up)
        if len(self._ancestry) >= self.limits.max_processes:
            self.forget_ancestry()
        self._ancestry[(pid, ppid)] = found
        return found

    def forget_ancestry(self) -> None:
        """Drop the remembered ancestors (the worker does at the end of each batch: a tree kept
        between batches then costs no more memory than its processes)."""
        self._ancestry.clear()
        self._chained.clear()

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
                key = str(child)
                self.procs[key] = [source[NAME], source[EXE], source[CMDLINE], pid, now, now, None]
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
            return True  # not moved: an exited process is the first to go (ancestry unchanged)
        elif entry is None:
            if event.get("proc.name") is None:
                return False
            self.procs[key] = [event.get("proc.name"), event.get("proc.exepath"), event.get("proc.cmdline"),
                               _int(event.get("proc.ppid")), now, now, None]
        else:
            entry[SEEN] = now
            self.procs.move_to_end(key)  # most recently seen
            return False
        if key in self._chained:  # ``key``: the process learnt or exec'd
            self.forget_ancestry()
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
        if self._chained and not self._chained.isdisjoint(gone):
            self.forget_ancestry()
        return len(gone)

    def _bound(self) -> None:
        """Past ``max_processes``, forget the least recently seen (the front of the dict)."""
        procs = self.procs
        while len(procs) > self.limits.max_processes:
            pid, gone = procs.popitem(last=False)
            if gone[EXITED] is not None:
                self._exited -= 1
            if pid in self._chained:
                self.forget_ancestry()
