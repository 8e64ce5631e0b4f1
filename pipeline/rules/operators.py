"""What Falco's operators and transformers mean, for the compiler's generated code.

Two kinds of helpers live here:

* load-time: :func:`typed_literal` turns a literal's text into a value of the
  field's type (``-1`` -> -1 for an INT field, ``10.0.0.0/8`` -> a network
  for an IPNET field, ``http`` -> 80 for a PORT field) and raises
  :class:`LiteralTypeError` when it cannot, so the
  loader can point at the literal; :func:`glob_matcher`, :func:`path_prefixes`,
  :func:`regex_matcher` precompile the matchers.
* run-time: small functions the generated code calls for the rare operators
  (transformers, list-field variants, IP matching, ``val()``). The frequent
  cases (``=``, ``in``, ``startswith``...) are inlined by the compiler.

A value of ``None`` means "the event does not have it" in generated code,
like :data:`pipeline.fields.registry.MISSING`; every helper accepts both and
answers "no match" for a value of an unexpected type instead of raising.
"""

from __future__ import annotations

import base64
import binascii
import functools
import ipaddress
import socket
from typing import Any, Callable, Iterable

import re2

from pipeline.fields.registry import MISSING, FieldType
from pipeline.rules.glob import compiled as compiled_glob
from pipeline.rules.glob import glob_match

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
NUMERIC_TYPES = frozenset({FieldType.INT, FieldType.PORT, FieldType.ABSTIME, FieldType.RELTIME})
IP_TYPES = frozenset({FieldType.IPADDR, FieldType.IPNET})
# Operators that compare text (on text fields; pipeline/rules/comparable.py refuses them elsewhere).
TEXT_OPERATORS = frozenset({"contains", "icontains", "startswith", "endswith", "glob", "iglob", "regex", "pmatch"})
BYTE_OPERATORS = frozenset({"bcontains", "bstartswith"})
# Text operators a byte buffer also takes, on its bytes (the literal's UTF-8 bytes).
BYTES_TEXT_OPERATORS = frozenset({"contains", "startswith", "endswith"})


class LiteralTypeError(ValueError):
    """A literal that does not fit the field it is compared with (``proc.pid = abc``)."""


# ---------------------------------------------------------------- load time


def parse_int(text: str) -> int:
    """Falco's numbers: decimal with an optional sign, or 0x-prefixed hex."""
    stripped = text.strip()
    try:
        if stripped.lower().startswith(("0x", "-0x", "+0x")):
            return int(stripped, 16)
        return int(stripped, 10)
    except ValueError:
        raise LiteralTypeError(f"'{text}' is not a number") from None


def parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered == "true":
        return True
    if lowered == "false":
        return False
    raise LiteralTypeError(f"'{text}' is not a boolean (true or false)")


def parse_port(text: str) -> int:
    """A port field's literal, as libsinsp reads it: digits, or a service name that
    getservbyname(3) knows (``http`` is 80, from /etc/services)."""
    if text.isascii() and text.isdigit():
        number = int(text)
        if number > 0x7FFFFFFF:  # libsinsp's stoi refuses it
            raise LiteralTypeError(f"'{text}' is not a port number (too large)")
        return number & 0xFFFF  # libsinsp keeps the low 16 bits
    if text == "":
        return 0
    try:
        return socket.getservbyname(text)
    except OSError:
        raise LiteralTypeError(
            f"'{text}' is not a port number nor a service name this host knows (/etc/services)"
        ) from None


def parse_address(text: str) -> IPNetwork:
    """An IP address field's literal: one address (``10.0.0.1``, ``::1``), as a /32 or /128.
    libsinsp refuses a network there (``10.0.0.0/8``): compare a network field (``fd.snet``)."""
    try:
        return ipaddress.ip_network(ipaddress.ip_address(text.strip()))
    except ValueError:
        hint = " (a network such as 10.0.0.0/8 needs a network field: fd.net, fd.snet...)" if "/" in text else ""
        raise LiteralTypeError(f"'{text}' is not an IP address{hint}") from None


def parse_cidr(text: str) -> IPNetwork:
    """An IP network field's literal: a network with its prefix length (``10.0.0.0/8``,
    ``10.0.0.1/32``); libsinsp refuses a bare address there."""
    if "/" not in text:
        raise LiteralTypeError(f"'{text}' is not an IP network (write it with a prefix length: {text.strip()}/32)")
    return parse_network(text)


