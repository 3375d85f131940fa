"""Blocking name resolution for synchronous callers: ``(host, port)`` to destinations.

One ``getaddrinfo(host, port, family, SOCK_STREAM)`` call on the calling thread, as
`socket.create_connection` makes it. With ``AF_UNSPEC`` the system resolver (glibc, musl, the
BSDs) sends the A and AAAA queries at the same time and answers when both are in, so both
families arrive together: the race starts with all of them, and it ranks them itself. A thread
per family (to start on AAAA alone, RFC 8305 §3) would cost a thread start and a wake-up
descriptor on every call, and wins only where one family's answer is much slower than the
other's. An IP literal is not resolved at all.
"""

from __future__ import annotations

import socket

from .._core.addresses import Endpoint, parse_address, parse_ip
from .._core.errors import InvalidArgument, NameResolutionError

__all__ = ["localhost_answer", "resolve_blocking"]


_LOOPBACK: dict[int, str] = {socket.AF_INET: "127.0.0.1", socket.AF_INET6: "::1"}


def localhost_answer(host: str, port: int, family: int) -> list[Endpoint] | None:
    """The loopback address of ``family`` when ``host`` is ``localhost`` or a name under it
    (RFC 6761 §6.3: such names are never sent to DNS); ``None`` for any other name.

    A lookup of one family at a time would otherwise ask DNS for the AAAA record of
    ``localhost`` wherever /etc/hosts has no ``::1 localhost`` line (Debian's default), sending
    a query for a name that must not leave the host.
    """
    name = host.rstrip(".").lower()
    if name != "localhost" and not name.endswith(".localhost"):
        return None
    if family == socket.AF_UNSPEC:
        return [parse_address((_LOOPBACK[f], port)) for f in (socket.AF_INET6, socket.AF_INET)]
    ip = _LOOPBACK.get(family)
    return [] if ip is None else [parse_address((ip, port))]


def _literal(host: str, port: object) -> Endpoint | None:
    """The destination when ``host`` is an IP literal and ``port`` a number, else None."""
    if not isinstance(port, int) or isinstance(port, bool):
        return None
    try:
        return parse_address((host, port))  # (cached: the same Endpoint every call)
    except InvalidArgument:
        try:
            parse_ip(host)
        except InvalidArgument:
            return None  # a name
        raise  # a bad port is InvalidArgument (a ValueError)


#: IP literals met before, ``(host, port)`` (exactly a str and an int) -> their Endpoint: the
#: everyday call passes the same few, and a hit is one dict lookup (no parse, and the very
#: Endpoint the plan cache was filled with)
_LITERALS: dict[tuple[str, int], Endpoint] = {}
_LITERALS_SIZE = 256


def resolve_blocking(
    host: str | bytes | None, port: int | str | bytes | None, family: int = socket.AF_UNSPEC
) -> list[Endpoint]:
    """The TCP destinations of ``host`` and ``port`` (a number or a service name), in the
    resolver's order, duplicates dropped.

    An IP literal (with an optional ``%zone``) is returned as it is. A failed lookup raises
    `NameResolutionError`, which is also a `socket.gaierror` with the resolver's ``EAI_*``
    code; an empty answer raises ``OSError("getaddrinfo returns an empty list")`` as the
    standard library does.
    """
    if type(host) is str and type(port) is int:
        found = _LITERALS.get((host, port))
        if found is not None and (family == 0 or family == found._family):  # (0: AF_UNSPEC)
            return [found]
    if isinstance(host, str):
        found = _literal(host, port)
        if found is not None:
            if family not in (socket.AF_UNSPEC, found.family):
                raise InvalidArgument(f"{host} is not an address of family {family}")
            if type(host) is str and type(port) is int:
                if len(_LITERALS) >= _LITERALS_SIZE:
                    _LITERALS.clear()
                _LITERALS[host, port] = found
            return [found]
        if family != socket.AF_UNSPEC and isinstance(port, int):
            # one family: the system resolver would ask DNS for a localhost name's AAAA
            local = localhost_answer(host, port, family)
            if local is not None:
                return local
    try:
        infos = socket.getaddrinfo(host, port, family, socket.SOCK_STREAM)
    except socket.gaierror as exc:
        code = exc.errno if isinstance(exc.errno, int) else socket.EAI_NONAME
        raise NameResolutionError(code, exc.strerror or str(exc)) from exc
    destinations = dict.fromkeys(
        parse_address(info[4]) for info in infos if info[0] in (socket.AF_INET, socket.AF_INET6)
    )
    if not destinations:
        raise OSError("getaddrinfo returns an empty list")
    return list(destinations)
