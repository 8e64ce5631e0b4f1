"""Polaris's JSON Schema extensions, as custom keywords on a Draft 2019-09 validator.

Polaris evaluates its checks with a Go JSON Schema library plus a few keywords
of its own; the ones its checks use are:

* ``resourceMinimum`` / ``resourceMaximum``: a Kubernetes quantity (``100m``,
  ``1Gi``, ``0.5``) compared by value, not as text.
* Go (RE2) regular expressions, where an inline flag such as ``(?i)`` may sit
  anywhere in a pattern (``^(?i)ALL$``). Python only allows global flags at the
  start, so ``pattern`` is redefined to hoist them.

Everything else is the standard keyword set of the maintained ``jsonschema``
library, so a check's schema means what the specification says.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any

from jsonschema import Draft201909Validator, ValidationError, validators

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": Decimal(1),
            "k": Decimal("1e3"), "M": Decimal("1e6"), "G": Decimal("1e9"), "T": Decimal("1e12"),
            "P": Decimal("1e15"), "E": Decimal("1e18")}
_QUANTITY = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+))(?:(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE])|([eE][+-]?\d+))?$")


def parse_quantity(value: Any) -> Decimal:
    """The value of a Kubernetes resource quantity; ValueError when it is not one (also a
    NaN, an infinity, or a number past what a Decimal holds: ``1e9999999``)."""
    try:
        quantity = _parse_quantity(value)
    except ArithmeticError:  # decimal.Overflow, InvalidOperation
        raise ValueError(f"not a quantity (out of range): {str(value)[:64]!r}") from None
    if not quantity.is_finite():
        raise ValueError(f"not a quantity: {value!r}")
    return quantity


def _parse_quantity(value: Any) -> Decimal:
    if isinstance(value, bool):
        raise ValueError(f"not a quantity: {value!r}")
    if isinstance(value, (int, float)):
        return Decimal(str(value))
    if not isinstance(value, str):
        raise ValueError(f"not a quantity: {value!r}")
    match = _QUANTITY.match(value.strip())
    if not match:
        raise ValueError(f"not a quantity: {value!r}")
    number, suffix, exponent = match.groups()
    try:
        base = Decimal(number)
    except InvalidOperation as error:  # pragma: no cover - the regex admits only numbers
        raise ValueError(f"not a quantity: {value!r}") from error
    if exponent:
        return base * Decimal(10) ** int(exponent[1:])
    suffix = suffix or ""
    return base * (_BINARY[suffix] if suffix in _BINARY else _DECIMAL[suffix])


def _resource_bound(is_minimum: bool):
    def check(validator, bound, instance, schema):
        if not isinstance(instance, (str, int, float)) or isinstance(instance, bool):
            return
        try:
            limit = parse_quantity(bound)
        except ValueError:
            yield ValidationError(f"{'resourceMinimum' if is_minimum else 'resourceMaximum'} {bound!r} is not a quantity")
            return
        try:
            actual = parse_quantity(instance)
        except ValueError:
            yield ValidationError(f"{instance!r} is not a Kubernetes quantity")
            return
        if is_minimum and actual < limit:
            yield ValidationError(f"{instance!r} is less than the minimum {bound!r}")
        if not is_minimum and actual > limit:
            yield ValidationError(f"{instance!r} is more than the maximum {bound!r}")

    return check


_INLINE_FLAGS = re.compile(r"\(\?([imsU]+)\)")


@lru_cache(maxsize=1024)
def go_regex(pattern: str) -> re.Pattern[str]:
    """Compile a Go (RE2) pattern: inline flag groups anywhere apply to the whole pattern."""
    flags = 0
    for group in _INLINE_FLAGS.findall(pattern):
        flags |= re.IGNORECASE if "i" in group else 0
        flags |= re.MULTILINE if "m" in group else 0
        flags |= re.DOTALL if "s" in group else 0
    return re.compile(_INLINE_FLAGS.sub("", pattern), flags)


def _pattern(validator, pattern, instance, schema):
    if not validator.is_type(instance, "string"):
        return
    try:
        compiled = go_regex(pattern)
    except re.error as error:
        yield ValidationError(f"pattern {pattern!r} does not compile: {error}")
        return
    if not compiled.search(instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


_META_EXTENSION = {"resourceMinimum", "resourceMaximum"}

PolarisValidator = validators.extend(
    Draft201909Validator,
    {"resourceMinimum": _resource_bound(True), "resourceMaximum": _resource_bound(False), "pattern": _pattern},
)


_META_VALIDATOR = Draft201909Validator(Draft201909Validator.META_SCHEMA)


def schema_problem(schema: Any) -> str | None:
    """Why ``schema`` is not a usable check schema, or None.

    The meta-schema check is the library's; on top of it every pattern must
    compile (as Go would read it) and every resource bound must be a quantity.
    """
    from jsonschema.exceptions import best_match

    # The meta-schema without its "regex" format check: that one is Python's
    # regex dialect, and patterns here are read as Go's (below).
    error = best_match(_META_VALIDATOR.iter_errors(schema))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(root)"
        return f"invalid JSON Schema at {where}: {error.message}"
    for path, key, value in _walk(schema, ()):
        if key == "pattern" and isinstance(value, str):
            try:
                go_regex(value)
            except re.error as error:
                return f"pattern {value!r} at {'/'.join(path) or '(root)'} does not compile: {error}"
        if key in _META_EXTENSION:
            try:
                parse_quantity(value)
            except ValueError:
                return f"{key} {value!r} at {'/'.join(path) or '(root)'} is not a Kubernetes quantity"
    return None


def _walk(node: Any, path: tuple[str, ...]):
    if isinstance(node, dict):
        for key, value in node.items():
            yield path, key, value
            yield from _walk(value, (*path, str(key)))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _walk(value, (*path, str(index)))
