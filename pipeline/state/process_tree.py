"""One container's process tree, built from its syscall events.

Falco's events carry the parent's fields because the kernel driver keeps a
thread table; events that arrive from a collector without them (or whose
parent started before the collector) get them here: ``proc.pname``,
``proc.pcmdline``, ``proc.pexepath``, ``proc.ppid`` and ``proc.aname[N]`` /
``proc.apid[N]`` for the ancestors we know.

The tree learns from ``execve``/``execveat`` exits (a process's name, exe and
command line), ``clone``/``fork``/``vfork`` (a child inherits its parent's
image) and ``procexit`` (the process is marked exited, its children go to the
reaper), as libsinsp's thread table does: keyed by ``proc.pid`` (the thread
group), a thread is no process, a caller's clone return value makes a child
only when it is a pid of this tree, a reused pid starts afresh (see
docs/pipeline.md, "Process tree"). It is bounded: an
exited process is forgotten ``exited_ttl_ns`` of event time after it exited
(children that race their parent's exit still find it; :meth:`expire` runs
once per batch), and past ``max_processes`` the least recently seen process
that no other names as its parent goes. The dict is kept in recency order (a
process seen again moves to the end; an exit does not move it; a parent
passed over by eviction moves to the end), so that eviction is a walk from
the front, not a sort.

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

from pipeline.json_bytes import json_bytes
from pipeline.record_bounds import MAX_PART_BYTES, bounded, cut
from pipeline.ingest.numbers import INT64, int64

EXEC_TYPES = frozenset({"execve", "execveat"})
CLONE_TYPES = frozenset({"clone", "clone3", "fork", "vfork"})
EXIT_TYPES = frozenset({"procexit"})
TREE_TYPES = EXEC_TYPES | CLONE_TYPES | EXIT_TYPES  # the events that change a tree beyond recency
#: proc.aname[N]/proc.apid[N] filled up to this N: as far as the rules engine reads ``proc.aname``
#: without an index (pipeline/fields/syscall.py), so an ancestor Falco would see is seen
MAX_ANCESTORS = 16
#: a process entry made by a clone's other side this recently is that very child (libsinsp's
#: CLONE_STALE_TIME_NS); an older live entry with the child's pid lost its exit event
CLONE_STALE_NS = 2_000_000_000
#: how far up an exit looks for its children's reaper (a loop in the parents stops it sooner)
MAX_REAPER_WALK = 64
#: clone flags (``evt.arg.flags``) after which the caller's return value is no new process of this
#: tree: a thread of the caller, a vfork child (its exit may come before the caller's clone exit),
#: or a pid in another namespace (the child's vpid, not its pid)
NO_CHILD_FROM_CALLER = frozenset({"CLONE_THREAD", "CLONE_VFORK", "CLONE_NEWPID", "CLONE_PARENT", "CLONE_CHILD_IN_PIDNS"})

# Index of each attribute in a process entry (a list, to keep the state small).
NAME, EXE, CMDLINE, PPID, START, SEEN, EXITED = range(7)
# (proc.aname[N], proc.apid[N]) for N = 1..MAX_ANCESTORS
ANCESTOR_KEYS = tuple((f"proc.aname[{level}]", f"proc.apid[{level}]") for level in range(1, MAX_ANCESTORS + 1))


@dataclass(frozen=True, slots=True)
class TreeLimits:
    max_processes: int = 4096
    exited_ttl_ns: int = 60 * 1_000_000_000
    max_bytes: int = MAX_PART_BYTES  # the serialised tree is one changelog record (ProcessTree.shrink)


#: a process's name, exe and command line are kept up to this many bytes (Falco's driver captures
#: a few KB of arguments; a padded command line must not fill a container's state)
MAX_STRING_BYTES = 16 * 1024


def _kept(value: Any) -> Any:
    return cut(value, MAX_STRING_BYTES) if value.__class__ is str else value


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
    """A pid or a time that fits a signed 64-bit integer (what the tree's JSON, one changelog
    record, can hold): pipeline.ingest.numbers.int64, the usual int first."""
    if type(value) is int and -INT64 <= value < INT64:
        return value
    return int64(value)


def _seen(get: Any, now: int) -> list:
    """A process entry from what an event says of its process."""
    return [_kept(get("proc.name")), _kept(get("proc.exepath")), _kept(get("proc.cmdline")), _int(get("proc.ppid")), now, now, None]


def _other_thread(get: Any, pid: int) -> bool:
    """The event comes from a thread of ``pid`` other than its leader (``thread.tid``, when sent)."""
    tid = get("thread.tid")
    if tid is None:
        return False
    tid = _int(tid)
    return tid is not None and tid != pid


def _new_process(get: Any, pid: int, entry: list, now: int) -> bool:
    """A child's clone exit (``proc.pid`` ``pid``) meets ``entry``: True when that entry is another
    process's, one that exited before, or (the child known to be no thread) one whose exit was lost,
    made longer than CLONE_STALE_NS ago; a thread's clone exit shows its own process."""
    flags = get("evt.arg.flags")
    if flags.__class__ is str:
        if "CLONE_THREAD" in flags.split("|"):
            return False
        leader = True
    else:
        leader = get("thread.tid") is not None
    if _other_thread(get, pid):
        return False
    if entry[EXITED] is not None:
        return now > entry[EXITED]
    return leader and now - entry[START] >= CLONE_STALE_NS


