"""container.mount* extraction against libsinsp, and the upstream sandbox rule built on it.

libsinsp's ``sinsp_filter_check_container::extract`` (userspace/libsinsp/sinsp_filtercheck_container.cpp)
returns NULL for ``container.mount[...]`` and ``container.mount.{source,dest,mode,rdwr,propagation}[...]``
when the event is on the host, the container is unknown, ``mount_by_idx`` is past the last mount or
``mount_by_source``/``mount_by_dest`` match nothing; rdwr is printed ``true``/``false``. The container
plugin (plugins/container/src/caps/extract/extract.cpp) sets no value in the same cases. A NULL
extraction makes ``sinsp_filter_check::compare_nocache`` false, so ``not <field> in (...)`` is true.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.engine import Engine
from pipeline.fields import registry_for
from pipeline.fields.registry import MISSING
from pipeline.rules.loader import load_rules
from pipeline.rules.reference import ReferenceEvaluator

MOUNTS = "/proc:/host/proc:ro:false:rprivate,/var/lib/app:/data::true:rslave"
RULE = "Launch Sensitive Mount Container"


def extract(name: str, arg: str | None, event: dict) -> object:
    return registry_for("syscall").bind(name, arg).extract(event)


@pytest.mark.parametrize(
    ("name", "arg", "expected"),
    [
        ("container.mount", "0", "/proc:/host/proc:ro:false:rprivate"),
        ("container.mount", "1", "/var/lib/app:/data::true:rslave"),
        ("container.mount", "2", MISSING),  # mount_by_idx past the end: NULL
        ("container.mount", "/var/lib/*", "/var/lib/app:/data::true:rslave"),  # by source, a glob
        ("container.mount", "/data", MISSING),  # container.mount matches the source, not the dest
        ("container.mount.dest", "/proc*", "/host/proc"),
        ("container.mount.dest", "/root*", MISSING),
        ("container.mount.dest", "5", MISSING),
        ("container.mount.source", "/data", "/var/lib/app"),  # source is looked up by dest
        ("container.mount.source", "/proc", MISSING),
        ("container.mount.source", "0", "/proc"),
        ("container.mount.mode", "/proc", "ro"),
        ("container.mount.mode", "/var/lib/app", ""),  # an empty mode is a value, not NULL
        ("container.mount.rdwr", "/proc", "false"),
        ("container.mount.rdwr", "1", "true"),
        ("container.mount.propagation", "/var/lib/*", "rslave"),
        ("container.mount.propagation", "/etc", MISSING),
    ],
)
def test_mount_fields_golden(name: str, arg: str, expected: object) -> None:
    assert extract(name, arg, {"container.id": "abc123", "container.mounts": MOUNTS}) == expected


@pytest.mark.parametrize("mounts", [None, "", []], ids=["absent", "empty-text", "empty-list"])
@pytest.mark.parametrize("name", ["container.mount", "container.mount.source", "container.mount.dest", "container.mount.mode", "container.mount.rdwr", "container.mount.propagation"])
def test_a_container_without_mounts_has_no_mount_values(mounts: object, name: str) -> None:
    event = {"container.id": "abc123"} if mounts is None else {"container.id": "abc123", "container.mounts": mounts}
    assert extract(name, "0", event) is MISSING
    assert extract(name, "/proc*", event) is MISSING


def test_mounts_given_as_objects_print_rdwr_as_libsinsp_does() -> None:
    event = {"container.mounts": [{"source": "/proc", "dest": "/host/proc", "mode": "ro", "rdwr": False, "propagation": "rprivate"}, {"source": "/srv", "dest": "/srv", "rdwr": True}]}
    assert extract("container.mount.rdwr", "/proc", event) == "false"
    assert extract("container.mount.rdwr", "1", event) == "true"
    assert extract("container.mount", "0", event) == "/proc:/host/proc:ro:false:rprivate"
    assert extract("container.mount", "1", event) == "/srv:/srv::true:"
    assert extract("container.mount.mode", "/srv", event) == ""


def test_a_value_sent_under_the_fields_own_key_wins_and_printed_na_is_no_value() -> None:
    event = {"container.mounts": MOUNTS, "container.mount.dest[/proc*]": "/elsewhere", "container.mount.dest[/etc]": "<NA>"}
    assert extract("container.mount.dest", "/proc*", event) == "/elsewhere"
    assert extract("container.mount.dest", "/etc", event) is MISSING  # what Falco prints for no value


def _sandbox(upstream_rules_dir: Path):
    ruleset = load_rules([upstream_rules_dir / "falco_rules.yaml", upstream_rules_dir / "falco-sandbox_rules.yaml"], registry_for=registry_for)
    engine = Engine.from_ruleset(ruleset, registry_for, rule_matching="all")
    reference = ReferenceEvaluator(registry_for("syscall"), dict(ruleset.macro_conditions))
    rule = next(r for r in ruleset.rules if r.name == RULE)

    def fired(event: dict) -> bool:
        compiled = RULE in [r.name for r in engine.evaluate(event, "syscall")]
        assert compiled == reference.evaluate(rule.condition, event)
        return compiled

    return fired


def _container_start(**extra: object) -> dict:
    return {"evt.type": "execve", "proc.vpid": 1, "proc.name": "nginx", "container.id": "abc123", "container.image.repository": "docker.io/library/nginx", **extra}


def test_sandbox_rule_fires_for_a_proc_mount(upstream_rules_dir: Path) -> None:
    fired = _sandbox(upstream_rules_dir)
    assert fired(_container_start(**{"container.mounts": "/proc:/host/proc:ro:false:rprivate"}))
    assert fired(_container_start(**{"container.mounts": "/var/run/docker.sock:/var/run/docker.sock::true:rprivate"}))
    assert not fired({**_container_start(), "container.id": "host", "container.mounts": "/proc:/host/proc:ro:false:rprivate"})
    assert not fired({**_container_start(**{"container.mounts": "/proc:/host/proc:ro:false:rprivate"}), "proc.vpid": 7})


def test_sandbox_rule_fires_without_a_sensitive_mount_as_in_libsinsp(upstream_rules_dir: Path) -> None:
    """Upstream wrote ``not container.mount.dest[/proc*] in ("<NA>","N/A")``, but libsinsp extracts
    nothing when no mount matches, the ``in`` is false and ``not`` true: the macro holds for every
    container, so Falco raises this (disabled-by-maturity, sandbox) rule on every container start.
    The older form ``container.mount.dest[/proc*] != "N/A"`` was false there. We keep Falco's result."""
    fired = _sandbox(upstream_rules_dir)
    assert fired(_container_start(**{"container.mounts": "/var/lib/app:/data::true:rprivate"}))
    assert fired(_container_start(**{"container.mounts": ""}))
    assert fired(_container_start())
    # Falco's printed "<NA>" under the macro's own keys is no value as well, not the text "<NA>".
    printed = {f"container.mount.dest[{p}]": "<NA>" for p in ("/proc*", "/var/run/docker.sock", "/var/run/crio/crio.sock", "/run/containerd/containerd.sock", "/var/lib/kubelet", "/var/lib/kubelet/pki", "/", "/home/admin", "/etc", "/etc/kubernetes", "/etc/kubernetes/manifests", "/root*")}
    assert fired(_container_start(**printed))
