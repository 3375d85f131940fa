"""Synchronous client: the WSAConnectByList contract from plain blocking code.

    python examples/sync_client.py                       # a self-contained local demo
    python examples/sync_client.py 192.0.2.1:80 [2001:db8::1]:80 ...

Without arguments it starts an echo server on 127.0.0.1 (a thread), and races a refused port
and a black hole (a listener whose accept queue is full) against it. No asyncio in sight: the
facade runs the race on an event loop of its own and blocks until it is decided.
"""

from __future__ import annotations

import socket
import sys
import threading
from typing import Any

from aioconnlist import ConnectError, RaceEvent
from aioconnlist._cli.waterfall import attempts_from_events, render_waterfall
from aioconnlist.blocking import connect_by_list, create_connection


def connect(addresses: list[str], *, talk: bool, **options: Any) -> int:
    events: list[RaceEvent] = []
    # The caller makes the socket and sets its options; a dual-stack AF_INET6 socket reaches
    # IPv4 addresses too (as ::ffff:a.b.c.d).
    sock = socket.socket(socket.AF_INET6)
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.settimeout(5.0)
    with sock:
        try:
            local, remote = connect_by_list(
                sock, addresses, timeout=10.0, on_event=events.append, **options
            )
        except ConnectError as e:  # an OSError: errno, message and every attempt
            print(f"failed: {e.strerror}")
            print(render_waterfall(e.attempts))
            return 1
        # Still our socket object, now connected, with our timeout and options.
        print(f"connected from {local} to {remote} (fd {sock.fileno()})")
        print(f"timeout {sock.gettimeout()}, TCP_NODELAY {sock.getsockopt(6, 1)}")
        if talk:
            sock.sendall(b"hello\n")
            print("echoed:", sock.recv(100))
    print(render_waterfall(attempts_from_events(events)))
    if talk:
        # socket.create_connection's look-alike makes the socket itself. The shared history
        # now knows the black hole did not answer, so this race tries it after the others.
        with create_connection(addresses, timeout=2.0, **options) as conn:
            conn.sendall(b"again\n")
            print("create_connection echoed:", conn.recv(100))
    return 0


def serve_echo(server: socket.socket) -> None:
    while True:
        try:
            conn, _ = server.accept()
        except OSError:
            return  # the server was shut down
        with conn:
            conn.sendall(conn.recv(100))


def demo() -> int:
    with (
        socket.create_server(("127.0.0.1", 0)) as server,
        socket.socket() as closed_port,
        socket.create_server(("127.0.0.1", 0), backlog=0) as full,
    ):
        worker = threading.Thread(target=serve_echo, args=(server,), daemon=True)
        worker.start()
        # a port bound but not listening: connecting to it is refused at once
        closed_port.bind(("127.0.0.1", 0))
        # a listener that never accepts, its one-slot queue filled: SYNs to it go unanswered
        with socket.create_connection(full.getsockname()):
            addresses = [
                f"127.0.0.1:{full.getsockname()[1]}",
                f"127.0.0.1:{closed_port.getsockname()[1]}",
                f"127.0.0.1:{server.getsockname()[1]}",
            ]
            print("racing", ", ".join(addresses))
            # sort=False: the caller's order, so the black hole really goes first
            result = connect(addresses, talk=True, sort=False)
        server.shutdown(socket.SHUT_RDWR)  # wakes the accept() so the thread ends
        worker.join(5)
        return result


if __name__ == "__main__":
    sys.exit(connect(sys.argv[1:], talk=False) if sys.argv[1:] else demo())
