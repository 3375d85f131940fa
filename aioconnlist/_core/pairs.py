"""Plain data shared by the core: local addresses, (source, destination) pairs, the sources view."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from .addresses import Endpoint, IPAddress
from .records import FrozenRecord, replaced


class LocalAddress(FrozenRecord):
    """An address of this machine that a socket may bind to before connecting."""

    __slots__ = ("deprecated", "interface", "ip", "scope_id")
    _fields = ("ip", "scope_id", "interface", "deprecated")

    ip: IPAddress
    scope_id: int  # interface index, needed for IPv6 link-local sources
    interface: str
    deprecated: bool  # IPv6 preferred lifetime over: use last

    def __init__(
        self, ip: IPAddress, scope_id: int = 0, interface: str = "", deprecated: bool = False
    ) -> None:
        setattr_ = object.__setattr__
        setattr_(self, "ip", ip)
        setattr_(self, "scope_id", scope_id)
        setattr_(self, "interface", interface)
        setattr_(self, "deprecated", deprecated)

    def __str__(self) -> str:
        return str(self.ip) if self.interface == "" else f"{self.ip}%{self.interface}"


class Pair(FrozenRecord):
    """One way to connect: a destination and the source to bind (``None``: the kernel's choice).

    ``kernel_source`` is the source the kernel would pick for ``destination`` (learned without
    sending packets), ``None`` when it has no route. It ranks the pair (RFC 6724) and names the
    path in history when ``source`` is ``None``.
    """

    __slots__ = ("_history_key", "destination", "kernel_source", "source")
    _fields = ("source", "destination", "kernel_source")

    source: LocalAddress | None
    destination: Endpoint
    kernel_source: IPAddress | None
    # PairHistory's key for this pair, made on first use (see `aioconnlist._core.history`)
    _history_key: tuple[int, int, int] | None

    def __init__(
        self,
        source: LocalAddress | None,
        destination: Endpoint,
        kernel_source: IPAddress | None = None,
    ) -> None:
        setattr_ = object.__setattr__
        setattr_(self, "source", source)
        setattr_(self, "destination", destination)
        setattr_(self, "kernel_source", kernel_source)
        setattr_(self, "_history_key", None)

    @property
    def effective_source(self) -> IPAddress | None:
        """The source the attempt uses: the bound one, else the kernel's choice (if known)."""
        return self.source.ip if self.source is not None else self.kernel_source

    @property
    def key(self) -> tuple[str, str, int]:
        """The history key: (source ip or "" when unknown, destination ip, port)."""
        src = self.effective_source
        return ("" if src is None else str(src), str(self.destination.ip), self.destination.port)

    def __str__(self) -> str:
        src = "kernel" if self.source is None else str(self.source)
        if self.source is None and self.kernel_source is not None:
            src = f"kernel({self.kernel_source})"
        return f"{src} -> {self.destination}"


SourceMode = Literal["auto", "kernel", "explicit"]

#: How the kernel would route an alternate-source pair (`SourceView.routes`):
#: out of the interface that owns the source (or not known: the default)...
ROUTE_OWN = 0
#: ...out of another interface (weak host model, no policy rule): ranked after the others
ROUTE_OTHER = 1
#: never an alternate: it would take traffic off the tunnel the kernel's own route uses, or it
#: is the address of a bridge/TAP segment and the destination lies outside it
ROUTE_NEVER = 2


class SourceView(FrozenRecord):
    """What the planner knows of local sources; made by `aioconnlist._io.sources` (the I/O side).

    - ``mode="kernel"``: one pair per destination, the kernel's choice (``local_addresses=None``).
    - ``mode="auto"``: the kernel's choice first, then every other suitable address in ``local``.
    - ``mode="explicit"``: exactly the addresses in ``local`` (bound explicitly).

    ``kernel_choice`` maps a destination's IP to the kernel-chosen source (absent or ``None``:
    unknown or no route). ``routes`` (mode "auto") maps (source IP, destination IP) of an
    alternate pair to `ROUTE_OTHER` or `ROUTE_NEVER`; absent means `ROUTE_OWN`. ``nat64``
    maps NAT64-synthesized destinations to the IPv4 addresses they stand for.
    """

    __slots__ = ("kernel_choice", "local", "mode", "nat64", "routes")
    _fields = ("mode", "local", "kernel_choice", "routes", "nat64")

    mode: SourceMode
    local: tuple[LocalAddress, ...]
    kernel_choice: Mapping[IPAddress, IPAddress | None]
    routes: Mapping[tuple[IPAddress, IPAddress], int]
    #: synthesized (NAT64) IPv6 destination -> the IPv4 address it stands for (ranked as that)
    nat64: Mapping[IPAddress, IPAddress]

    def __init__(
        self,
        mode: SourceMode,
        local: tuple[LocalAddress, ...] = (),
        kernel_choice: Mapping[IPAddress, IPAddress | None] | None = None,
        routes: Mapping[tuple[IPAddress, IPAddress], int] | None = None,
        nat64: Mapping[IPAddress, IPAddress] | None = None,
    ) -> None:
        setattr_ = object.__setattr__
        setattr_(self, "mode", mode)
        setattr_(self, "local", local)
        setattr_(self, "kernel_choice", {} if kernel_choice is None else kernel_choice)
        setattr_(self, "routes", {} if routes is None else routes)
        setattr_(self, "nat64", {} if nat64 is None else nat64)

    def replace(self, **changes: Any) -> SourceView:
        """A copy with ``changes`` (as `dataclasses.replace`)."""
        return replaced(self, changes)


# --- suitability of a (source, destination) pair (never attempted when unsuitable) ---------------

LOOPBACK, LINK_LOCAL, WIDER = 0, 1, 2


def locality(ip: IPAddress) -> int:
    """Loopback, link-local or wider, from the integer value (cheaper than ``ip.is_*``)."""
    n = int(ip)
    if ip.version == 4:
        if n >> 24 == 127:
            return LOOPBACK
        return LINK_LOCAL if n >> 16 == 0xA9FE else WIDER  # 169.254/16
    if n == 1:
        return LOOPBACK
    return LINK_LOCAL if n >> 118 == 0x3FA else WIDER  # fe80::/10


def destination_usable(destination: Endpoint) -> bool:
    """False for a destination no pair can reach: an IPv6 link-local address without a zone."""
    return not (
        destination.scope_id == 0
        and destination.ip.version == 6
        and int(destination.ip) >> 118 == 0x3FA
    )


def explicit_source_usable(source: LocalAddress, destination: Endpoint) -> bool:
    """Whether a source the caller named can be tried towards ``destination``.

    Looser than `source_usable`, which filters the sources *we* choose: what the caller names
    is tried whenever the kernel can route it at all: same family, a usable destination, not a
    loopback source towards another host (the kernel refuses such a martian at once), not a
    link-local address of another zone. So a host address bound towards a loopback service
    works, as with a plain bind and connect.
    """
    if source.ip.version != destination.ip.version or not destination_usable(destination):
        return False
    if locality(source.ip) == LOOPBACK and locality(destination.ip) != LOOPBACK:
        return False
    return not (
        locality(source.ip) == LINK_LOCAL
        and locality(destination.ip) == LINK_LOCAL
        and source.scope_id
        and destination.scope_id
        and source.scope_id != destination.scope_id
    )


def source_usable(source: LocalAddress, destination: Endpoint) -> bool:
    """Whether binding ``source`` can reach ``destination`` usefully.

    Same family; the destination usable at all; loopback and link-local sources only to
    destinations of the same kind (link-local: the same zone when both zones are known).
    The rule is symmetric: a loopback or link-local destination takes only a source of its own
    kind, since any other source reaches it over the same interface and only adds attempts.
    """
    if source.ip.version != destination.ip.version or not destination_usable(destination):
        return False
    kind = locality(source.ip)
    if kind != locality(destination.ip):
        return False
    return not (
        kind == LINK_LOCAL
        and source.scope_id
        and destination.scope_id
        and source.scope_id != destination.scope_id
    )
