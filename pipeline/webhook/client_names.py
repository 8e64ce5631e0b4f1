"""Which client certificates may post (``--client-name``): ``--client-ca`` alone admits any
certificate its CA signed, and a CA such as the cluster's signs certificates for every node
and component. A certificate's names are its subject common names and its DNS
subjectAltNames; it is admitted when one of them is on the list (DNS names compared without
regard to case, common names exactly; a wildcard in a certificate matches only the same
wildcard on the list)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping


@dataclass(frozen=True, slots=True)
class ClientIdentity:
    """The names a verified client certificate gives (the ``peercert`` dict of :mod:`ssl`)."""

    common_names: tuple[str, ...]
    dns_names: tuple[str, ...]

    @classmethod
    def of(cls, peercert: Mapping[str, Any]) -> "ClientIdentity":
        common = tuple(value for rdn in peercert.get("subject", ()) for key, value in rdn if key == "commonName")
        dns = tuple(value for kind, value in peercert.get("subjectAltName", ()) if kind == "DNS")
        return cls(common, dns)

    def __str__(self) -> str:
        parts = [f"CN={name}" for name in self.common_names] + [f"DNS:{name}" for name in self.dns_names]
        return ", ".join(parts) or "no CN and no DNS name"


@dataclass(frozen=True, slots=True)
class ClientNames:
    """The allow-list; empty admits every certificate (the handshake checked the CA)."""

    names: frozenset[str]

    @classmethod
    def of(cls, names: Iterable[str]) -> "ClientNames":
        return cls(frozenset(names))

    @property
    def restricts(self) -> bool:
        return bool(self.names)

    def admits(self, identity: ClientIdentity) -> bool:
        if not self.names:
            return True
        if any(name in self.names for name in identity.common_names):
            return True
        folded = {name.lower() for name in self.names}
        return any(name.lower() in folded for name in identity.dns_names)
