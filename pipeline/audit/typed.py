"""Containers and pod specs as Polaris's schemas see them: resource quantities as strings.

Polaris decodes a container or a pod spec into Kubernetes's typed structs and
serialises it again before it validates it, so a quantity written as a YAML
number (``cpu: 1``, ``memory: 1073741824``, ``cpu: 0.5``) reaches the schema
as the string Kubernetes prints for it (``"1"``, ``"1073741824"``,
``"500m"``). A check written for Polaris (``type: string`` with
``resourceMinimum``, as in Polaris's own example config) must judge such a
manifest as Polaris does. Only numbers change; quantities written as strings,
and everything else, are passed as written. The object is never modified:
changed parts are copies.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, Decimal
from typing import Any

#: Kubernetes's decimal SI suffixes by power of ten (its canonical form for a plain number).
_SUFFIXES = {-9: "n", -6: "u", -3: "m", 0: "", 3: "k", 6: "M", 9: "G", 12: "T", 15: "P", 18: "E"}
#: Places in a pod spec that hold a name → quantity mapping.
_POD_QUANTITY_MAPS = (("overhead",), ("resources", "limits"), ("resources", "requests"))
_CONTAINER_LISTS = ("containers", "initContainers", "ephemeralContainers")


def quantity_text(number: int | float) -> str:
    """The canonical text Kubernetes gives a quantity read from a number: trailing
    zeros moved into an SI suffix whose exponent is a multiple of 3 (``2000`` → ``2k``,
    ``1500`` → ``1500``, ``0.5`` → ``500m``); finer than a nano rounds up to one."""
    value = Decimal(str(number))
    if not value.is_finite():
        return str(number)
    if value == 0:
        return "0"
    nanos = value.scaleb(9).to_integral_value(rounding=ROUND_CEILING)
    mantissa, exponent = int(nanos), -9
    if mantissa == 0:
        return "0"
    while mantissa % 10 == 0:
        mantissa //= 10
        exponent += 1
    extra = exponent % 3
    mantissa, exponent = mantissa * 10 ** extra, exponent - extra
    if exponent > 18:
        mantissa, exponent = mantissa * 10 ** (exponent - 18), 18
    return f"{mantissa}{_SUFFIXES[exponent]}"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _with_text_quantities(mapping: Any) -> Any:
    if not isinstance(mapping, dict) or not any(_is_number(v) for v in mapping.values()):
        return mapping
    return {k: quantity_text(v) if _is_number(v) else v for k, v in mapping.items()}


def _replace_at(obj: dict, path: tuple[str, ...]) -> dict:
    """``obj`` with the quantity mapping at ``path`` in text form (copies on the way down)."""
    head, rest = path[0], path[1:]
    child = obj.get(head)
    new_child = _with_text_quantities(child) if not rest else (_replace_at(child, rest) if isinstance(child, dict) else child)
    if new_child is child:
        return obj
    copied = dict(obj)
    copied[head] = new_child
    return copied


def typed_container(container: Any) -> Any:
    """The container with its resources' numeric quantities as text."""
    if not isinstance(container, dict):
        return container
    for path in (("resources", "limits"), ("resources", "requests")):
        container = _replace_at(container, path)
    return container


def typed_pod_spec(spec: Any) -> Any:
    """The pod spec with every container's, the pod's resources' and overhead's numeric quantities as text."""
    if not isinstance(spec, dict):
        return spec
    for path in _POD_QUANTITY_MAPS:
        spec = _replace_at(spec, path)
    for key in _CONTAINER_LISTS:
        items = spec.get(key)
        if isinstance(items, list):
            typed = [typed_container(c) for c in items]
            if any(a is not b for a, b in zip(typed, items)):
                spec = dict(spec)
                spec[key] = typed
    return spec
