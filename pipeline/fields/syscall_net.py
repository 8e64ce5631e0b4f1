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

from pipeline.fields.coerce import NA, to_bool, to_int, to_str
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


def _coerced(value: Any, coerce: Callable[[Any], Any]) -> Any:
    """``value`` coerced (text as it is, unless Falco's <NA>): MISSING for None."""
    if value is None:
        return MISSING
    if value.__class__ is str and coerce is to_str:
        return MISSING if value == NA else value
    return coerce(value)


def _end(key: str, part: int | None, coerce: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """One end's value: its own key, else (``part`` not None) its part of ``fd.name``."""

    def extract(e: Any, _key=key, _part=part, _c=coerce, _m=MISSING) -> Any:
        v = e.get(_key)
        if v is None and _part is not None:
            ends = connection_ends(e.get("fd.name"))
            v = None if ends is None else ends[_part]
        return _coerced(v, _c)

    return extract


def _own_or(key: str, coerce: Callable[[Any], Any], fallback: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def extract(e: Any, _key=key, _c=coerce, _f=fallback) -> Any:
        v = e.get(_key)
        return _f(e) if v is None else _coerced(v, _c)

    return extract


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


def _by_role(key: str, local: bool, client: Callable[[Any], Any], server: Callable[[Any], Any],
             coerce: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """Its own key, else the local (or remote) end: the server's on a server socket, the client's
    on a client's."""

    def extract(e: Any, _key=key, _local=local, _client=client, _server=server, _c=coerce, _m=MISSING) -> Any:
        v = e.get(_key)
        if v is not None:
            return _coerced(v, _c)
        role = _is_server(e)
        if role is None:
            return _m
        return _server(e) if role is _local else _client(e)

    return extract


def _either(key: str, client_key: str, server_key: str, parts: tuple[int, int] | None,
            coerce: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """Candidates: the field's own value, else the client's and the server's (their keys, else
    ``fd.name``'s ``parts``). One function, as it is read for every network event."""

    def extract(e: Any, _key=key, _ck=client_key, _sk=server_key, _parts=parts, _c=coerce, _m=MISSING) -> Any:
        v = e.get(_key)
        if v is not None:
            v = _coerced(v, _c)
            return _m if v is _m else [v]
        client = e.get(_ck)
        server = e.get(_sk)
        if (client is None or server is None) and _parts is not None:
            ends = connection_ends(e.get("fd.name"))
            if ends is not None:
                if client is None:
                    client = ends[_parts[0]]
                if server is None:
                    server = ends[_parts[1]]
        values = []
        if client is not None:
            client = _coerced(client, _c)
            if client is not _m:
                values.append(client)
        if server is not None:
            server = _coerced(server, _c)
            if server is not _m:
                values.append(server)
        return values or _m

    return extract


# what a field compares: an address (ip, net), a port, a protocol name (a port's service,
# from /etc/services: fd.name does not have it); and where fd.name has the client's and server's
_KIND_OF = {"ip": "ip", "net": "ip", "port": "port", "proto": "proto"}
_COERCE = {"ip": to_str, "port": to_int, "proto": to_str}
_NAME_PARTS = {"ip": (_CLIENT_IP, _SERVER_IP), "port": (_CLIENT_PORT, _SERVER_PORT), "proto": None}


def bind_network_field(definition: FieldDef, arg: str | None, key: str) -> BoundField:
    """The BoundField of one of :data:`NETWORK_FIELDS` (``fd.[c|s|l|r](ip|net|port|proto)``)."""
    end, suffix = _SPLIT[definition.name]
    kind = _KIND_OF[suffix]
    coerce = _COERCE[kind]
    parts = _NAME_PARTS[kind]
    client_key, server_key = f"fd.c{kind}", f"fd.s{kind}"
    if end == "":
        listed = replace(definition, is_list=True, any_of=True)
        return BoundField(listed, arg, key, _either(key, client_key, server_key, parts, coerce))
    client = _end(client_key, parts and parts[0], coerce)
    server = _end(server_key, parts and parts[1], coerce)
    if end in ("c", "s"):
        extract = client if end == "c" else server
        if key not in (client_key, server_key):  # fd.cnet / fd.snet: their own key, else the end's address
            extract = _own_or(key, coerce, extract)
    else:
        extract = _by_role(key, end == "l", client, server, coerce)
    return BoundField(definition, arg, key, extract)


_SPLIT = {f"fd.{end}{suffix}": (end, suffix) for end in ("", "c", "s", "l", "r") for suffix in ("ip", "net", "port", "proto")}
NETWORK_FIELDS = frozenset(_SPLIT)