class ProcessTree:
    """pid -> [name, exe, cmdline, ppid, start_ns, last_seen_ns, exited_ns].

    Pids are ints in memory (the JSON it serialises to has them as text keys)."""

    __slots__ = ("procs", "last_ns", "limits", "_exited", "_children", "_ancestry", "_chained")

    def __init__(self, limits: TreeLimits | None = None, procs: dict[Any, list] | None = None, last_ns: int = 0) -> None:
        self.limits = limits or TreeLimits()
        # an OrderedDict: move_to_end and popitem(last=False) are O(1), where a plain dict's
        # "first key" after many deletions at the front is a scan over the holes they leave
        self.procs: OrderedDict[int, list] = OrderedDict()
        for pid, entry in (procs or {}).items():
            number = _int(pid)
            if number is not None and type(entry) is list and len(entry) == 7:
                self.procs[number] = entry
        self.last_ns = last_ns
        self._exited = sum(1 for p in self.procs.values() if p[EXITED] is not None)  # expire() is a no-op while 0
        # pid -> how many entries name it their parent: an exit reparents only when there are some,
        # and the bounds forget a process no other names first
        self._children: dict[int, int] = {}
        for entry in self.procs.values():
            if entry[PPID] is not None:
                self._children[entry[PPID]] = self._children.get(entry[PPID], 0) + 1
        # (pid, ppid) -> the ancestor fields enrich adds, as (key, value) pairs, and the pids those
        # walks looked up (known or not): both are emptied when one of those pids is learnt,
        # exec'd or forgotten
        self._ancestry: dict[tuple[int | None, int], tuple[tuple[str, Any], ...]] = {}
        self._chained: set[int] = set()

    def __len__(self) -> int:
        return len(self.procs)

    # -- serialisation ------------------------------------------------------

    def to_bytes(self) -> bytes:
        # dict(...): orjson writes an OrderedDict in its insertion order, blind to move_to_end, and
        # a tree read back would have lost which processes were seen last (what the bounds keep)
        return json_bytes({"p": dict(self.procs), "t": self.last_ns}, orjson.OPT_NON_STR_KEYS)

    @classmethod
    def from_bytes(cls, data: bytes | None, limits: TreeLimits | None = None) -> "ProcessTree":
        if not data:
            return cls(limits)
        raw = orjson.loads(data)
        return cls(limits, raw.get("p", {}), raw.get("t", 0))

    # -- reading --------------------------------------------------------------

    def get(self, pid: int) -> list | None:
        return self.procs.get(_int(pid))

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
        get = event.get
        pid = get("proc.pid")
        if pid.__class__ is not int:
            pid = _int(pid)
        ppid = get("proc.ppid")
        undo: list[tuple[str, Any]] | None = None
        if ppid.__class__ is not int:
            ppid = _int(ppid)
            if ppid is None:
                known = self.procs.get(pid) if pid is not None else None
                if known is None or (known[EXITED] is not None and not self._same_process(event, pid, known)):
                    return None
                ppid = known[PPID]
                if ppid is None:
                    return None
            if "proc.ppid" not in event:
                undo = [("proc.ppid", ABSENT)]
                event["proc.ppid"] = ppid
        parent = self.procs.get(ppid)
        if parent is None:  # the usual case for a collector that sends parent fields: nothing (more) to add
            return undo
        if undo is None:
            undo = []
        if get("proc.pname") is None:
            undo.append(("proc.pname", get("proc.pname", ABSENT)))
            event["proc.pname"] = parent[NAME]
        if parent[CMDLINE] is not None and get("proc.pcmdline") is None:
            undo.append(("proc.pcmdline", get("proc.pcmdline", ABSENT)))
            event["proc.pcmdline"] = parent[CMDLINE]
        if parent[EXE] is not None and get("proc.pexepath") is None:
            undo.append(("proc.pexepath", get("proc.pexepath", ABSENT)))
            event["proc.pexepath"] = parent[EXE]
        if get("proc.aname[1]") is None:  # a collector that sends ancestors sends them from the parent up
            ancestry = self._ancestry.get((pid, ppid))
            if ancestry is None:
                ancestry = self._ancestors(pid, ppid, parent)
            for key, value in ancestry:
                before = get(key, ABSENT)
                if before is ABSENT or before is None:  # what the collector sent stays
                    undo.append((key, before))
                    event[key] = value
        return undo or None

    @staticmethod
    def _same_process(event: dict, pid: int, known: list) -> bool:
        """Whether ``event`` of ``pid`` is of the exited process ``known``: from before its exit,
        the exit itself, an exec (a thread's, after its leader's exit) or another of its threads."""
        get = event.get
        now = _int(get("evt.time"))
        return (not now or now <= known[EXITED] or get("evt.type") in EXEC_TYPES or get("evt.type") in EXIT_TYPES
                or _other_thread(get, pid))

    def _ancestors(self, pid: int | None, ppid: int, parent: list) -> tuple[tuple[str, Any], ...]:
        """proc.aname[N]/proc.apid[N] from the parent up, as far as the tree knows (a loop stops it)."""
        found: list[tuple[str, Any]] = []
        current, cursor, seen = parent, ppid, {pid}
        procs = self.procs
        chained = self._chained
        chained.add(ppid)
        for name_key, pid_key in ANCESTOR_KEYS:
            if current is None or cursor in seen:
                break
            seen.add(cursor)
            found.append((name_key, current[NAME]))
            found.append((pid_key, cursor))
            cursor = current[PPID]
            if cursor is None:
                break
            chained.add(cursor)
            current = procs.get(cursor)
        if len(self._ancestry) >= self.limits.max_processes:
            self.forget_ancestry()
        ancestry = self._ancestry[(pid, ppid)] = tuple(found)
        return ancestry

    def forget_ancestry(self) -> None:
        """Drop the remembered ancestors (the worker does at the end of each batch: a tree kept
        between batches then costs no more memory than its processes)."""
        self._ancestry.clear()
        self._chained.clear()

    # -- learning -------------------------------------------------------------

    def update(self, event: dict) -> bool:
        """Learn from one event; True when the tree changed in a way worth writing
        (a process seen again only moves to the end of the recency order)."""
        get = event.get
        pid = get("proc.pid")
        if pid.__class__ is not int:
            pid = _int(pid)
            if pid is None:
                return False
        now = get("evt.time")
        if now.__class__ is not int:
            now = _int(now)
        if not now:
            now = self.last_ns
        elif now > self.last_ns:
            self.last_ns = now
        procs = self.procs
        entry = procs.get(pid)
        etype = get("evt.type")
        if etype in EXEC_TYPES and get("evt.dir", "<") != "<":
            etype = None  # an exec's enter event: the process as seen, its new image comes with the exit
        if etype not in TREE_TYPES:  # the usual event: a process seen (again)
            if entry is not None:
                if entry[EXITED] is None or now <= entry[EXITED] or _other_thread(get, pid):
                    entry[SEEN] = now
                    procs.move_to_end(pid)  # most recently seen
                    return False
                # after its exit, and not one of its remaining threads: another process has the pid
                if get("proc.name") is None:
                    self._remove(pid)
                    return True
            elif get("proc.name") is None:
                return False
            self._put(pid, _seen(get, now))
        elif etype in EXEC_TYPES:
            ppid = _int(get("proc.ppid"))
            if ppid is None and entry is not None:
                ppid = entry[PPID]  # a thread's exec after its leader's exit is the same process (libsinsp resurrects it)
            self._put(pid, [
                _kept(get("proc.name")), _kept(get("proc.exepath") or get("proc.exe")),
                _kept(get("proc.cmdline")), ppid, entry[START] if entry else now, now, None,
            ])
        elif etype in CLONE_TYPES:
            child = _int(get("evt.rawres"))
            if child is not None and child > 0:  # the caller's side
                if self._child_from_caller(get, pid, entry, child, etype, now):
                    return True
            elif child == 0 and entry is not None and _new_process(get, pid, entry, now):
                self._put(pid, _seen(get, now))  # the child's side, its pid held by a process gone
                return True
            if entry is None:
                self._put(pid, _seen(get, now))
            else:
                entry[SEEN] = now
                procs.move_to_end(pid)
                return False
        else:  # an exit
            if entry is None or entry[EXITED] is not None or _other_thread(get, pid):
                return False  # a thread other than the leader ends: its process lives on
            entry[EXITED] = now
            self._exited += 1
            if self._children.get(pid):
                self._reparent(pid, entry, _int(get("evt.arg.reaper_tid")))
            return True  # not moved: an exited process is the first to go (ancestry unchanged)
        self._bound()
        return True

    def _child_from_caller(self, get: Any, pid: int, entry: list | None, child: int, etype: str, now: int) -> bool:
        """The caller's clone exit: its new process, as a copy of the caller, when the return value
        is one (as libsinsp: not for a thread, a vfork, or a caller in a pid namespace, whose return
        value is the child's vpid: the child's own clone exit makes those). True when one was made."""
        flags = get("evt.arg.flags")
        if etype == "vfork" or (flags.__class__ is str and not NO_CHILD_FROM_CALLER.isdisjoint(flags.split("|"))):
            return False
        vpid = _int(get("proc.vpid"))
        if vpid is not None and vpid != pid:
            return False
        known = self.procs.get(child)
        if known is not None and known[EXITED] is None and now - known[START] < CLONE_STALE_NS:
            return False  # the child's side came first and made it
        source = entry or [_kept(get("proc.name")), _kept(get("proc.exepath")), _kept(get("proc.cmdline"))]
        self._put(child, [source[NAME], source[EXE], source[CMDLINE], pid, now, now, None])
        if entry is not None:
            entry[SEEN] = now
        self._bound()
        return True

    def _put(self, pid: int, entry: list) -> None:
        """``entry`` as ``pid``'s, at the recent end (replacing what the pid had)."""
        procs = self.procs
        old = procs.pop(pid, None)
        if old is not None:
            self._unlink(old)
        procs[pid] = entry
        if entry[PPID] is not None:
            children = self._children
            children[entry[PPID]] = children.get(entry[PPID], 0) + 1
        if pid in self._chained:  # the process learnt or exec'd
            self.forget_ancestry()

    def _remove(self, pid: int) -> list:
        gone = self.procs.pop(pid)
        self._unlink(gone)
        if pid in self._chained:
            self.forget_ancestry()
        return gone

    def _unlink(self, gone: list) -> None:
        """The counts of a process entry leaving the tree (or being replaced)."""
        if gone[EXITED] is not None:
            self._exited -= 1
        parent = gone[PPID]
        if parent is not None:
            children = self._children
            left = children.get(parent, 0) - 1
            if left > 0:
                children[parent] = left
            else:
                children.pop(parent, None)

    def _reparent(self, pid: int, entry: list, reaper: int | None) -> None:
        """``pid`` exited: its children are the reaper's now, as the kernel and libsinsp have them:
        the reaper the exit event names (``evt.arg.reaper_tid``), else the eldest living ancestor
        the tree knows (a container's init). With no living ancestor they keep the exited parent."""
        procs = self.procs
        if reaper is None or reaper <= 0 or reaper == pid or reaper not in procs:
            reaper, cursor, seen = None, entry[PPID], {pid}
            while cursor is not None and cursor not in seen and len(seen) <= MAX_REAPER_WALK:
                seen.add(cursor)
                above = procs.get(cursor)
                if above is None:
                    break
                if above[EXITED] is None:
                    reaper = cursor
                cursor = above[PPID]
            if reaper is None:
                return
        moved = 0
        for other in procs.values():
            if other[PPID] == pid:
                other[PPID] = reaper
                moved += 1
        children = self._children
        children.pop(pid, None)
        children[reaper] = children.get(reaper, 0) + moved
        self.forget_ancestry()

    def expire(self) -> int:
        """Forget processes that exited more than the TTL ago (event time). Returns how many."""
        if not self._exited:
            return 0
        cutoff = self.last_ns - self.limits.exited_ttl_ns
        gone = [pid for pid, p in self.procs.items() if p[EXITED] is not None and p[EXITED] < cutoff]
        for pid in gone:
            self._remove(pid)
        return len(gone)

    def shrink(self, max_bytes: int) -> bytes:
        """The tree serialised in at most ``max_bytes``: the least recently seen processes are
        forgotten (those no other names as its parent first), a quarter at a time, until it fits;
        a lone process still too large has its strings cut."""
        data = self.to_bytes()
        procs = self.procs
        while len(data) > max_bytes and len(procs) > 1:
            for _ in range(max(1, len(procs) // 4)):
                self._evict()
            self.forget_ancestry()
            data = self.to_bytes()
        if len(data) > max_bytes:
            entry = next(iter(procs.values()))
            for index in (NAME, EXE, CMDLINE):
                entry[index] = bounded(entry[index], max_bytes // 8)
            data = self.to_bytes()
        return data

    def _bound(self) -> None:
        """Past ``max_processes``, forget the least recently seen process that is no other's parent."""
        procs = self.procs
        while len(procs) > self.limits.max_processes:
            self._evict()

    def _evict(self) -> None:
        """Forget the least recently seen process (the front of the dict) that no process names as
        its parent, the parents passed over moving to the back: a quiet shell or init whose children
        are busy stays, so theirs is the ancestry enrich still gives. All parents (a loop): the front."""
        procs = self.procs
        children = self._children
        for _ in range(len(procs)):
            pid = next(iter(procs))
            if not children.get(pid):
                break
            procs.move_to_end(pid)
        self._remove(next(iter(procs)))
