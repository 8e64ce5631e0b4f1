"""Every field Falco's upstream rule files use binds in our registry for its source."""

from __future__ import annotations

import pytest
import yaml

from pipeline.fields import registry_for
from pipeline.fields.registry import UnknownField
from pipeline.rules.parser import parse_condition
from pipeline.rules.resolve import field_refs, output_fields

FILES = {
    "falco_rules.yaml": "syscall",
    "falco-incubating_rules.yaml": "syscall",
    "falco-sandbox_rules.yaml": "syscall",
    "k8s_audit_rules.yaml": "k8s_audit",
    "aws_cloudtrail_rules.yaml": "aws_cloudtrail",
}
# Upstream typos Falco itself cannot resolve either: `%user.log` (meant user.loginuid).
KNOWN_UPSTREAM_TYPOS = {("syscall", "user.log", None)}


def _references(path, source):
    for item in yaml.safe_load(path.read_text()) or []:
        if not isinstance(item, dict):
            continue
        item_source = item.get("source", source)
        condition = item.get("condition")
        if isinstance(condition, str) and ("rule" in item or "macro" in item):
            for ref in field_refs(parse_condition(condition)):
                yield item_source, ref.name, ref.arg
        if isinstance(item.get("output"), str):
            for _, name, arg in output_fields(item["output"]):
                yield item_source, name, arg
        for exception in item.get("exceptions") or []:
            fields = exception.get("fields")
            for name in [fields] if isinstance(fields, str) else fields or []:
                yield item_source, name, None


@pytest.mark.parametrize("filename", sorted(FILES))
def test_every_upstream_field_binds(upstream_rules_dir, filename):
    source = FILES[filename]
    seen = set(_references(upstream_rules_dir / filename, source))
    assert seen, "no field references found: the extraction is broken"
    unbound = []
    for item_source, name, arg in sorted(seen, key=str):
        if (item_source, name, arg) in KNOWN_UPSTREAM_TYPOS:
            continue
        try:
            registry_for(item_source).bind(name, arg)
        except UnknownField as error:
            unbound.append(f"{item_source}:{name}[{arg}]: {error}")
    assert unbound == []


def test_known_typo_is_really_unknown():
    with pytest.raises(UnknownField):
        registry_for("syscall").bind("user.log")
