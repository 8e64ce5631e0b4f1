"""Operators and literals checked against the field's type at load, as Falco (libsinsp) does:
what it refuses is a located load error naming the field, its type and the operator; what it
accepts loads and means what Falco means. Uses the real syscall registry."""

from __future__ import annotations

import pytest

from pipeline.cli.main import main
from pipeline.errors import RuleErrors
from pipeline.fields import registry_for
from pipeline.fields.registry import FieldType
from pipeline.rules import operators
from pipeline.rules.loader import load_rules_text
from pipeline.rules.parser import parse_condition
from pipeline.rules.reference import ReferenceEvaluator
from pipeline.rules.compiler import compile_condition

PREFIX = "evt.type = open and "


def rule(condition: str) -> str:
    return f"- rule: R\n  desc: d\n  condition: {PREFIX}{condition}\n  output: o\n  priority: INFO\n"


def load_error(condition: str):
    with pytest.raises(RuleErrors) as caught:
        load_rules_text(rule(condition), "types.yaml", collect_errors=True)
    errors = caught.value.errors
    assert len(errors) == 1, [str(e) for e in errors]
    return errors[0]


def column_of(condition: str, part: str) -> int:
    """The file column of ``part`` in the rule's condition line (``  condition: ...``)."""
    return len("  condition: ") + len(PREFIX) + condition.index(part) + 1


TEXT_OPERATORS = ["contains", "icontains", "startswith", "endswith", "glob", "iglob", "regex", "bcontains", "bstartswith"]


@pytest.mark.parametrize("field", ["proc.pid", "evt.rawres", "fd.sport", "evt.count", "proc.duration", "len(proc.name)"])
@pytest.mark.parametrize("op", TEXT_OPERATORS)
def test_text_operators_on_a_number_are_refused(field: str, op: str) -> None:
    condition = f"{field} {op} 31"
    error = load_error(condition)
    assert f"operator '{op}' does not apply to {field}" in error.message
    assert "number" in error.message or "time" in error.message or "duration" in error.message
    assert (error.location.path, error.location.line, error.location.col) == ("types.yaml", 3, column_of(condition, field))


def test_pmatch_on_a_number_is_refused() -> None:
    error = load_error("proc.pid pmatch (/1)")
    assert "operator 'pmatch' does not apply to proc.pid, a number field (type int)" in error.message


@pytest.mark.parametrize(
    ("condition", "kind"),
    [
        ("proc.is_exe_writable > true", "a boolean field (type bool)"),
        ("proc.is_exe_writable contains t", "a boolean field (type bool)"),
        ("fd.sip < 10.0.0.1", "an IP address field (type ipaddr)"),
        ("fd.sip startswith 10.", "an IP address field (type ipaddr)"),
        ("fd.snet contains 10", "an IP network field (type ipnet)"),
        ("evt.buffer glob a*", "a byte buffer field (type bytes)"),
        ("evt.buffer icontains a", "a byte buffer field (type bytes)"),
        ("evt.buffer regex a", "a byte buffer field (type bytes)"),
        ("evt.buffer > a", "a byte buffer field (type bytes)"),
        ("proc.name bcontains 41", "text field (type string)"),
        ("proc.name bstartswith 41", "text field (type string)"),
        ("fd.types contains ipv4", "a list field (type string, list)"),
        ("fd.types = ipv4", "a list field (type string, list)"),
    ],
)
def test_operators_a_type_does_not_take_are_refused(condition: str, kind: str) -> None:
    op = condition.split()[1]
    error = load_error(condition)
    assert f"operator '{op}' does not apply to {condition.split()[0]}, {kind}" in error.message
    assert error.location.col == column_of(condition, condition.split()[0])


@pytest.mark.parametrize(
    ("condition", "culprit", "message"),
    [
        ("proc.pid = abc", "abc", "'abc' is not a number: compared with proc.pid (type int) by '='"),
        ("evt.rawres in (0, x)", "x)", "'x' is not a number: compared with evt.rawres (type int) by 'in'"),
        ("fd.sport = no-such-service", "no-such", "'no-such-service' is not a port number nor a service name"),
        ("fd.port in (80, -1)", "-1", "'-1' is not a port number"),
        ("fd.sip = 10.0.0.0/8", "10.0.0.0/8", "'10.0.0.0/8' is not an IP address"),
        ("fd.snet = 10.0.0.1", "10.0.0.1", "'10.0.0.1' is not an IP network"),
        ("proc.is_exe_writable = yes", "yes", "'yes' is not a boolean"),
    ],
)
def test_literals_that_do_not_fit_the_field_are_refused(condition: str, culprit: str, message: str) -> None:
    error = load_error(condition)
    assert message in error.message
    assert error.location.col == column_of(condition, culprit)


@pytest.mark.parametrize("pattern", [r"\\d+", "(?i)abc", "(?:ab)c", r"\\bfoo", r"\\w+", "(?P<n>a)"])
def test_regexes_outside_re2_posix_syntax_are_refused(pattern: str) -> None:
    # Falco compiles `regex` with RE2::POSIX: no Perl classes, word boundaries, flags or (?:...)
    error = load_error(f'proc.name regex "{pattern}"')
    assert "invalid regular expression" in error.message and "POSIX" in error.message


def test_a_network_field_cannot_be_compared_with_another_field() -> None:
    error = load_error("fd.snet = val(fd.cnet)")
    assert "fd.snet is an IP network field" in error.message


