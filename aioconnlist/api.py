"""The async API (SPEC §1). TEMPORARY minimal version; being written."""

from __future__ import annotations

import socket
from typing import Any

from .addresses import parse_addresses
from .driver import race
from .options import make_options


async def connect_by_list(addresses: Any, **options: Any) -> socket.socket:
    sock, _pair = await race(parse_addresses(addresses), make_options(**options))
    return sock
