"""Local sources (I/O side): the machine's addresses and the kernel's choice of source.

STUB — being implemented (helper A).
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from typing import Literal

from .addresses import Endpoint, IPAddress
from .pairs import LocalAddress, SourceView


def kernel_source(destination: Endpoint) -> IPAddress | None:
    """The source the kernel picks towards ``destination`` (UDP connect + getsockname, no
    packet sent); ``None`` when there is no route."""
    fam = destination.family
    try:
        with socket.socket(fam, socket.SOCK_DGRAM) as s:
            s.connect(destination.sockaddr())
            from .addresses import parse_ip

            return parse_ip(s.getsockname()[0])[0]
    except OSError:
        return None


def gather_sources(
    destinations: Sequence[Endpoint],
    local_addresses: Literal["auto"] | None | tuple[LocalAddress, ...],
) -> SourceView:
    kc = {d.ip: kernel_source(d) for d in destinations}
    if local_addresses is None:
        return SourceView("kernel", (), kc)
    if local_addresses == "auto":
        return SourceView("auto", (), kc)
    return SourceView("explicit", local_addresses, kc)


def invalidate() -> None:
    """Forget cached interface addresses and kernel choices (after a failed race)."""
