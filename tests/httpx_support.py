"""Fixtures for the httpx/httpcore tests: the servers of `tests/httpx_servers.py` in a
subprocess, a CA (trustme) and a fixed-table resolver."""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aioconnlist._core.addresses import Endpoint, parse_address

SERVERS = Path(__file__).with_name("httpx_servers.py")


@dataclass
class Servers:
    plain: int
    tls: int
    proxy: int
    proxy_tls: int
    uds: str
    client_context: ssl.SSLContext


@contextlib.contextmanager
def running_servers(directory: Path) -> Iterator[Servers]:
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1", "::1")
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_path))
    cert.private_key_pem.write_to_path(str(key_path))
    key_path.chmod(0o600)
    spec = {"cert": str(cert_path), "key": str(key_path), "uds": str(directory / "http.sock")}
    proc = subprocess.Popen(
        [sys.executable, str(SERVERS), json.dumps(spec)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError("tests/httpx_servers.py did not start")
        ports = json.loads(line)
        context = ssl.create_default_context()
        ca.configure_trust(context)
        yield Servers(
            ports["plain"], ports["tls"], ports["proxy"], ports["proxy_tls"], ports["uds"], context
        )
    finally:
        assert proc.stdin is not None
        proc.stdin.close()  # EOF: the servers stop by themselves
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()  # our own child, by its pid
            proc.wait(timeout=5)
        if proc.stdout is not None:
            proc.stdout.close()


class TableResolver:
    """An aioconnlist resolver answering from a fixed table {name: [ip, ...]} per family."""

    def __init__(self, table: dict[str, Sequence[str]]) -> None:
        self.table = table
        self.asked: list[tuple[str, int]] = []

    async def resolve(self, host: str, port: int, family: socket.AddressFamily) -> list[Endpoint]:
        self.asked.append((host, int(family)))
        found = [parse_address((ip, port)) for ip in self.table.get(host, ())]
        return [e for e in found if e.family == family]


def wscale_of(sock: Any) -> int:
    """The receive window scale the socket's SYN announced (TCP_INFO tcpi_rcv_wscale): 0
    when a small SO_RCVBUF was set before connect, larger when it came after."""
    info: bytes = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
    return info[6] >> 4
