"""The network fields Falco computes from a socket's connection rather than prints.

Falco's alerts carry ``fd.name`` (``10.0.0.5:41000->203.0.113.9:443``, client
first), ``fd.cip``/``fd.sip``/``fd.cport``/``fd.sport`` when a rule's output
asks for them, and the local/remote ports of most network rules' outputs. Other
fields are filter-only in libsinsp: it works them out from the socket and never
prints them, so an event shaped like Falco's ``output_fields`` does not have them:

* ``fd.ip``, ``fd.port``, ``fd.proto``, ``fd.net``: the client's *or* the
  server's (a comparison holds when it holds for one of them, as libsinsp's
  check of either end);
* ``fd.cnet``/``fd.snet``: the client's/server's address, compared as a network;
* ``fd.lip``/``fd.rip``, ``fd.lport``/``fd.rport``, ``fd.lproto``/``fd.rproto``,
  ``fd.lnet``/``fd.rnet``: the local/remote end, which is the client or the
  server depending on the socket's role.

Read here, like every field, from the field's own key first; when that is
absent, from the fields they are made of, and for the client and server ends
from ``fd.name``. The role is ``fd.is_server`` when the event has it, else the
syscall's: a ``connect`` is the client's, an ``accept`` the server's; without
either, the local/remote fields have no value. Without these, Falco's
``outbound`` macro (``fd.ip != "0.0.0.0" and fd.net != "127.0.0.0/8" ...``)
could never hold and every rule built on it would stay silent.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable

from pipeline.fields.coerce import to_bool, to_int, to_str
from pipeline.fields.registry import MISSING, BoundField, FieldDef

# fd.name's ends: (client address, client port, server address, server port)
_CLIENT_IP, _CLIENT_PORT, _SERVER_IP, _SERVER_PORT = range(4)
_CLIENT_SYSCALLS = frozenset({"connect"})
_SERVER_SYSCALLS = frozenset({"accept", "accept4"})


def connection_ends(name: Any) -> tuple[str, str, str, str] | None:
    """``fd.name`` of a connected IPv4/IPv6 socket, split: client address and port, server
    address and port (libsinsp prints ``cip:cport->sip:sport``, IPv6 addresses unbracketed).
    None for anything else (a file, a listening socket, a unix socket's name)."""
    if name.__class__ is not str:
        return None
    client, arrow, server = name.partition("->")
    if not arrow:
        return None
    cip, colon_c, cport = client.rpartition(":")
    sip, colon_s, sport = server.rpartition(":")
    if not (colon_c and colon_s and cip and sip and cport.isdigit() and sport.isdigit()):
        return None
    return cip.strip("[]"), cport, sip.strip("[]"), sport


def _own_else(key: str, coerce: Callable[[Any], Any], fallback: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """The value under ``key`` (coerced), else ``fallback``'s."""

    def extract(e: Any, _key=key, _c=coerce, _f=fallback, _m=MISSING) -> Any:
        v = e.get(_key)
        return _f(e) if v is None else _c(v)

    return extract


def _from_name(part: int, coerce: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """One end's address or port, taken from ``fd.name``."""

    def extract(e: Any, _part=part, _c=coerce, _m=MISSING) -> Any:
        ends = connection_ends(e.get("fd.name"))
        return _m if ends is None else _c(ends[_part])

    return extract


def _nothing(e: Any) -> Any:
    return MISSING


def _is_server(e: Any) -> bool | None:
    """The socket's role: ``fd.is_server``, else a connect's (client) or an accept's (server)."""
    role = e.get("fd.is_server")
    if role is not None:
        role = to_bool(role)
        if role is not MISSING:
            return role
    syscall = e.get("evt.type")
    if syscall in _CLIENT_SYSCALLS:
        return False
    if syscall in _SERVER_SYSCALLS:
        return True
    return None


def _by_role(local: bool, client: Callable[[Any], Any], server: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """The local (or remote) end: the server's on a server socket, the client's on a client's."""

    def extract(e: Any, _local=local, _client=client, _server=server, _m=MISSING) -> Any:
        role = _is_server(e)
        if role is None:
            return _m
        return _server(e) if role is _local else _client(e)

    return extract


def _either(client: Callable[[Any], Any], server: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """Candidates: the client's and the server's (those present)."""

    def extract(e: Any, _client=client, _server=server, _m=MISSING) -> Any:
        values = [x for x in (_client(e), _server(e)) if x is not _m]
        return values or _m

    return extract


def _as_candidates(coerce: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def one(v: Any, _c=coerce, _m=MISSING) -> Any:
        v = _c(v)
        return _m if v is _m else [v]

    return one


# what a field compares: an address (ip, net), a port, a protocol name (a port's service,
# from /etc/services: fd.name does not have it)
_KIND_OF = {"ip": "ip", "net": "ip", "port": "port", "proto": "proto"}
_COERCE = {"ip": to_str, "port": to_int, "proto": to_str}


def _ends(kind: str) -> tuple[Callable[[Any], Any], Callable[[Any], Any]]:
    """How the client's and the server's value of ``kind`` are read."""
    coerce = _COERCE[kind]
    if kind == "proto":
        return _own_else("fd.cproto", coerce, _nothing), _own_else("fd.sproto", coerce, _nothing)
    client_part, server_part = (_CLIENT_PORT, _SERVER_PORT) if kind == "port" else (_CLIENT_IP, _SERVER_IP)
    return (_own_else(f"fd.c{kind}", coerce, _from_name(client_part, coerce)),
            _own_else(f"fd.s{kind}", coerce, _from_name(server_part, coerce)))


def bind_network_field(definition: FieldDef, arg: str | None, key: str) -> BoundField:
    """The BoundField of one of :data:`NETWORK_FIELDS` (``fd.[c|s|l|r](ip|net|port|proto)``)."""
    name = definition.name
    end, suffix = _SPLIT[name]
    kind = _KIND_OF[suffix]
    coerce = _COERCE[kind]
    client, server = _ends(kind)
    if end == "":
        listed = replace(definition, is_list=True, any_of=True)
        return BoundField(listed, arg, key, _own_else(key, _as_candidates(coerce), _either(client, server)))
    if end == "c":
        fallback = client
    elif end == "s":
        fallback = server
    else:
        fallback = _by_role(end == "l", client, server)
    return BoundField(definition, arg, key, _own_else(key, coerce, fallback))


_SPLIT = {f"fd.{end}{suffix}": (end, suffix) for end in ("", "c", "s", "l", "r") for suffix in ("ip", "net", "port", "proto")}
NETWORK_FIELDS = frozenset(_SPLIT)
