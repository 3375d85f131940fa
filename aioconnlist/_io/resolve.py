"""Name resolution (RFC 8305 §3): the resolvers and the staging of their answers.

AAAA and A are asked concurrently, one resolver call per family. Racing starts as soon as a
positive AAAA answer arrives, or `RESOLUTION_DELAY` (50 ms) after a positive A answer that came
first; whatever answers later joins the running race (the driver's ``more_destinations``).

Resolvers are pluggable: any object with ``async resolve(host, port, family) -> [Endpoint]``.
The default is `SystemResolver` (the system's getaddrinfo, one call per family in the default
executor's threads), because it honours nsswitch (/etc/hosts, mDNS, ...) exactly like every
other program on the machine. `AiodnsResolver` (c-ares, no threads, custom name servers) is
opt-in.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import weakref
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar, runtime_checkable

from .._core.addresses import Endpoint, parse_address, parse_ip, shown
from .._core.errors import ExceptionGroup, InvalidArgument, NameResolutionError
from .._core.extras import missing_extra
from .._core.options import RESOLUTION_DELAY

if TYPE_CHECKING:
    import aiodns

T = TypeVar("T")

#: the order RFC 8305 §3 asks in: AAAA first, then A
FAMILIES: tuple[socket.AddressFamily, socket.AddressFamily] = (socket.AF_INET6, socket.AF_INET)
_RECORD = {socket.AF_INET6: "AAAA", socket.AF_INET: "A"}


@runtime_checkable
class Resolver(Protocol):
    """What `connect_by_name` needs from a resolver: the addresses of one family.

    Failures are raised as `OSError` (best: `socket.gaierror`); "no such record" may also be
    an empty list.
    """

    async def resolve(
        self, host: str, port: int, family: socket.AddressFamily
    ) -> Sequence[Endpoint]:
        """The addresses of ``host`` in ``family`` (AF_INET6 or AF_INET), with ``port``."""
        ...


def endpoints(items: Iterable[object]) -> list[Endpoint]:
    """Parse a resolver's answer (Endpoints, address tuples or getaddrinfo 5-tuples), deduped."""
    return list(dict.fromkeys(parse_address(item) for item in items))


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
        return [parse_address((_LOOPBACK[f], port)) for f in FAMILIES]
    ip = _LOOPBACK.get(family)
    return [] if ip is None else [parse_address((ip, port))]


class SystemResolver:
    """The system's getaddrinfo, one call per family, run in the loop's default executor.

    No ``AI_ADDRCONFIG``: whether a destination is reachable is the planner's business (it
    learns the kernel's route per destination), not the resolver's. ``localhost`` names are
    answered with the loopback addresses, never looked up (`localhost_answer`).
    """

    async def resolve(self, host: str, port: int, family: socket.AddressFamily) -> list[Endpoint]:
        """getaddrinfo(host, port, family) in the loop's thread pool, as endpoints."""
        local = localhost_answer(host, port, family)
        if local is not None:
            return local
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(
            host, port, family=family, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
        )
        return endpoints(info for info in infos if info[0] == family)

    def __repr__(self) -> str:
        return "SystemResolver()"


def _gai_code(ares_errno: int) -> int:
    """The getaddrinfo code nearest to a c-ares error."""
    from aiodns import error as ares

    if ares_errno in (ares.ARES_ENOTFOUND, ares.ARES_ENONAME, ares.ARES_EBADNAME):
        return socket.EAI_NONAME
    if ares_errno == ares.ARES_ENODATA:
        return getattr(socket, "EAI_NODATA", socket.EAI_NONAME)
    if ares_errno == ares.ARES_ENOMEM:
        return socket.EAI_MEMORY
    if ares_errno in (
        ares.ARES_ETIMEOUT,
        ares.ARES_ESERVFAIL,
        ares.ARES_ECONNREFUSED,
        ares.ARES_EREFUSED,
        ares.ARES_ECANCELLED,
        ares.ARES_EDESTRUCTION,
    ):
        return socket.EAI_AGAIN
    return socket.EAI_FAIL


