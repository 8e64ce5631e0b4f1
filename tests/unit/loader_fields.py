"""Tiny field registries for the rules-loader tests, independent of the real ones.

``registry_for(source)`` knows two sources: ``syscall`` and ``k8s_audit``;
any other source raises LookupError, as an unknown source should.
``load_texts(...)`` loads rules texts with them.
"""

from __future__ import annotations

import textwrap

from pipeline.fields.registry import ArgKind, BoundField, FieldDef, FieldRegistry, FieldType
from pipeline.rules.loader import RulesLoader
from pipeline.rules.model import RuleSet

SYSCALL = [
    FieldDef("evt.type", FieldType.STRING),
    FieldDef("evt.dir", FieldType.STRING),
    FieldDef("proc.name", FieldType.STRING),
    FieldDef("proc.pname", FieldType.STRING),
    FieldDef("proc.cmdline", FieldType.STRING),
    FieldDef("proc.pid", FieldType.INT),
    FieldDef("proc.aname", FieldType.STRING, arg=ArgKind.OPTIONAL_INDEX),
    FieldDef("fd.name", FieldType.STRING),
    FieldDef("fd.directory", FieldType.STRING),
    FieldDef("user.name", FieldType.STRING),
    FieldDef("container.id", FieldType.STRING),
    FieldDef("evt.arg", FieldType.STRING, arg=ArgKind.KEY_OR_INDEX),
]
K8S_AUDIT = [
    FieldDef("ka.verb", FieldType.STRING),
    FieldDef("ka.target.resource", FieldType.STRING),
    FieldDef("ka.user.name", FieldType.STRING),
    FieldDef("jevt.value", FieldType.STRING, arg=ArgKind.JSON_POINTER),
]


def _bind(definition: FieldDef, arg: str | None, key: str) -> BoundField:
    return BoundField(definition, arg, key, lambda event: event.get(key), flat_key=key)


_REGISTRIES = {
    "syscall": FieldRegistry("syscall", SYSCALL, _bind),
    "k8s_audit": FieldRegistry("k8s_audit", K8S_AUDIT, _bind),
}


def registry_for(source: str) -> FieldRegistry:
    try:
        return _REGISTRIES[source]
    except KeyError:
        raise LookupError(f"unknown source '{source}'") from None


def load_texts(*texts: str, file_name: str = "file{}.yaml", **options) -> RuleSet:
    """A RulesLoader (``options``; these registries unless given) fed each text, dedented, as
    ``file_name.format(number)`` in order, then loaded."""
    options.setdefault("registry_for", registry_for)
    loader = RulesLoader(**options)
    for number, text in enumerate(texts):
        loader.add_text(textwrap.dedent(text), file_name.format(number))
    return loader.load()
