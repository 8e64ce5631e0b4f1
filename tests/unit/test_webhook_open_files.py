"""The webhook raises its soft open-files limit to the hard one at start-up: every slow client
holds a descriptor until the read timeout, and a shell's soft default (1024) ran out long
before the hard limit."""

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