@pytest.mark.parametrize(
    "condition",
    [
        # = != in intersects exists on every type
        *(f"{field} {op}" for field in ("proc.pid", "fd.sport", "proc.duration", "proc.is_exe_writable", "fd.sip", "proc.name", "evt.buffer")
          for op in ("exists",)),
        "proc.pid = 1", "proc.pid != 1", "proc.pid in (1, 2)", "proc.pid intersects (1, 2)", "proc.pid < 1", "proc.pid >= 0x10",
        "evt.rawres < 0", "evt.rawres >= 0", "len(proc.name) > 3", "proc.apid > 3",
        "fd.sport = 443", "fd.sport in (80, 443)", "fd.sport >= 30000",
        "proc.is_exe_writable = true", "proc.is_exe_writable != false", "proc.is_exe_writable in (true)",
        "fd.sip = 169.254.169.254", "fd.sip != ::1", "fd.sip in (10.0.0.1, fe80::1)", "fd.ip intersects (10.0.0.1)",
        "fd.snet in (10.0.0.0/8, fe80::/10)", "fd.net != 127.0.0.0/8", "fd.cnet = 10.0.0.1/32",
        "proc.name > abc", "proc.name <= abc", "proc.name icontains BASH", "proc.name iglob BA*", "proc.name regex '[[:digit:]]+'",
        "proc.name regex 'a.*b'", "fd.name pmatch (/etc)", "proc.aname contains sh", "tolower(proc.name) glob a*",
        "evt.buffer = abc", "evt.buffer != abc", "evt.buffer contains abc", "evt.buffer startswith ab", "evt.buffer endswith bc",
        "evt.buffer bcontains 4142", "evt.buffer bstartswith 41", "evt.buffer in (abc)",
        "fd.types intersects (ipv4)", "fd.types in (ipv4, file)",
        "proc.name = val(proc.pname)", "proc.pid = val(proc.ppid)",
    ],
)
def test_what_falco_accepts_loads(condition: str) -> None:
    ruleset = load_rules_text(rule(condition), "types.yaml", collect_errors=True)
    assert [r.name for r in ruleset.rules] == ["R"]


def test_a_port_may_be_a_service_name(monkeypatch) -> None:
    services = {"http": 80, "https": 443}

    def getservbyname(name: str, proto: str | None = None) -> int:
        if name not in services:
            raise OSError("service/proto not found")
        return services[name]

    monkeypatch.setattr(operators.socket, "getservbyname", getservbyname)
    node = parse_condition("fd.sport in (http, 8443) and fd.cport != https")
    registry = registry_for("syscall")
    compiled = compile_condition(node, {}, registry)
    reference = ReferenceEvaluator(registry, {})
    for event, expected in [
        ({"fd.sport": 80, "fd.cport": 5000}, True),
        ({"fd.sport": 8443, "fd.cport": 5000}, True),
        ({"fd.sport": 80, "fd.cport": 443}, False),
        ({"fd.sport": 81, "fd.cport": 5000}, False),
    ]:
        assert compiled(event) is expected and reference.evaluate(node, event) is expected, event
    assert "'ftp' is not a port number" in load_error("fd.sport = ftp").message


def test_contains_on_a_byte_buffer_reads_its_bytes() -> None:
    registry = registry_for("syscall")
    for text, expected in [("evt.buffer contains 'GET /'", True), ("evt.buffer endswith 'HTTP/1.1'", True),
                           ("evt.buffer startswith GET", True), ("evt.buffer = 'GET / HTTP/1.1'", True),
                           ("evt.buffer contains POST", False)]:
        node = parse_condition(text)
        event = {"evt.buffer": "GET / HTTP/1.1"}
        assert compile_condition(node, {}, registry)(event) is expected, text
        assert ReferenceEvaluator(registry, {}).evaluate(node, event) is expected, text


@pytest.mark.parametrize(
    ("field", "ftype"),
    [
        ("fd.port", FieldType.PORT), ("fd.cport", FieldType.PORT), ("fd.sport", FieldType.PORT),
        ("fd.lport", FieldType.PORT), ("fd.rport", FieldType.PORT),
        ("proc.pid", FieldType.INT), ("evt.rawres", FieldType.INT), ("fd.sip", FieldType.IPADDR),
        ("fd.ip", FieldType.IPADDR), ("fd.snet", FieldType.IPNET), ("fd.net", FieldType.IPNET),
        ("evt.res", FieldType.STRING), ("evt.buffer", FieldType.BYTES), ("proc.is_exe_writable", FieldType.BOOL),
    ],
)
def test_syscall_fields_have_falcos_types(field: str, ftype: FieldType) -> None:
    definition, _ = registry_for("syscall").resolve(field, None)
    assert definition.type is ftype


def test_rules_validate_reports_a_refused_operator_like_any_load_error(tmp_path, capsys) -> None:
    path = tmp_path / "numbers.yaml"
    path.write_text(rule("proc.pid contains 1"))
    assert main(["rules", "validate", str(path)]) == 1
    out = capsys.readouterr()
    text = out.out + out.err
    col = column_of("proc.pid contains 1", "proc.pid")
    assert f"{path}:3:{col}: operator 'contains' does not apply to proc.pid, a number field (type int)" in text
    assert "^" in text  # the line and a caret under the field
