"""Pid files are trusted only when the process's command line carries our markers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.stack.process import ServerProcess, is_ours, log_tail, markers_for, running_pid, stop

SLEEPER = "import time; time.sleep(30)"


@pytest.fixture
def server(tmp_path: Path) -> ServerProcess:
    return ServerProcess("kafka", tmp_path / "run" / "kafka.pid", markers_for("kafka", tmp_path))


def _spawn(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", SLEEPER, *args])


def test_process_with_our_markers_is_ours_and_is_found_by_pid_file(server: ServerProcess):
    child = _spawn(*server.markers)
    try:
        server.pid_file.parent.mkdir(parents=True)
        server.pid_file.write_text(f"{child.pid}\n")
        assert is_ours(child.pid, server.markers)
        assert running_pid(server) == child.pid
    finally:
        child.kill()
        child.wait()


def test_pid_file_pointing_at_a_stranger_is_dropped_and_the_stranger_left_alone(server: ServerProcess):
    stranger = _spawn("-Dperegrine.stack=kafka", "-Dperegrine.home=/somewhere/else")
    try:
        server.pid_file.parent.mkdir(parents=True)
        server.pid_file.write_text(f"{stranger.pid}\n")
        assert running_pid(server) is None
        assert not server.pid_file.exists()
        assert stop(server, stranger.pid, timeout_s=1) == "not ours"
        assert stranger.poll() is None  # still running
    finally:
        stranger.kill()
        stranger.wait()


def test_stale_pid_file_of_a_dead_process_is_dropped(server: ServerProcess):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    server.pid_file.parent.mkdir(parents=True)
    server.pid_file.write_text(f"{gone.pid}\n")
    assert running_pid(server) is None
    assert not server.pid_file.exists()


def test_garbage_pid_file_means_not_running(server: ServerProcess):
    server.pid_file.parent.mkdir(parents=True)
    server.pid_file.write_text("not a pid")
    assert running_pid(server) is None


def test_stop_terminates_our_process_and_removes_its_pid_file(server: ServerProcess):
    child = _spawn(*server.markers)
    server.pid_file.parent.mkdir(parents=True)
    server.pid_file.write_text(f"{child.pid}\n")
    assert stop(server, child.pid, timeout_s=5) == "stopped"
    child.wait(timeout=5)  # already reaped by stop(): returns at once
    assert not server.pid_file.exists()
    assert not is_ours(child.pid, server.markers)


def test_our_own_process_is_not_ours(server: ServerProcess):
    assert not is_ours(os.getpid(), server.markers)


def test_log_tail_shows_the_last_lines_indented(tmp_path: Path):
    log = tmp_path / "server.log"
    log.write_text("".join(f"line {i}\n" for i in range(100)))
    assert log_tail(log, lines=3) == "    line 97\n    line 98\n    line 99"
    assert log_tail(tmp_path / "absent.log") == "    (no log)"
