"""The field registry contract shared by every event source.

A *source* (``syscall``, ``k8s_audit``, ``aws_cloudtrail``) declares its fields
once, with a type and an argument kind. The compiler asks the registry to
*bind* a field reference from a condition (``proc.aname[2]``, ``evt.arg.mode``,
``jevt.value[/stage]``) and gets back a :class:`BoundField`: a typed extractor
built once at load time and called at most once per event.

An extractor returns the field's value with Python types that follow the
declared :class:`FieldType` (``str``, ``int``, ``bool``; a ``list`` of them
for list-valued fields), or :data:`MISSING` when the event does not carry it.

Two kinds of list values differ in meaning. A *list-valued* field
(``ka.req.pod.volumes.hostpath``, ``fd.types``) is one value that is a list:
``in`` means every element is in the set. An *any-of* field (``any_of``: an
ancestor field used without an index, ``proc.aname``, ``proc.apid``) is a
list of candidates, one per ancestor, and a comparison holds when it holds
for one of them, whatever the operator (``proc.aname in (a, b)``: some
ancestor is a or b; ``proc.aname != bash``: some ancestor is not bash), as
libsinsp's ``compare_full_aname`` walks the parents.
Extractors never raise on odd events: a value of the wrong shape is MISSING.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any, Callable


class _Missing:
    """The value of a field an event does not have. Falsy, a singleton."""

    __slots__ = ()
    _instance: "_Missing | None" = None

    def __new__(cls) -> "_Missing":
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "MISSING"

    def __reduce__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


class FieldType(str, Enum):
    STRING = "string"
    INT = "int"  # signed or unsigned integers: pids, uids, sizes, counts
    PORT = "port"  # a TCP/UDP port (an int); a literal may also name a service (http)
    BOOL = "bool"
    IPADDR = "ipaddr"  # text form of an IPv4 or IPv6 address
    IPNET = "ipnet"  # text form of a network, e.g. 10.0.0.0/8
    ABSTIME = "abstime"  # nanoseconds since the epoch (int)
    RELTIME = "reltime"  # nanoseconds (int)
    BYTES = "bytes"  # a buffer; compared as bytes (bcontains, bstartswith)


class ArgKind(str, Enum):
    NONE = "none"  # proc.name
    OPTIONAL_INDEX = "optional_index"  # proc.aname / proc.aname[2]
    REQUIRED_INDEX = "required_index"  # evt.arg[0] (also accepts a key, see KEY_OR_INDEX)
    REQUIRED_KEY = "required_key"  # evt.arg.mode / evt.arg[mode], ka.req.pod.volumes.hostpath[/etc]
    KEY_OR_INDEX = "key_or_index"  # evt.arg[0] or evt.arg.mode / evt.arg[mode]
    JSON_POINTER = "json_pointer"  # jevt.value[/metadata/name]


@dataclass(frozen=True, slots=True)
class FieldDef:
    """A field a source offers."""

    name: str
    type: FieldType
    description: str = ""
    is_list: bool = False
    arg: ArgKind = ArgKind.NONE
    any_of: bool = False  # with is_list: candidates, a comparison holds when it holds for one


Extractor = Callable[[Any], Any]


@dataclass(frozen=True, slots=True)
class BoundField:
    """A field reference resolved against a registry: what to call on an event.

    ``key`` identifies the value for caching and output formatting (the field
    as Falco prints it, e.g. ``proc.aname[2]``). ``flat_key``, when not None,
    promises that ``extract(e)`` is exactly ``e.get(flat_key, MISSING)``
    (followed by no coercion), so a compiler may inline that lookup.
    ``native_key`` and ``native_class``, when set, promise that whenever
    ``e.get(native_key).__class__ is native_class`` (an ``int`` where Falco
    might also have printed the number as text) and the value is not
    ``native_except`` (Falco's ``<NA>`` for a text field), ``extract(e)``
    returns that value unchanged: a compiler may read it inline and call
    ``extract`` only for the other shapes.
    """

    definition: FieldDef
    arg: str | None
    key: str
    extract: Extractor
    flat_key: str | None = None
    native_key: str | None = None
    native_class: type | None = None
    native_except: Any = None

    @property
    def type(self) -> FieldType:
        return self.definition.type

    @property
    def is_list(self) -> bool:
        return self.definition.is_list

    @property
    def any_of(self) -> bool:
        """The value lists candidates (one per ancestor): compare each, match if one does."""
        return self.definition.any_of


class UnknownField(LookupError):
    """Raised by :meth:`FieldRegistry.bind` for a field the source does not have.

    The rules loader turns it into a RuleLoadError with the file position, or
    skips the rule when it has ``skip-if-unknown-filter: true``.
    """


class FieldRegistry:
    """The fields of one source. Subclassed or filled by each source module."""

    source: str

    def __init__(self, source: str, fields: list[FieldDef], binder: "Callable[[FieldDef, str | None, str], BoundField]") -> None:
        self.source = source
        self._fields = {f.name: f for f in fields}
        self._binder = binder

    def __contains__(self, name: str) -> bool:
        return name in self._fields

    def definitions(self) -> list[FieldDef]:
        return list(self._fields.values())

    def resolve(self, name: str, arg: str | None) -> tuple[FieldDef, str | None]:
        """Split ``evt.arg.mode`` into (``evt.arg``, ``mode``) when the field takes a key,
        and check the argument against the field's ArgKind. Raises UnknownField."""
        definition = self._fields.get(name)
        if definition is not None:
            if arg is None and definition.arg in (ArgKind.REQUIRED_INDEX, ArgKind.REQUIRED_KEY, ArgKind.KEY_OR_INDEX, ArgKind.JSON_POINTER):
                raise UnknownField(f"field '{name}' needs an argument, e.g. {name}[...]")
            if arg is not None and definition.arg is ArgKind.NONE:
                raise UnknownField(f"field '{name}' takes no argument, got '{name}[{arg}]'")
            if arg is not None and definition.arg in (ArgKind.OPTIONAL_INDEX, ArgKind.REQUIRED_INDEX) and not arg.lstrip("-").isdigit():
                raise UnknownField(f"field '{name}' takes a numeric index, got '[{arg}]'")
            return definition, arg
        # dotted key form: evt.arg.mode -> evt.arg[mode]
        if arg is None:
            head, sep, tail = name.rpartition(".")
            while sep:
                parent = self._fields.get(head)
                if parent is not None and parent.arg in (ArgKind.REQUIRED_KEY, ArgKind.KEY_OR_INDEX):
                    return parent, name[len(head) + 1 :]
                head, sep, _ = head.rpartition(".")
        raise UnknownField(f"unknown field '{name}' for source '{self.source}'")

    def bind(self, name: str, arg: str | None = None) -> BoundField:
        definition, resolved_arg = self.resolve(name, arg)
        key = definition.name if resolved_arg is None else f"{definition.name}[{resolved_arg}]"
        return self._binder(definition, resolved_arg, key)
