"""A flat event schema compiled to one Python function: the worker's per-event check.

The event schemas (schemas/*-event.schema.json) are flat objects: required
keys, and for some keys a type, a length, a minimum, an enum or an anyOf of
those. For that subset this module writes a function ``check(event) -> bool``
of plain ``type(v) is str and len(v) >= 1`` tests, about 1 us an event.

It is a fast path, never the judge: True means the event fits; False means
"ask the reference validator" (jsonschema), which gives the reason or, for
a value this check is stricter about (an integer written as ``1.0``), lets
it through. Any keyword outside the subset makes :func:`compile_flat`
return None, and the caller uses the general validators.
"""

from __future__ import annotations

from typing import Any, Callable

_TYPES = {
    "string": "type({v}) is str",
    "integer": "type({v}) is int",  # bool is not int here; 1.0 goes to the reference validator
    "number": "(type({v}) is int or type({v}) is float)",
    "boolean": "type({v}) is bool",
    "null": "{v} is None",
    "array": "type({v}) is list",
    "object": "type({v}) is dict",
}
_ANNOTATIONS = frozenset({"description", "title", "$comment", "examples", "default"})
_TOP_ONLY = frozenset({"$schema", "$id"})


class Unsupported(Exception):
    pass


def _expr(schema: Any, v: str, consts: list, depth: int = 0) -> str:
    if schema is True or schema == {}:
        return "True"
    if not isinstance(schema, dict):
        raise Unsupported(f"schema {schema!r}")
    parts: list[str] = []
    kinds = schema.get("type")
    known: set[str] = set()  # the types ``v`` has once the type test passed (none known: any)
    if kinds is not None:
        kinds = [kinds] if isinstance(kinds, str) else kinds
        if not kinds or any(k not in _TYPES for k in kinds):
            raise Unsupported(f"type {kinds!r}")
        parts.append("(" + " or ".join(_TYPES[k].format(v=v) for k in kinds) + ")")
        known = set(kinds)
    is_str = known == {"string"}  # the test below then needs no type guard of its own
    is_num = bool(known) and known <= {"integer", "number"}
    for key, value in schema.items():
        if key in _ANNOTATIONS or key == "type":
            continue
        if key in ("minLength", "maxLength") and isinstance(value, int) and not isinstance(value, bool):
            op = ">=" if key == "minLength" else "<="
            parts.append(f"len({v}) {op} {value}" if is_str else f"(type({v}) is not str or len({v}) {op} {value})")
        elif key in ("minimum", "maximum") and type(value) in (int, float):
            op = ">=" if key == "minimum" else "<="
            parts.append(f"{v} {op} {value!r}" if is_num else f"(not (type({v}) is int or type({v}) is float) or {v} {op} {value!r})")
        elif key == "enum" and isinstance(value, list) and value and all(isinstance(x, str) for x in value):
            consts.append(frozenset(value))
            parts.append(f"{v} in _c{len(consts) - 1}" if is_str else f"(type({v}) is str and {v} in _c{len(consts) - 1})")
        elif key == "anyOf" and isinstance(value, list) and value:
            parts.append("(" + " or ".join(_expr(sub, v, consts, depth) for sub in value) + ")")
        elif key == "items" and isinstance(value, dict):
            item = f"_i{depth}"
            parts.append(f"(type({v}) is not list or all({_expr(value, item, consts, depth + 1)} for {item} in {v}))")
        else:
            raise Unsupported(f"keyword {key!r}")
    return "(" + " and ".join(parts) + ")" if parts else "True"


def compile_flat(schema: Any) -> Callable[[Any], bool] | None:
    """``check(event) -> bool`` for a flat object schema, or None when the schema
    uses anything outside the subset above."""
    try:
        if not isinstance(schema, dict) or schema.get("type") != "object":
            raise Unsupported("not an object schema")
        for key, value in schema.items():
            if key in _ANNOTATIONS or key in _TOP_ONLY or key in ("type", "required", "properties"):
                continue
            if key == "additionalProperties" and value is True:
                continue
            raise Unsupported(f"top-level keyword {key!r}")
        required = schema.get("required", [])
        properties = schema.get("properties", {})
        if not all(isinstance(k, str) for k in required) or not isinstance(properties, dict):
            raise Unsupported("required/properties")
        consts: list = []
        body = ["    if type(event) is not dict:", "        return False"]
        exprs = {key: _expr(sub, "v", consts) for key, sub in properties.items()}
        for key in required:  # a required key with a schema is tested once, below
            if exprs.get(key, "True") == "True":
                body += [f"    if {key!r} not in event:", "        return False"]
        if properties:
            body.append("    get = event.get")
        for key, expr in exprs.items():
            if expr == "True":
                continue
            absent = "v is _missing or" if key in required else "v is not _missing and"
            body += [f"    v = get({key!r}, _missing)", f"    if {absent} not {expr}:", "        return False"]
        body.append("    return True")
    except Unsupported:
        return None
    # the constants are the closure's cells (read faster than globals)
    names = ["_missing"] + [f"_c{i}" for i in range(len(consts))]
    lines = [f"def _make({', '.join(names)}):", "  def check(event):"] + ["  " + line for line in body] + ["  return check"]
    namespace: dict[str, Any] = {}
    exec(compile("\n".join(lines), "<peregrine-event-check>", "exec"), namespace)  # noqa: S102 - our own generated code
    return namespace["_make"](object(), *consts)
