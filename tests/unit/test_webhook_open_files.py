"""The webhook raises its soft open-files limit to the hard one at start-up: every slow client
holds a descriptor until the read timeout, and a shell's soft default (1024) ran out long
before the hard limit. The connection cap's default is that limit less a reserve."""

from __future__ import annotations

import resource
import subprocess
import sys


def test_the_soft_limit_is_raised_to_the_hard_one():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert hard == resource.RLIM_INFINITY or hard > 256, "needs a hard limit above 256 to show anything"

    def lowered() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))

    code = ("import resource; from pipeline.webhook.open_files import raise_open_files_limit; "
            "before = resource.getrlimit(resource.RLIMIT_NOFILE)[0]; now = raise_open_files_limit(); "
            "print(before, now, resource.getrlimit(resource.RLIMIT_NOFILE)[0])")
    out = subprocess.run([sys.executable, "-c", code], preexec_fn=lowered, capture_output=True, text=True, check=True)
    before, now, in_force = map(int, out.stdout.split())
    expected = hard if hard != resource.RLIM_INFINITY else 1 << 20
    assert (before, now, in_force) == (256, expected, expected)


def test_a_limit_already_at_the_hard_one_is_left_alone():
    from pipeline.webhook.open_files import raise_open_files_limit

    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    expected = hard if hard != resource.RLIM_INFINITY else 1 << 20
    assert raise_open_files_limit() == expected
    assert raise_open_files_limit() == expected  # a second call changes nothing
    assert resource.getrlimit(resource.RLIMIT_NOFILE) == (expected, hard)


def test_the_default_connection_cap_leaves_a_tenth_of_the_limit_and_at_least_64():
    from pipeline.webhook.open_files import default_max_connections, reserved_files

    assert [(n, reserved_files(n), default_max_connections(n)) for n in (1024, 256, 65536, 1 << 20)] == [
        (1024, 102, 922), (256, 64, 192), (65536, 6553, 58983), (1 << 20, 104857, 943719)]
    assert default_max_connections(64) == 1 and default_max_connections(10) == 1  # never 0: nothing would be served
