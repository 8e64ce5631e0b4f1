"""The network fields libsinsp computes and never prints (fd.ip, fd.net, fd.lport...), read
from the connection's ends: the fields' own keys, fd.cip/fd.sip/..., or fd.name."""

from __future__ import annotations

import pytest

from pipeline.engine import Engine
from pipeline.fields import registry_for
from pipeline.fields.registry import MISSING
from pipeline.fields.syscall_net import connection_ends
from pipeline.rules.loader import load_rules


def value(field: str, event: dict):
    return registry_for("syscall").bind(field).extract(event)


CONNECT = {"evt.type": "connect", "fd.name": "10.0.0.5:41000->203.0.113.9:443"}


def test_fd_name_gives_the_client_and_the_server_ends() -> None:
    assert connection_ends("10.0.0.5:41000->203.0.113.9:443") == ("10.0.0.5", "41000", "203.0.113.9", "443")
    assert connection_ends("::1:55310->fe80::1:80") == ("::1", "55310", "fe80::1", "80")
    assert connection_ends("[::1]:55310->[fe80::1]:80") == ("::1", "55310", "fe80::1", "80")
    for other in ("/etc/shadow", "0.0.0.0:80", "a->b", "10.0.0.5:x->1.2.3.4:80", None, 42, ["a"]):
        assert connection_ends(other) is None


def test_client_and_server_fields_fall_back_on_fd_name() -> None:
    assert value("fd.cip", CONNECT) == "10.0.0.5"
    assert value("fd.sip", CONNECT) == "203.0.113.9"
    assert value("fd.cport", CONNECT) == 41000
    assert value("fd.sport", CONNECT) == 443
    assert value("fd.snet", CONNECT) == "203.0.113.9"
    assert value("fd.cnet", CONNECT) == "10.0.0.5"
    # the field's own key first
    assert value("fd.sip", {**CONNECT, "fd.sip": "198.51.100.1"}) == "198.51.100.1"
    assert value("fd.sport", {**CONNECT, "fd.sport": "8443"}) == 8443
    assert value("fd.sip", {"fd.name": "/etc/passwd"}) is MISSING


def test_fd_ip_port_and_net_are_either_end() -> None:
    assert value("fd.ip", CONNECT) == ["10.0.0.5", "203.0.113.9"]
    assert value("fd.port", CONNECT) == [41000, 443]
    assert value("fd.net", {"fd.cip": "10.0.0.5", "fd.sip": "127.0.0.1"}) == ["10.0.0.5", "127.0.0.1"]
    assert value("fd.ip", {"fd.sip": "127.0.0.1"}) == ["127.0.0.1"]
    assert value("fd.ip", {"fd.ip": "192.0.2.7", **CONNECT}) == ["192.0.2.7"]
    assert value("fd.ip", {"evt.type": "open"}) is MISSING
    assert value("fd.proto", {"fd.sproto": "https"}) == ["https"]


@pytest.mark.parametrize(("event", "local", "remote"), [
    (CONNECT, ("10.0.0.5", 41000), ("203.0.113.9", 443)),  # a connect: the client's socket
    ({**CONNECT, "evt.type": "accept4"}, ("203.0.113.9", 443), ("10.0.0.5", 41000)),  # an accept: the server's
    ({**CONNECT, "evt.type": "sendto", "fd.is_server": True}, ("203.0.113.9", 443), ("10.0.0.5", 41000)),
    ({**CONNECT, "evt.type": "accept", "fd.is_server": "false"}, ("10.0.0.5", 41000), ("203.0.113.9", 443)),
])
def test_local_and_remote_ends_follow_the_socket_role(event, local, remote) -> None:
    assert (value("fd.lip", event), value("fd.lport", event)) == local
    assert (value("fd.rip", event), value("fd.rport", event)) == remote
    assert value("fd.lnet", event) == local[0]
    assert value("fd.rnet", event) == remote[0]