class AiodnsResolver:
    """DNS through c-ares (`aiodns`), no threads. Opt-in: ``pip install aiodns``.

    ``nameservers`` are ``"ip"`` or ``"ip:port"`` strings (default: the system's resolv.conf);
    ``channel_options`` go to `aiodns.DNSResolver` / `pycares.Channel` (``timeout``, ``tries``,
    ``rotate``, ...). c-ares reads /etc/hosts but not the rest of nsswitch (no mDNS, no
    systemd-resolved synthesised names), which is why it is not the default. c-ares caches
    answers for their TTL (per instance and loop).
    """

    def __init__(self, nameservers: Sequence[str] | None = None, **channel_options: Any) -> None:
        try:
            import aiodns  # noqa: F401
        except ImportError as exc:
            raise missing_extra(exc, "aiodns", "aioconnlist.AiodnsResolver") from exc
        if isinstance(nameservers, str):
            raise InvalidArgument(f"nameservers must be a list of strings, not {nameservers!r}")
        self.nameservers = list(nameservers) if nameservers is not None else None
        self._channel_options = channel_options
        # one c-ares channel per event loop: a channel is bound to the loop it was made on
        self._channels: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aiodns.DNSResolver]
        self._channels = weakref.WeakKeyDictionary()

    def _channel(self) -> aiodns.DNSResolver:
        import aiodns

        loop = asyncio.get_running_loop()
        channel = self._channels.get(loop)
        if channel is None:
            channel = aiodns.DNSResolver(self.nameservers, loop=loop, **self._channel_options)
            self._channels[loop] = channel
        return channel

    async def resolve(self, host: str, port: int, family: socket.AddressFamily) -> list[Endpoint]:
        """One AAAA (AF_INET6) or A (AF_INET) query through c-ares, as endpoints."""
        import aiodns

        try:
            answer = await self._channel().getaddrinfo(
                host, family=family, port=port, type=socket.SOCK_STREAM
            )
        except aiodns.error.DNSError as e:
            code = e.args[0] if e.args and isinstance(e.args[0], int) else -1
            text = e.args[1] if len(e.args) > 1 else str(e)
            raise socket.gaierror(_gai_code(code), f"{text} ({_RECORD[family]} {host})") from e
        found: list[tuple[str, int, int, int] | tuple[str, int]] = []
        for node in answer.nodes:
            if node.family != family:
                continue
            ip = node.addr[0].decode("ascii") if isinstance(node.addr[0], bytes) else node.addr[0]
            if family == socket.AF_INET6:
                flowinfo, scope_id = (node.addr[2], node.addr[3]) if len(node.addr) >= 4 else (0, 0)
                found.append((ip, port, flowinfo, scope_id))
            else:
                found.append((ip, port))
        return endpoints(found)

    async def close(self) -> None:
        """Close the c-ares channel of the running loop (others close when their loop goes)."""
        with contextlib.suppress(RuntimeError):
            channel = self._channels.pop(asyncio.get_running_loop(), None)
            if channel is not None:
                await channel.close()

    def __repr__(self) -> str:
        return f"AiodnsResolver(nameservers={self.nameservers!r})"