def parse_network(text: str) -> IPNetwork:
    """An address (``10.0.0.1``, a /32 or /128) or a network (``10.0.0.0/8``)."""
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        raise LiteralTypeError(f"'{text}' is not an IP address or network") from None


def parse_hex_bytes(text: str) -> bytes:
    """``bcontains``/``bstartswith`` take a hex string: ``cafebabe`` -> b'\\xca\\xfe\\xba\\xbe'."""
    try:
        return bytes.fromhex(text.strip())
    except ValueError:
        raise LiteralTypeError(f"'{text}' is not a hex byte string (e.g. cafebabe)") from None


def typed_literal(text: str, ftype: FieldType, op: str) -> Any:
    """The literal as a value comparable with the field's values under ``op``."""
    if op in BYTE_OPERATORS:
        return parse_hex_bytes(text)
    if ftype is FieldType.BYTES:
        return text.encode("utf-8", errors="surrogateescape")
    if op in TEXT_OPERATORS:
        return text
    if ftype is FieldType.PORT:
        return parse_port(text)
    if ftype in NUMERIC_TYPES:
        return parse_int(text)
    if ftype is FieldType.BOOL:
        return parse_bool(text)
    if ftype is FieldType.IPADDR:
        return parse_address(text)
    if ftype is FieldType.IPNET:
        return parse_cidr(text)
    return text


def glob_matcher(pattern: str, casefold: bool) -> Callable[[str], bool]:
    """fnmatch(3) with no flags, as libsinsp's glob (pipeline/rules/glob.py): ``*`` crosses
    ``/``, ``[^a]`` negates, ``\\*`` is a literal ``*``. ``casefold`` for ``iglob``."""
    if casefold:
        match = compiled_glob(pattern.lower()).match
        return lambda value: match(value.lower()) is not None
    match = compiled_glob(pattern).match
    return lambda value: match(value) is not None


def _posix_options() -> "re2.Options":
    """RE2's POSIX options (``RE2::POSIX``), as libsinsp compiles a ``regex``: egrep syntax,
    leftmost-longest; no Perl classes (``\\d``), ``\\b``, ``(?i)`` or ``(?:...)``."""
    options = re2.Options()
    options.posix_syntax = True
    options.longest_match = True
    options.log_errors = False  # RE2 would also log the error to stderr, through absl, beside ours
    return options


REGEX_OPTIONS = _posix_options()


def compile_regex(pattern: str) -> Any:
    """The compiled pattern; LiteralTypeError saying why when libsinsp would refuse it."""
    try:
        return re2.compile(pattern, REGEX_OPTIONS)
    except Exception as error:  # re2.error; its message (bytes) says what is wrong
        reason = error.args[0] if error.args else error
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise LiteralTypeError(
            f"invalid regular expression '{pattern}': {reason} (Falco compiles it with RE2's POSIX syntax)"
        ) from None


def regex_matcher(pattern: str) -> Callable[[str], bool]:
    """Falco's ``regex``: RE2 with POSIX syntax, the whole value must match."""
    fullmatch = compile_regex(pattern).fullmatch
    return lambda value: fullmatch(value) is not None


def path_prefixes(paths: list[str]) -> tuple[frozenset[str], tuple[str, ...]]:
    """For ``pmatch``: a value matches a path when it is the path or lies under it.

    Returns (exact paths, directory prefixes ending in '/'). ``/etc`` and
    ``/etc/`` both match ``/etc`` and ``/etc/passwd``, never ``/etcx``.
    """
    exact: set[str] = set()
    prefixes: set[str] = set()
    for path in paths:
        trimmed = path.rstrip("/")
        if not trimmed:  # "/" itself: every absolute path is under it
            exact.add("/")
            prefixes.add("/")
            continue
        exact.add(trimmed)
        prefixes.add(trimmed + "/")
    return frozenset(exact), tuple(sorted(prefixes))


# ---------------------------------------------------------------- run time: transformers


def _absent(value: Any) -> bool:
    return value is None or value is MISSING


