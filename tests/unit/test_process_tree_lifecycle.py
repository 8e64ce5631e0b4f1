"""The process tree against libsinsp's thread table, with crafted event sequences: threads,
clone exits on either side, pid namespaces, vfork, pid reuse, reparenting at an exit, deep
ancestry, the collector's own fields, the bounds and the changelog round trip."""

from __future__ import annotations

import random

import pytest

from pipeline.state.process_tree import MAX_ANCESTORS, ProcessTree, TreeLimits

S = 1_000_000_000  # one second of event time


def exe(pid, ppid, name, t, **more):
    return {"evt.type": "execve", "evt.dir": "<", "evt.time": t, "proc.pid": pid, "proc.ppid": ppid, "proc.name": name,
            "proc.cmdline": name, **more}


def caller_clone(pid, child, t, flags="CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|SIGCHLD", **more):
    return {"evt.type": "clone", "evt.dir": "<", "evt.time": t, "proc.pid": pid, "thread.tid": pid, "evt.rawres": child,
            "evt.arg.flags": flags, "proc.name": "x", **more}


def child_clone(pid, ppid, t, name="x", flags="CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|SIGCHLD", tid=None):
    return {"evt.type": "clone", "evt.dir": "<", "evt.time": t, "proc.pid": pid, "thread.tid": tid or pid, "proc.ppid": ppid,
            "evt.rawres": 0, "evt.arg.flags": flags, "proc.name": name}


def procexit(pid, t, tid=None, **more):
    return {"evt.type": "procexit", "evt.time": t, "proc.pid": pid, "thread.tid": tid or pid, **more}


def seen(pid, t, **more):
    return {"evt.type": "openat", "evt.time": t, "proc.pid": pid, **more}


def tree_of(*events, limits=None):
    tree = ProcessTree(limits)
    for event in events:
        tree.update(event)
    return tree


def parent_of(tree, pid, t):
    return tree.enrich(seen(pid, t)).get("proc.pname")


def test_a_thread_is_no_process_and_its_exit_ends_no_process():
    """CLONE_THREAD: the new tid belongs to the caller's process (proc.pid is the tgid); a thread's
    procexit (thread.tid != proc.pid) leaves the process alive, so it does not expire."""
    tree = tree_of(exe(10, 1, "init", 1), exe(20, 10, "java", 2),
                   caller_clone(20, 21, 3, "CLONE_FILES|CLONE_FS|CLONE_SIGHAND|CLONE_THREAD|CLONE_VM"),
                   child_clone(20, 10, 3, "java", "CLONE_FILES|CLONE_FS|CLONE_SIGHAND|CLONE_THREAD|CLONE_VM", tid=21),
                   procexit(20, 4, tid=21), limits=TreeLimits(exited_ttl_ns=10))
    assert tree.get(21) is None and len(tree) == 2
    tree.update(exe(30, 20, "sh", 100))
    tree.expire()
    assert tree.get(20)[6] is None and parent_of(tree, 30, 101) == "java"


def test_the_callers_clone_in_a_pid_namespace_or_a_vfork_makes_no_child():
    """The caller's return value in a container is the child's vpid (libsinsp leaves the child to
    its own clone exit); a vfork child may exit before the caller returns, and is not made again."""
    tree = tree_of(exe(5000, 4000, "nginx", 1, **{"proc.vpid": 1}), caller_clone(5000, 7, 2, **{"proc.vpid": 1}))
    assert tree.get(7) is None
    tree.update(child_clone(5001, 5000, 3, "nginx"))
    assert tree.get(5001)[3] == 5000 and parent_of(tree, 5001, 4) == "nginx"

    tree = tree_of(exe(10, 1, "sh", 1), child_clone(11, 10, 2, "sh", "CLONE_VFORK|CLONE_VM"), procexit(11, 3),
                   caller_clone(10, 11, 4, "CLONE_VFORK|CLONE_VM"))
    assert tree.get(11)[6] == 3  # still the exited child, not a live copy of the caller
    tree = tree_of(exe(10, 1, "sh", 1), {"evt.type": "vfork", "evt.time": 2, "proc.pid": 10, "evt.rawres": 11, "proc.name": "sh"})
    assert tree.get(11) is None