class FamilyLookups(Generic[T]):
    """The per-family lookups of one name, run concurrently, consumed RFC 8305 §3 style.

    ``lookup(family)`` returns that family's answers (any type: Endpoints here, aiohttp's
    ResolveResults in the connector). `first` waits until racing may start; `late` yields the
    answers that come after it. `aclose` cancels what is still running.
    """

    def __init__(
        self,
        lookup: Callable[[socket.AddressFamily], Awaitable[Sequence[T]]],
        families: Sequence[socket.AddressFamily] = FAMILIES,
    ) -> None:
        async def run(family: socket.AddressFamily) -> Sequence[T]:
            return await lookup(family)

        self._tasks = {family: asyncio.ensure_future(run(family)) for family in families}
        self._family_of: dict[asyncio.Future[Sequence[T]], socket.AddressFamily] = {
            task: family for family, task in self._tasks.items()
        }
        self.pending: set[asyncio.Future[Sequence[T]]] = set(self._tasks.values())
        self.answers: dict[socket.AddressFamily, list[T]] = {}
        self.errors: dict[socket.AddressFamily, BaseException] = {}
        self._failed_order: list[socket.AddressFamily] = []

    def _collect(self, task: asyncio.Future[Sequence[T]]) -> list[T]:
        """Take one finished lookup's answers (its error is kept in `errors`)."""
        self.pending.discard(task)
        family = self._family_of[task]
        error = task.exception() if not task.cancelled() else asyncio.CancelledError()
        if error is not None:
            if not isinstance(error, (OSError, asyncio.CancelledError)):
                # a resolver bug or foreign error type: report it as a failed lookup
                wrapped = socket.gaierror(socket.EAI_FAIL, f"resolver raised {error!r}")
                wrapped.__cause__ = error
                error = wrapped
            self.errors[family] = error
            self._failed_order.append(family)
            return []
        answers = list(task.result())
        if not answers:
            self.errors[family] = socket.gaierror(
                socket.EAI_NONAME, f"no {_RECORD.get(family, family)} record"
            )
            self._failed_order.append(family)
        self.answers[family] = answers
        return answers

    async def _wait(self, tasks: set[asyncio.Future[Sequence[T]]], deadline: float | None) -> bool:
        """Wait until one of ``tasks`` is done; False when the deadline passed first."""
        loop = asyncio.get_running_loop()
        timeout = None if deadline is None else max(0.0, deadline - loop.time())
        done, _ = await asyncio.wait(tasks, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        return bool(done)

    async def first(
        self,
        resolution_delay: float = RESOLUTION_DELAY,
        deadline: float | None = None,
        prefer: socket.AddressFamily = socket.AF_INET6,
    ) -> list[T] | None:
        """Wait until racing may start (RFC 8305 §3); return the answers so far.

        - a positive answer of ``prefer`` (AAAA): at once, with whatever else is in;
        - a positive answer of another family first: wait up to ``resolution_delay`` for
          ``prefer``, then start with what there is;
        - negative answers: keep waiting for the others (no delay).
        Empty list: every lookup failed. ``None``: ``deadline`` (loop time) passed first.
        """
        preferred = self._tasks.get(prefer)
        found: list[T] = []
        while self.pending:
            if not await self._wait(self.pending, deadline):
                return None
            for task in [t for t in self._tasks.values() if t in self.pending and t.done()]:
                found.extend(self._collect(task))  # in `families` order: AAAA first
            if self.answers.get(prefer):
                return found
            if found:
                if preferred is not None and preferred in self.pending:
                    loop = asyncio.get_running_loop()
                    until = loop.time() + resolution_delay
                    if deadline is not None:
                        until = min(until, deadline)
                    if await self._wait({preferred}, until):
                        found[:0] = self._collect(preferred)  # preferred family first
                return found
        return found

    async def next_late(self) -> list[T] | None:
        """The next positive answer still to come; ``None`` when no lookup is left."""
        while self.pending:
            await self._wait(self.pending, None)
            task = next(t for t in self.pending if t.done())
            found = self._collect(task)
            if found:
                return found
        return None

    def late(self) -> _LateAnswers[T]:
        """An async iterator of the answers still to come."""
        return _LateAnswers(self)

    def error(self, host: str) -> NameResolutionError:
        """The error for a name that resolved to nothing (after every lookup failed)."""
        last = self._failed_order[-1] if self._failed_order else None
        last_error = self.errors.get(last) if last is not None else None
        code = socket.EAI_NONAME
        if isinstance(last_error, socket.gaierror) and isinstance(last_error.errno, int):
            code = last_error.errno
        detail = "; ".join(
            f"{_RECORD.get(family, str(family))}: {error}" for family, error in self.errors.items()
        )
        result = NameResolutionError(code, f"cannot resolve {host!r}: {detail or 'no answer'}")
        causes = [e for e in self.errors.values() if isinstance(e, Exception)]
        if causes:
            result.__cause__ = ExceptionGroup("name lookups", causes)
        return result

    async def aclose(self) -> None:
        """Cancel the lookups still running and wait until they are gone (nothing leaks)."""
        for task in self._tasks.values():
            if task.done():
                if not task.cancelled():
                    task.exception()  # mark retrieved: no "exception never retrieved" noise
            else:
                task.cancel()
        running = [t for t in self._tasks.values() if not t.done()]
        if running:
            await asyncio.wait(running)
        self.pending.clear()


class _LateAnswers(Generic[T]):
    """``more_destinations`` for the driver: each late positive answer, as it comes."""

    def __init__(self, lookups: FamilyLookups[T]) -> None:
        self._lookups = lookups

    def __aiter__(self) -> _LateAnswers[T]:
        return self

    async def __anext__(self) -> list[T]:
        found = await self._lookups.next_late()
        if found is None:
            raise StopAsyncIteration
        return found


def check_host(host: object) -> str:
    if isinstance(host, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        return str(host)
    if not isinstance(host, str):
        raise InvalidArgument(f"host must be a string, not {type(host).__name__} {shown(host)}")
    if not host.strip():
        raise InvalidArgument("host is empty")
    return host


def check_port(port: object) -> int:
    """A port number 1..65535: an int, or a string of at most 5 ASCII digits (no '²', no '٣',
    no 5,000-digit numbers)."""
    if isinstance(port, str) and port.isascii() and port.isdigit() and len(port) <= 5:
        port = int(port)
    if isinstance(port, bool) or not isinstance(port, int):
        raise InvalidArgument(f"port {shown(port)} is not an integer")
    if not 0 < port < 65536:
        raise InvalidArgument(f"port {shown(port)} is out of range 1..65535")
    return port


def ip_literal(host: str) -> tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, int] | None:
    """(ip, scope_id) when ``host`` is an IP literal (``[...]`` allowed), else ``None``."""
    text = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        return parse_ip(text)
    except InvalidArgument:
        return None