def t_tolower(value: Any) -> Any:
    if type(value) is str:
        return value.lower()
    if type(value) is list:
        return [v.lower() for v in value if type(v) is str]
    return None


def t_toupper(value: Any) -> Any:
    if type(value) is str:
        return value.upper()
    if type(value) is list:
        return [v.upper() for v in value if type(v) is str]
    return None


def _b64_one(value: str) -> str | None:
    try:
        return base64.b64decode(value, validate=True).decode("utf-8", errors="replace")
    except (binascii.Error, ValueError):
        return None


def t_b64(value: Any) -> Any:
    if type(value) is str:
        return _b64_one(value)
    if type(value) is list:
        decoded = [_b64_one(v) for v in value if type(v) is str]
        return [d for d in decoded if d is not None]
    return None


def t_basename(value: Any) -> Any:
    if type(value) is str:
        return value.rpartition("/")[2]
    if type(value) is list:
        return [v.rpartition("/")[2] for v in value if type(v) is str]
    return None


def t_len(value: Any) -> Any:
    if type(value) is list:
        return len(value) or None  # an empty list is a missing field: nothing to measure
    if type(value) is str or type(value) is bytes:
        return len(value)
    return None


def t_len_each(value: Any) -> Any:
    """``len`` of each candidate of an any-of value (``len(proc.aname)``: one length per ancestor)."""
    if type(value) is list:
        return [len(v) for v in value if type(v) is str or type(v) is bytes] or None
    return t_len(value)


TRANSFORMS: dict[str, Callable[[Any], Any]] = {
    "tolower": t_tolower,
    "toupper": t_toupper,
    "b64": t_b64,
    "basename": t_basename,
    "len": t_len,
}


# ---------------------------------------------------------------- run time: operators


def text_of(value: Any) -> str | None:
    """The text a text operator sees: a str as is, a number as decimal, else nothing."""
    if type(value) is str:
        return value
    if type(value) is int:
        return str(value)
    return None


def text_op(op: str, lit: Any, matcher: Callable[[str], bool] | None) -> Callable[[str], bool]:
    """A one-argument predicate on text for a text operator and its (typed) literal."""
    if op == "contains":
        return lambda v: lit in v
    if op == "icontains":
        low = lit.lower()
        return lambda v: low in v.lower()
    if op == "startswith":
        return lambda v: v.startswith(lit)
    if op == "endswith":
        return lambda v: v.endswith(lit)
    if op in ("glob", "iglob", "regex") and matcher is not None:
        return matcher
    raise ValueError(f"not a text operator: {op}")


_GLOB_CHARS = frozenset("*?[")


def has_glob(path: str) -> bool:
    return not _GLOB_CHARS.isdisjoint(path)


def pmatch_matcher(paths: list[str]) -> Callable[[str], bool]:
    """``pmatch`` against ``paths``, some of which may hold glob wildcards (Falco 0.36+):
    a glob path is matched a component at a time (``*`` never crosses ``/``), and the value
    matches when its first components match them all: ``/var/*/*.txt`` takes
    ``/var/run/x.txt``, ``/var/*`` takes ``/var/run/file.txt``. Plain paths keep the set and
    prefix lookup of :func:`path_prefixes`."""
    exact, prefixes = path_prefixes([p for p in paths if not has_glob(p)])
    globs = tuple(tuple(p.rstrip("/").split("/")) for p in paths if has_glob(p))
    if not globs:
        return lambda value, _x=exact, _p=prefixes: value in _x or value.startswith(_p)
    match = glob_match

    def matcher(value: str, _x=exact, _p=prefixes, _g=globs) -> bool:
        if value in _x or value.startswith(_p):
            return True
        parts = value.split("/")
        return any(len(parts) >= len(pattern) and all(map(match, pattern, parts)) for pattern in _g)

    return matcher


def any_text(value: Any, predicate: Callable[[str], bool]) -> bool:
    """A text operator on a scalar or list value (a list matches when one element does)."""
    if type(value) is list:
        for item in value:
            text = text_of(item)
            if text is not None and predicate(text):
                return True
        return False
    text = text_of(value)
    return text is not None and predicate(text)


def as_bytes(value: Any) -> bytes | None:
    if type(value) is bytes:
        return value
    if type(value) is str:
        return value.encode("utf-8", errors="surrogateescape")
    return None


