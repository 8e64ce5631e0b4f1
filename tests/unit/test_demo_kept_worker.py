"""`peregrine demo` stops the worker an earlier `--keep-worker` left running (its pid in
demo-worker.pid), and nothing else: a pid that is now another program's stays alive."""

from __future__ import annotations

import subprocess
import sys

from pipeline.cli.demo import _stop_kept_worker

SLEEPER = "import sys, time; time.sleep(120)"


def start(*marker: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", SLEEPER, *marker])


def test_the_kept_worker_is_stopped_and_forgotten(tmp_path):
    worker = start("-A", "agents.detect:app", "worker")  # as `peregrine worker` runs Faust
    pidfile = tmp_path / "demo-worker.pid"
    pidfile.write_text(f"{worker.pid}\n")
    said: list[str] = []
    _stop_kept_worker(pidfile, said.append)
    assert worker.wait(timeout=10) is not None
    assert not pidfile.exists()
    assert said == [f"stopped the worker an earlier --keep-worker left running (pid {worker.pid})"]


def test_a_pid_that_is_now_another_program_s_is_left_alone(tmp_path):
    other = start()
    try:
        pidfile = tmp_path / "demo-worker.pid"
        pidfile.write_text(str(other.pid))
        said: list[str] = []
        _stop_kept_worker(pidfile, said.append)
        assert other.poll() is None and said == []
        assert not pidfile.exists()
    finally:
        other.kill()
        other.wait()


def test_no_file_a_gone_process_or_a_garbled_file_do_nothing(tmp_path):
    said: list[str] = []
    _stop_kept_worker(tmp_path / "absent.pid", said.append)
    gone = start()
    gone.kill()
    gone.wait()
    for text in (str(gone.pid), "not a pid", ""):
        pidfile = tmp_path / "demo-worker.pid"
        pidfile.write_text(text)
        _stop_kept_worker(pidfile, said.append)
        assert not pidfile.exists()
    assert said == []
