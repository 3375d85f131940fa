"""Loopback servers for the name-resolution and aiohttp tests.

- `DelayedDNSServer`: a real DNS server (dnspython message handling, UDP on 127.0.0.1, random
  port) that answers AAAA and A for a few names, each record type after its own delay.
- `DnspythonResolver`: a resolver (our `Resolver` protocol) that asks a given server with
  dnspython's async UDP query: a real DNS exchange, one query per family.
- `black_hole_on`: a loopback listener whose accept queue is full, so new SYNs are dropped and
  connects hang (SPEC §6), the unprivileged way to fake a broken path.
- `listeners_on_one_port`: sockets bound on several loopback addresses with one shared port
  (a name's AAAA and A answers share the caller's port).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import dns.asyncquery
import dns.flags
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset


@dataclass
class Query:
    time: float  # time.monotonic() when the query arrived
    name: str
    rdtype: str


@dataclass
class DelayedDNSServer(asyncio.DatagramProtocol):
    """``records``: {name: {"AAAA": [ip, ...], "A": [ip, ...]}}; ``delays``: {"AAAA": s, ...}.

    Unknown names get NXDOMAIN, known names without a record of the type an empty NOERROR
    (NODATA). Every query is logged in ``queries``. Use ``async with`` on a running loop.
    """

    records: dict[str, dict[str, list[str]]]
    delays: dict[str, float] = field(default_factory=dict)
    host: str = "127.0.0.1"
    ttl: int = 60
    bind_port: int = 0  # 0: a random port
    queries: list[Query] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self._timers: set[asyncio.TimerHandle] = set()

    @property
    def port(self) -> int:
        assert self.transport is not None
        return int(self.transport.get_extra_info("sockname")[1])

    @property
    def nameserver(self) -> str:
        """``"ip:port"`` as c-ares (aiodns) takes it."""
        return f"{self.host}:{self.port}"

    async def __aenter__(self) -> DelayedDNSServer:
        loop = asyncio.get_running_loop()
        await loop.create_datagram_endpoint(lambda: self, local_addr=(self.host, self.bind_port))
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        if self.transport is not None:
            self.transport.close()
            self.transport = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a datagram transport

    def answer(self, query: dns.message.Message) -> dns.message.Message:
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA | dns.flags.RA
        question = query.question[0]
        name = question.name.to_text(omit_final_dot=True).lower()
        rdtype = dns.rdatatype.to_text(question.rdtype)
        if name not in self.records:
            response.set_rcode(dns.rcode.NXDOMAIN)
            return response
        addresses = self.records[name].get(rdtype, [])
        if addresses:
            rrset = dns.rrset.from_text_list(
                question.name, self.ttl, dns.rdataclass.IN, question.rdtype, addresses
            )
            response.answer.append(rrset)
        return response

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        try:
            query = dns.message.from_wire(data)
        except Exception:
            return
        question = query.question[0]
        rdtype = dns.rdatatype.to_text(question.rdtype)
        self.queries.append(
            Query(time.monotonic(), question.name.to_text(omit_final_dot=True).lower(), rdtype)
        )
        wire = self.answer(query).to_wire()
        delay = self.delays.get(rdtype, 0.0)
        loop = asyncio.get_running_loop()

        def send() -> None:
            self._timers.discard(timer)
            if self.transport is not None:
                self.transport.sendto(wire, addr)

        timer = loop.call_later(delay, send)
        self._timers.add(timer)


class DnspythonResolver:
    """Our `Resolver` protocol, by real DNS queries (dnspython) to ``server``:``port``."""

    def __init__(self, server: str, port: int, *, timeout: float = 2.0) -> None:
        self.server, self.port, self.timeout = server, port, timeout
        self.calls: list[tuple[str, int, socket.AddressFamily]] = []

    async def resolve(
        self, host: str, port: int, family: socket.AddressFamily
    ) -> list[tuple[str, int]]:
        self.calls.append((host, port, family))
        rdtype = "AAAA" if family == socket.AF_INET6 else "A"
        query = dns.message.make_query(host, rdtype)
        response = await dns.asyncquery.udp(query, self.server, self.timeout, port=self.port)
        if response.rcode() == dns.rcode.NXDOMAIN:
            raise socket.gaierror(socket.EAI_NONAME, f"{host}: NXDOMAIN")
        found = []
        for rrset in response.answer:
            if rrset.rdtype == dns.rdatatype.from_text(rdtype):
                found.extend((rdata.address, port) for rdata in rrset)
        return found


@contextlib.contextmanager
def black_hole_on(host: str, port: int = 0) -> Iterator[int]:
    """A listener on ``host`` whose queue is full: new connects to it hang. Yields its port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    filler = socket.socket(family, socket.SOCK_STREAM)
    try:
        listener.bind((host, port))
        listener.listen(0)
        port = listener.getsockname()[1]
        filler.settimeout(2)
        filler.connect((host, port))  # takes the only queue slot; never accepted
        yield port
    finally:
        filler.close()
        listener.close()


def listeners_on_one_port(hosts: Sequence[str], backlog: int = 16) -> list[socket.socket]:
    """Listening sockets on each of ``hosts`` sharing one free port (bounded retries)."""
    for _ in range(50):
        bound: list[socket.socket] = []
        try:
            port = 0
            for host in hosts:
                family = socket.AF_INET6 if ":" in host else socket.AF_INET
                sock = socket.socket(family, socket.SOCK_STREAM)
                bound.append(sock)
                sock.bind((host, port))
                port = sock.getsockname()[1]
            for sock in bound:
                sock.listen(backlog)
            return bound
        except OSError:
            for sock in bound:
                sock.close()
    raise RuntimeError(f"no common free port for {hosts}")


def free_port_on(hosts: Sequence[str]) -> int:
    """A port that is free (closed: connects are refused) on all of ``hosts`` right now."""
    socks = listeners_on_one_port(hosts)
    port = int(socks[0].getsockname()[1])
    for sock in socks:
        sock.close()
    return port
