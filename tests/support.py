"""Real loopback endpoints for unprivileged tests (SPEC §6) and leak accounting."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Iterator

import pytest

REQUIRE_NETLAB = os.environ.get("AIOCONNLIST_REQUIRE_NETLAB") == "1"


def skip_or_fail(reason: str) -> None:
    """Skip, except where CI demands the test run (AIOCONNLIST_REQUIRE_NETLAB=1): fail."""
    if REQUIRE_NETLAB:
        pytest.fail(f"AIOCONNLIST_REQUIRE_NETLAB=1 but: {reason}")
    pytest.skip(reason)


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def task_count() -> int:
    return len(asyncio.all_tasks())


def has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


class Listener:
    """A listening socket the kernel completes handshakes for (no accept needed)."""

    def __init__(self, host: str = "127.0.0.1", backlog: int = 128) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.bind((host, 0))
        self.sock.listen(backlog)
        self.host = host
        self.port: int = self.sock.getsockname()[1]

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    def accept_all(self) -> list[socket.socket]:
        """Accept everything queued (non-blocking); the caller closes them."""
        self.sock.setblocking(False)
        out = []
        with contextlib.suppress(BlockingIOError):
            while True:
                out.append(self.sock.accept()[0])
        return out

    def close(self) -> None:
        for s in self.accept_all():
            s.close()
        self.sock.close()


def refused_address(host: str = "127.0.0.1") -> tuple[str, int]:
    """An address whose port has no listener: connect is refused at once."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
    return (host, port)


class BlackHole:
    """A ``listen(0)`` listener whose accept queue is full: new SYNs are silently dropped."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.listener = Listener(host, backlog=0)
        self.fillers: list[socket.socket] = []
        for _ in range(8):  # bounded: one filler fills backlog 0 on Linux
            probe = socket.socket(self.listener.sock.family, socket.SOCK_STREAM)
            probe.settimeout(0.05)
            try:
                probe.connect(self.listener.address)
            except TimeoutError:
                probe.close()
                return
            self.fillers.append(probe)
        raise RuntimeError("could not fill the accept queue of a listen(0) socket")

    @property
    def address(self) -> tuple[str, int]:
        return self.listener.address

    def close(self) -> None:
        for s in self.fillers:
            s.close()
        self.listener.close()


@contextlib.contextmanager
def no_fd_leak() -> Iterator[None]:
    before = fd_count()
    yield
    after = fd_count()
    assert after == before, f"fd count went from {before} to {after}"