def test_a_child_seen_before_its_callers_clone_exit_is_kept():
    tree = tree_of(exe(10, 1, "sh", 1), child_clone(11, 10, 2, "sh"), exe(11, 10, "curl", 3), caller_clone(10, 11, 4))
    assert tree.get(11)[0] == "curl" and tree.get(11)[3] == 10


@pytest.mark.parametrize("side", ["caller", "child", "other event"])
def test_a_reused_pid_does_not_inherit_the_old_processs_ancestry(side):
    """pid 30 was bash under sshd and exited; a new process gets pid 30 under nginx."""
    tree = tree_of(exe(10, 1, "sshd", 1), exe(20, 1, "nginx", 2), exe(30, 10, "bash", 3), procexit(30, 4))
    new = {"caller": caller_clone(20, 30, 5 * S, **{"proc.name": "nginx"}),
           "child": child_clone(30, 20, 5 * S, "nginx"),
           "other event": seen(30, 5 * S, **{"proc.name": "nginx", "proc.ppid": 20})}[side]
    tree.update(new)
    assert tree.get(30)[3] == 20 and tree.get(30)[6] is None
    assert parent_of(tree, 30, 6 * S) == "nginx" and tree.enrich(seen(30, 6 * S))["proc.aname[1]"] == "nginx"


def test_an_event_after_the_exit_lacking_its_parent_gets_none_of_the_dead_processs():
    tree = tree_of(exe(10, 1, "sshd", 1), exe(30, 10, "bash", 3), procexit(30, 4))
    assert "proc.pname" not in tree.enrich(seen(30, 9))
    tree.update(seen(30, 9))  # a process the tree knows nothing of holds the pid
    assert tree.get(30) is None


def test_a_late_event_of_an_exited_process_still_gets_its_ancestry():
    """Events of the same pid after its procexit in the batch, from before the exit (event time),
    or from another of its threads, are the exited process's."""
    tree = tree_of(exe(10, 1, "sshd", 1), exe(30, 10, "bash", 3), procexit(30, 10))
    for late in (seen(30, 9, **{"proc.name": "bash"}), seen(30, 11, **{"thread.tid": 31, "proc.name": "bash"})):
        assert tree.enrich(late)["proc.pname"] == "sshd"
        tree.update(late)
        assert tree.get(30)[3] == 10 and tree.get(30)[6] == 10


def test_a_threads_exec_after_its_leaders_exit_is_the_same_process():
    tree = tree_of(exe(10, 1, "sshd", 1), exe(30, 10, "bash", 3), procexit(30, 4),
                   {"evt.type": "execve", "evt.dir": "<", "evt.time": 5, "proc.pid": 30, "proc.name": "ls"})
    assert tree.get(30)[:4] == ["ls", None, None, 10] and tree.get(30)[6] is None


def test_an_orphan_is_the_reapers_child_as_libsinsp_reports_it():
    """sh (20) under the container's init (10) starts a daemon (30) and exits: the daemon's
    parent is then the reaper the exit names, else the eldest living ancestor (init)."""
    for reaper, expected in (({"evt.arg.reaper_tid": 15}, "tini"), ({}, "init")):
        tree = tree_of(exe(10, 4000, "init", 1), exe(15, 10, "tini", 2), exe(20, 15, "sh", 3), exe(30, 20, "daemon", 4),
                       exe(31, 30, "worker", 5), procexit(20, 6, **reaper))
        assert tree.get(30)[3] == (15 if reaper else 10)
        assert parent_of(tree, 30, 7) == expected and tree.enrich(seen(31, 7))["proc.aname[2]"] == expected
    # the init of the container exits: nobody to reap, the children keep it (they are killed with it)
    tree = tree_of(exe(10, 4000, "init", 1), exe(20, 10, "sh", 3), procexit(10, 6))
    assert tree.get(20)[3] == 10 and parent_of(tree, 20, 7) == "init"