def bytes_op(value: Any, op: str, lit: bytes) -> bool:
    """``bcontains``/``bstartswith`` (or ``contains``/``startswith``/``endswith`` on a byte buffer)."""
    items = value if type(value) is list else [value]
    for item in items:
        data = as_bytes(item)
        if data is None:
            continue
        if op in ("bcontains", "contains"):
            found = lit in data
        elif op == "endswith":
            found = data.endswith(lit)
        else:
            found = data.startswith(lit)
        if found:
            return True
    return False


@functools.lru_cache(maxsize=4096)
def _network_of(text: str) -> IPNetwork | None:
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        return None


class Networks(tuple):
    """A condition's networks (compiled once), with each one's address range as ints, so a
    test is integer comparisons instead of ipaddress's subnet_of (~1 us a network)."""

    def __new__(cls, networks: Iterable[IPNetwork]) -> "Networks":
        self = super().__new__(cls, networks)
        self.ranges = tuple((n.version, int(n.network_address), int(n.broadcast_address)) for n in self)
        return self


@functools.lru_cache(maxsize=8192)
def _range_of(text: str) -> tuple[int, int, int] | None:
    """(version, first, last address as ints) of an address or network written as text."""
    net = _network_of(text)
    if net is None:
        return None
    return net.version, int(net.network_address), int(net.broadcast_address)


def ip_within(value: Any, networks: tuple[IPNetwork, ...]) -> bool | None:
    """True when the address (or network) ``value`` lies in one of ``networks``;
    None when ``value`` is missing or not an address (so neither `=` nor `!=` match)."""
    if type(value) is not str:
        return None
    found = _range_of(value)
    if found is None:
        return None
    version, first, last = found
    ranges = networks.ranges if type(networks) is Networks else Networks(networks).ranges
    for net_version, low, high in ranges:
        if net_version == version and low <= first and last <= high:
            return True
    return False


def ip_list(value: Any, networks: tuple[IPNetwork, ...], every: bool) -> bool:
    """``in`` (every address inside) / ``intersects`` (one inside) on a list of addresses."""
    if type(value) is not list or not value:
        return False
    results = [ip_within(item, networks) for item in value]
    if every:
        return all(r is True for r in results)
    return any(r is True for r in results)


def _same(value: Any, options: list[Any]) -> bool:
    """``value in options`` without Python's 1 == True: types must agree too."""
    kind = type(value)
    return any(type(option) is kind and option == value for option in options)


def compare_any_value(op: str, left: Any, right: Any) -> bool:
    """``left op val(right)`` where ``left`` lists candidates (ancestors): one must match."""
    if type(left) is not list:
        return compare_values(op, left, right)
    for item in left:
        if compare_values(op, item, right):
            return True
    return False


def compare_values(op: str, left: Any, right: Any) -> bool:
    """``left op val(right)``: both sides from the event; a missing side never matches."""
    if _absent(left) or _absent(right) or left == [] or right == []:
        return False
    try:
        if op in ("in", "intersects"):
            options = right if type(right) is list else [right]
            if type(left) is list:
                found = [_same(item, options) for item in left]
                return all(found) if op == "in" else any(found)
            return _same(left, options)
        if type(right) is list:
            return False  # only in/intersects compare with a list
        if type(left) is list:
            if op == "!=":
                return not _same(right, left)
            return any(compare_values(op, item, right) for item in left)
        if op in ("=", "=="):
            return type(left) is type(right) and left == right
        if op == "!=":
            return type(left) is type(right) and left != right
        if op in ("<", "<=", ">", ">="):
            if type(left) is not type(right) or type(left) not in (int, str):
                return False
            return {"<": left < right, "<=": left <= right, ">": left > right, ">=": left >= right}[op]
        lt, rt = text_of(left), text_of(right)
        if lt is None or rt is None:
            return False
        if op == "contains":
            return rt in lt
        if op == "icontains":
            return rt.lower() in lt.lower()
        if op == "startswith":
            return lt.startswith(rt)
        if op == "endswith":
            return lt.endswith(rt)
        if op in ("glob", "iglob"):
            return glob_matcher(rt, op == "iglob")(lt)
    except (TypeError, ValueError):
        return False
    return False