def test_local_and_remote_need_a_role_or_their_own_key() -> None:
    unknown = {**CONNECT, "evt.type": "sendto"}
    assert value("fd.lport", unknown) is MISSING
    assert value("fd.rip", unknown) is MISSING
    assert value("fd.lport", {**unknown, "fd.lport": "5353"}) == 5353
    assert value("fd.rip", {**unknown, "fd.rip": "192.0.2.1"}) == "192.0.2.1"


def _engine(text: str, tmp_path) -> Engine:
    path = tmp_path / "net.yaml"
    path.write_text(text)
    return Engine.from_ruleset(load_rules([path], registry_for=registry_for), registry_for, rule_matching="all")


def _fires(engine: Engine, event: dict) -> bool:
    return bool(engine.evaluate(event, "syscall"))


def _rule(condition: str) -> str:
    return f"- rule: r\n  desc: d\n  condition: {condition}\n  output: o\n  priority: WARNING\n"


def test_conditions_hold_when_one_end_does_as_libsinsp_compares_either(tmp_path) -> None:
    event = {"evt.type": "connect", "fd.cip": "10.0.0.5", "fd.sip": "127.0.0.1", "fd.cport": 41000, "fd.sport": 53}
    assert _fires(_engine(_rule('evt.type = connect and fd.net = "127.0.0.0/8"'), tmp_path), event)
    assert _fires(_engine(_rule('evt.type = connect and fd.net != "127.0.0.0/8"'), tmp_path), event)  # the client's
    assert not _fires(_engine(_rule('evt.type = connect and fd.snet != "127.0.0.0/8"'), tmp_path), event)
    assert _fires(_engine(_rule("evt.type = connect and fd.port in (53, 5353)"), tmp_path), event)
    assert not _fires(_engine(_rule("evt.type = connect and fd.port in (80)"), tmp_path), event)
    assert _fires(_engine(_rule("evt.type = connect and fd.rport = 53 and fd.lip = 10.0.0.5"), tmp_path), event)
    # val() of an either-end field compares its candidates, it does not fail to compile
    assert not _fires(_engine(_rule("evt.type = connect and fd.sport = val(fd.port) and fd.sport = 0"), tmp_path), event)


def test_upstream_outbound_rules_fire_on_events_with_only_client_and_server_fields(upstream_rules_dir) -> None:
    """Falco's ``outbound`` macro reads fd.ip, fd.net and fd.snet, which a Falco-shaped event
    never carries: without them, "Disallowed SSH Connection Non Standard Port" never fired."""
    ruleset = load_rules([upstream_rules_dir / "falco_rules.yaml"], registry_for=registry_for)
    engine = Engine.from_ruleset(ruleset, registry_for, rule_matching="all")
    rule = "Disallowed SSH Connection Non Standard Port"
    ssh = {"evt.type": "connect", "evt.dir": "<", "evt.rawres": 0, "fd.typechar": "4", "fd.l4proto": "tcp",
           "proc.exe": "/usr/bin/ssh", "proc.name": "ssh", "container.id": "3ad7b26ded6d"}
    by_fields = {**ssh, "fd.cip": "10.0.0.5", "fd.cport": 41000, "fd.sip": "203.0.113.9", "fd.sport": 443}
    by_name = {**ssh, "fd.name": "10.0.0.5:41000->203.0.113.9:443"}
    for event in (by_fields, by_name):
        assert rule in [r.name for r in engine.evaluate(event, "syscall")]
    private = {**ssh, "fd.name": "10.0.0.5:41000->192.168.1.20:443"}  # not outbound: an RFC 1918 server
    assert rule not in [r.name for r in engine.evaluate(private, "syscall")]
    standard = {**ssh, "fd.name": "10.0.0.5:41000->203.0.113.9:22"}  # the standard port
    assert rule not in [r.name for r in engine.evaluate(standard, "syscall")]