def test_ancestry_reaches_as_deep_as_the_rules_engine_reads_it():
    from pipeline.fields.syscall import MAX_ANCESTORS as ENGINE_READS

    assert MAX_ANCESTORS == ENGINE_READS
    tree = tree_of(*(exe(pid, pid - 1, f"p{pid}", pid) for pid in range(2, 2 + MAX_ANCESTORS + 3)))
    leaf = 1 + MAX_ANCESTORS + 3
    event = tree.enrich(seen(leaf + 1, 99, **{"proc.ppid": leaf}))
    assert event[f"proc.aname[{MAX_ANCESTORS}]"] == f"p{leaf - MAX_ANCESTORS + 1}"
    assert f"proc.aname[{MAX_ANCESTORS + 1}]" not in event


def test_a_loop_of_parents_stops_the_walk():
    tree = tree_of(exe(10, 11, "a", 1), exe(11, 10, "b", 2))
    event = tree.enrich(seen(12, 3, **{"proc.ppid": 10}))
    assert [event.get(f"proc.apid[{n}]") for n in (1, 2, 3)] == [10, 11, None]


def test_the_collectors_ancestors_stay_and_only_missing_ones_are_added():
    tree = tree_of(exe(10, 1, "init", 1), exe(20, 10, "sh", 2), exe(30, 20, "sh", 3))
    sent = seen(40, 4, **{"proc.ppid": 30, "proc.aname[3]": "runc", "proc.pcmdline": "sh -c x"})
    event = tree.enrich(sent)
    assert (event["proc.aname[1]"], event["proc.aname[2]"], event["proc.aname[3]"]) == ("sh", "sh", "runc")
    assert event["proc.pcmdline"] == "sh -c x" and event["proc.apid[3]"] == 10


def test_the_bound_forgets_a_childless_process_before_a_quiet_parent():
    tree = tree_of(exe(10, 1, "init", 1), exe(20, 10, "sh", 2), limits=TreeLimits(max_processes=4))
    for t, pid in enumerate(range(100, 110), start=3):  # busy short-lived children of sh
        tree.update(exe(pid, 20, "worker", t))
    assert tree.get(10) is not None and tree.get(20) is not None and len(tree) == 4
    assert parent_of(tree, 109, 50) == "sh" and tree.enrich(seen(109, 50))["proc.aname[2]"] == "init"
    tree.update(exe(200, 1, "padded", 60, **{"proc.cmdline": "x" * 4000}))
    tree.shrink(600)
    assert tree.get(20) is not None or tree.get(109) is None  # a parent goes only after its children


@pytest.mark.parametrize("seed", range(6))
def test_a_tree_recovered_from_the_changelog_behaves_as_the_live_one(seed):
    """Random lives (forks on either side, threads, execs, exits with reapers, pid reuse, bounds):
    a tree written and read back at every batch end enriches and stores exactly as the live one."""
    rng = random.Random(seed)
    limits = TreeLimits(max_processes=10 if seed % 2 else 200, exited_ttl_ns=40 * S)
    live, recovered = ProcessTree(limits), ProcessTree(limits)
    for step in range(1, 1200):
        t = step * S // 2
        pid, other = rng.randrange(2, 25), rng.randrange(1, 25)
        kind = rng.random()
        if kind < 0.12:
            event = exe(pid, other, rng.choice(["sh", "java", "curl"]), t)
        elif kind < 0.2:
            event = caller_clone(pid, other, t, rng.choice(["SIGCHLD", "CLONE_THREAD|CLONE_VM", "CLONE_VFORK"]))
        elif kind < 0.27:
            event = child_clone(pid, other, t)
        elif kind < 0.34:
            event = procexit(pid, t, **({"evt.arg.reaper_tid": other} if rng.random() < 0.5 else {}))
        else:
            event = seen(pid, t, **{"proc.name": "y"})
            if rng.random() < 0.5:
                event["proc.ppid"] = other
        assert live.enrich(event) == recovered.enrich(event), (step, event)
        assert live.update(dict(event)) == recovered.update(dict(event)), (step, event)
        if step % 25 == 0:  # a batch ends: both expire, the recovered one is read back from its bytes
            live.expire()
            recovered.expire()
            live.forget_ancestry()
            recovered = ProcessTree.from_bytes(recovered.to_bytes(), limits)
            assert recovered.to_bytes() == live.to_bytes()
