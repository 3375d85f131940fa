"""A hypothesis fuzz of every public entry point: hostile inputs, option values and (for the
blocking facade) socket states.

The oracle, for every call: it returns a connected socket, or raises a `ConnectError`
subclass, or a ``TypeError`` for an unknown option; and it leaves no descriptor, task or
selector entry behind. Traffic goes to loopback only: every generated address that would
parse to anything else is discarded before the call.

A few examples per entry point run in the suite; ``pytest --fuzz N tests/test_fuzz.py`` (or
``AIOCONNLIST_FUZZ=N``) runs N per entry point.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import math
import os
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import aioconnlist
import aioconnlist.blocking
import aioconnlist.compat
from aioconnlist import ConnectError, PairHistory
from aioconnlist._core.addresses import Endpoint, parse_address
from tests.support import BlackHole, Listener, fd_count, has_ipv6_loopback, refused_address

pytestmark = pytest.mark.fuzz

HAS_V6 = has_ipv6_loopback()


# --------------------------------------------------------------------------- servers


class _Servers:
    def __init__(self) -> None:
        self.listener = Listener("127.0.0.1")
        self.hole = BlackHole("127.0.0.2")
        self.refused = refused_address("127.0.0.3")
        self.listener6 = Listener("::1") if HAS_V6 else None

    def drain(self) -> None:
        for lst in (self.listener, self.listener6):
            if lst is not None:
                for s in lst.accept_all():
                    s.close()

    def close(self) -> None:
        self.listener.close()
        self.hole.close()
        if self.listener6 is not None:
            self.listener6.close()


@pytest.fixture(scope="module")
def servers() -> Iterator[_Servers]:
    found = _Servers()
    yield found
    found.close()


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    new = asyncio.new_event_loop()
    yield new
    new.close()


# --------------------------------------------------------------------------- strategies

_PORTS = st.one_of(
    st.integers(-(2**70), 2**70),
    st.sampled_from([0, 1, 65535, 65536, True, 80.0, "80", "²", "9" * 5000, None]),
)
_TEXT = st.text(st.characters(codec="utf-8"), max_size=40)


def _address(servers: _Servers, hole: bool) -> st.SearchStrategy[object]:
    good = [servers.listener.address, servers.refused, f"127.0.0.3:{servers.refused[1]}"]
    if hole:
        good.append(servers.hole.address)
    if servers.listener6 is not None:
        good += [servers.listener6.address, f"[::1]:{servers.listener6.port}"]
    junk = st.one_of(
        _TEXT,
        st.binary(max_size=10),
        st.none(),
        st.floats(),
        st.integers(),
        st.tuples(st.sampled_from(["127.0.0.1", "::1", "::ffff:127.0.0.1", "fe80::1"]), _PORTS),
        st.tuples(st.just("::1"), _PORTS, st.integers(-1, 2**33), st.integers(-1, 2**33)),
        st.tuples(_TEXT, _PORTS),
        st.lists(st.integers(0, 2**16), max_size=5),
        st.builds(lambda p: (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", p)), _PORTS),
        st.sampled_from(["[::1]", "[127.0.0.1]:80", "127.0.0.1:", ":80", "[::1%lo]:80", "[::1"]),
    )
    return st.one_of(st.sampled_from(good), junk)


def _numeric_addresses(servers: _Servers, hole: bool) -> st.SearchStrategy[object]:
    """Addresses with no host name in them: for `blocking.create_connection`, which resolves a
    ``(host, port)`` the way `socket.create_connection` does (a random name would be a DNS
    query leaving the machine)."""
    good = [servers.listener.address, servers.refused]
    if hole:
        good.append(servers.hole.address)
    if servers.listener6 is not None:
        good.append(servers.listener6.address)
    literal = st.sampled_from(["127.0.0.1", "127.0.0.3", "::1", "::ffff:127.0.0.1"])
    item = st.one_of(
        st.sampled_from(good),
        st.tuples(literal, _PORTS),
        st.none(),
        st.integers(),
        st.floats(),
        st.lists(st.integers(0, 2**16), max_size=3),
    )
    return st.one_of(item, st.lists(item, max_size=5))


def _addresses(servers: _Servers, hole: bool) -> st.SearchStrategy[object]:
    return st.one_of(
        st.lists(_address(servers, hole), max_size=6),
        st.tuples(_address(servers, hole), _address(servers, hole)),
        _address(servers, hole),
        st.just(iter([servers.listener.address])),
    )


def _raising(_event: object) -> None:
    raise RuntimeError("a broken on_event callback")


_OPTION_VALUES: dict[str, st.SearchStrategy[object]] = {
    "local_addresses": st.one_of(
        st.sampled_from(["auto", None, [], "eth0", ["127.0.0.1"], ["::1"], [("127.0.0.1", 0)]]),
        st.lists(st.sampled_from(["127.0.0.1", "127.0.0.5", "::1", "x", 7, ("127.0.0.1", 9)])),
    ),
    "attempt_delay": st.one_of(
        st.sampled_from([0.01, 0.05, math.inf, 0, -1, math.nan, "1", None, True]), st.floats()
    ),
    "min_attempt_delay": st.sampled_from([0.01, 0.1, 0.001, math.nan, "x"]),
    "interleave": st.one_of(st.integers(-2, 3), st.sampled_from([True, 1.5, None])),
    "sort": st.sampled_from([True, False, 1, None]),
    "history": st.sampled_from([None, "fresh", {}, 1]),
    "on_event": st.sampled_from([None, _raising, print, 5]),
    "bogus_option": st.just(1),
}
_TIMEOUTS = st.one_of(
    st.sampled_from([0, 0.001, 0.02, 0.05, -1, math.nan, math.inf, "1", True]),
    st.floats(0, 0.1),
)


@st.composite
def _options(draw: st.DrawFn) -> dict[str, Any]:
    names = draw(st.sets(st.sampled_from(sorted(_OPTION_VALUES)), max_size=4))
    options = {name: draw(_OPTION_VALUES[name]) for name in sorted(names)}
    if options.get("history") == "fresh":
        options["history"] = PairHistory()
    # a deadline always: a black hole without one waits for the kernel's ~130 s
    options["timeout"] = draw(_TIMEOUTS)
    return options


def _bounded(options: dict[str, Any]) -> bool:
    """Whether a black hole could make the call wait longer than a moment."""
    timeout = options.get("timeout")
    return (
        isinstance(timeout, (int, float)) and not isinstance(timeout, bool) and 0 <= timeout <= 0.1
    )


def _loopback_only(addresses: object) -> None:
    """Discard the example if any address would parse to a non-loopback destination."""
    items = addresses if isinstance(addresses, (list, tuple)) else [addresses]
    if isinstance(addresses, tuple) and len(addresses) in (2, 4, 5):
        items = [*items, addresses]  # the tuple may be read as one address
    for item in items:
        try:
            endpoint = parse_address(item)
        except Exception:
            continue
        assume(endpoint.ip.is_loopback)


# --------------------------------------------------------------------------- the oracle


def _selector_entries(loop: asyncio.AbstractEventLoop) -> int:
    selector = getattr(loop, "_selector", None)
    return 0 if selector is None else len(selector.get_map())


CALL_SHAPE_ERRORS = ("unknown option", "bogus", "is required", "not both", "needs port=")


def _check_outcome(result: object, error: BaseException | None) -> None:
    if error is None:
        assert isinstance(result, socket.socket), result
        try:
            result.getpeername()  # connected
        finally:
            result.close()
        return
    if isinstance(error, TypeError) and not isinstance(error, ConnectError):
        # a call of the wrong shape, as Python's own TypeError for one: an unknown option, or
        # what to connect to missing or given twice (open_connection(None), host= and a list)
        assert any(what in str(error) for what in CALL_SHAPE_ERRORS), repr(error)
        return
    assert isinstance(error, ConnectError), repr(error)


def _run_async(
    loop: asyncio.AbstractEventLoop, servers: _Servers, call: Any, *args: Any, **kwargs: Any
) -> None:
    async def main() -> tuple[object, BaseException | None, int]:
        tasks_before = len(asyncio.all_tasks())
        try:
            result = await call(*args, **kwargs)
        except Exception as exc:
            return None, exc, tasks_before
        if isinstance(result, tuple) and len(result) == 2:  # streams / (transport, protocol)
            transport = result[0] if isinstance(result[0], asyncio.BaseTransport) else None
            if transport is None:
                transport = result[1].transport  # (reader, writer)
            sock = transport.get_extra_info("socket")
            assert sock is not None and sock.getpeername()
            transport.close()
            await asyncio.sleep(0)  # the transport closes its socket on the next turn
            return None, None, tasks_before
        return result, None, tasks_before

    fds = fd_count()
    entries = _selector_entries(loop)
    result, error, tasks_before = loop.run_until_complete(main())
    if result is not None or error is not None:
        _check_outcome(result, error)
    servers.drain()
    assert len(asyncio.all_tasks(loop)) <= tasks_before
    assert _selector_entries(loop) == entries
    assert fd_count() == fds


#: examples per entry point: a few in the suite, more with --fuzz N / AIOCONNLIST_FUZZ=N
EXAMPLES = int(os.environ.get("AIOCONNLIST_FUZZ") or 12)
_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)


# --------------------------------------------------------------------------- the async API


@_SETTINGS
@given(data=st.data())
def test_fuzz_connect_by_list(
    data: st.DataObject, loop: asyncio.AbstractEventLoop, servers: _Servers
) -> None:
    options = data.draw(_options())
    addresses = data.draw(_addresses(servers, _bounded(options)))
    _loopback_only(addresses)
    _run_async(loop, servers, aioconnlist.connect_by_list, addresses, **options)


@_SETTINGS
@given(data=st.data())
def test_fuzz_open_and_create_connection(
    data: st.DataObject, loop: asyncio.AbstractEventLoop, servers: _Servers
) -> None:
    options = data.draw(_options())
    addresses = data.draw(_addresses(servers, _bounded(options)))
    _loopback_only(addresses)
    if data.draw(st.booleans()):
        _run_async(loop, servers, aioconnlist.open_connection, addresses, **options)
    else:
        _run_async(
            loop, servers, aioconnlist.create_connection, asyncio.Protocol, addresses, **options
        )


class _Resolver:
    """Answers from a fixed table of loopback endpoints (no query leaves the machine)."""

    def __init__(self, answers: dict[int, list[object]], fail: bool) -> None:
        self.answers, self.fail = answers, fail

    async def resolve(self, host: str, port: int, family: socket.AddressFamily) -> list[object]:
        if self.fail:
            raise socket.gaierror(socket.EAI_NONAME, "no such name")
        await asyncio.sleep(0)
        return self.answers.get(int(family), [])


@_SETTINGS
@given(data=st.data())
def test_fuzz_connect_by_name(
    data: st.DataObject, loop: asyncio.AbstractEventLoop, servers: _Servers
) -> None:
    options = data.draw(_options())
    hole = _bounded(options)
    host = data.draw(st.one_of(_TEXT, st.sampled_from(["127.0.0.1", "[::1]", "::1"]), st.none()))
    port = data.draw(st.one_of(st.just(servers.listener.port), _PORTS))
    v4 = [Endpoint(ipaddress.IPv4Address("127.0.0.1"), servers.listener.port)]
    v4.append(Endpoint(ipaddress.IPv4Address("127.0.0.3"), servers.refused[1]))
    if hole:
        v4.append(Endpoint(ipaddress.IPv4Address("127.0.0.2"), servers.hole.address[1]))
    v6: list[object] = []
    if servers.listener6 is not None:
        v6.append(Endpoint(ipaddress.IPv6Address("::1"), servers.listener6.port))
    answers = {
        int(socket.AF_INET): data.draw(st.lists(st.sampled_from(v4), max_size=3)),
        int(socket.AF_INET6): data.draw(st.lists(st.sampled_from(v6 or v4), max_size=2)),
    }
    resolver = _Resolver(answers, data.draw(st.booleans()))
    extra: dict[str, object] = {"resolver": resolver}
    if data.draw(st.booleans()):
        extra["resolution_delay"] = data.draw(st.sampled_from([0, 0.01, -1, math.inf, "x"]))
    _run_async(loop, servers, aioconnlist.connect_by_name, host, port, **extra, **options)


@_SETTINGS
@given(data=st.data())
def test_fuzz_compat_start_connection(
    data: st.DataObject, loop: asyncio.AbstractEventLoop, servers: _Servers
) -> None:
    options = data.draw(_options())
    hole = _bounded(options)
    targets = [servers.listener.address, servers.refused] + ([servers.hole.address] if hole else [])
    infos = data.draw(
        st.lists(
            st.one_of(
                st.builds(
                    lambda a: (socket.AF_INET, socket.SOCK_STREAM, 6, "", a),
                    st.sampled_from(targets),
                ),
                _address(servers, hole),
            ),
            max_size=4,
        )
    )
    _loopback_only(infos)
    delay = data.draw(st.sampled_from([None, 0.01, 0.25, 0, -1]))
    family = data.draw(st.sampled_from([socket.AF_INET, socket.AF_INET6, socket.AF_UNIX, None]))
    factory = None
    if family is not None:

        def factory(_info: object) -> socket.socket:
            return socket.socket(family, socket.SOCK_STREAM)

    try:
        start = aioconnlist.compat.make_start_connection(**options)
    except (ConnectError, TypeError) as exc:
        _check_outcome(None, exc)
        return
    _run_async(loop, servers, start, infos, happy_eyeballs_delay=delay, socket_factory=factory)


# --------------------------------------------------------------------------- the blocking facade


_SOCKET_STATES = [
    "inet",
    "inet6",
    "inet6-v6only",
    "nonblocking",
    "timeout",
    "options",
    "bound",
    "listening",
    "connected",
    "closed",
    "udp",
    "unix",
    "none",
    "int",
]


@contextlib.contextmanager
def _caller_socket(state: str, servers: _Servers) -> Iterator[object]:
    made: list[socket.socket] = []

    def new(family: int = socket.AF_INET, kind: int = socket.SOCK_STREAM) -> socket.socket:
        s = socket.socket(family, kind)
        made.append(s)
        return s

    try:
        if state == "none":
            yield None
        elif state == "int":
            yield 0
        elif state.startswith("inet6"):
            if not HAS_V6:
                yield new()
            else:
                s = new(socket.AF_INET6)
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, state.endswith("v6only"))
                yield s
        elif state == "udp":
            yield new(kind=socket.SOCK_DGRAM)
        elif state == "unix":
            yield new(socket.AF_UNIX)
        else:
            s = new()
            if state == "nonblocking":
                s.setblocking(False)
            elif state == "timeout":
                s.settimeout(0.5)
            elif state == "options":
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            elif state == "bound":
                s.bind(("127.0.0.1", 0))
            elif state == "listening":
                s.bind(("127.0.0.1", 0))
                s.listen()
            elif state == "connected":
                s.connect(servers.listener.address)
            elif state == "closed":
                s.close()
            yield s
    finally:
        for s in made:
            s.close()


@_SETTINGS
@given(data=st.data())
def test_fuzz_blocking_connect_by_list(data: st.DataObject, servers: _Servers) -> None:
    options = data.draw(_options())
    timeout = options.pop("timeout")
    addresses = data.draw(_addresses(servers, _bounded({"timeout": timeout})))
    _loopback_only(addresses)
    state = data.draw(st.sampled_from(_SOCKET_STATES))
    reserved = data.draw(st.sampled_from([None, None, None, 0]))
    fds = fd_count()
    with _caller_socket(state, servers) as sock:
        fds_with_sock = fd_count()
        try:
            local, remote = aioconnlist.blocking.connect_by_list(
                sock,  # type: ignore[arg-type]
                addresses,  # type: ignore[arg-type]
                timeout,
                reserved,
                **options,
            )
        except Exception as exc:
            _check_outcome(None, exc)
        else:
            assert isinstance(sock, socket.socket)
            assert sock.getpeername() == remote and sock.getsockname() == local
        assert fd_count() == fds_with_sock
    servers.drain()
    assert fd_count() == fds


@_SETTINGS
@given(data=st.data())
def test_fuzz_blocking_create_connection(data: st.DataObject, servers: _Servers) -> None:
    options = data.draw(_options())
    timeout = options.pop("timeout")
    # timeout=inf: the returned socket's settimeout(inf) raises OverflowError, as
    # socket.create_connection's does (the stdlib's contract, kept by the drop-in)
    assume(not (isinstance(timeout, float) and math.isinf(timeout)))
    addresses = data.draw(_numeric_addresses(servers, _bounded({"timeout": timeout})))
    _loopback_only(addresses)
    fds = fd_count()
    try:
        result = aioconnlist.blocking.create_connection(
            addresses,  # type: ignore[arg-type]
            timeout,
            **options,
        )
    except TypeError as exc:  # a timeout that is no number: socket.create_connection's error
        if "timeout" not in str(exc):
            _check_outcome(None, exc)
    except OSError:
        pass  # socket.create_connection's drop-in: the stdlib's OSError classes (its contract)
    except Exception as exc:  # (judged by the oracle)
        _check_outcome(None, exc)
    else:
        _check_outcome(result, None)
    servers.drain()
    assert fd_count() == fds


# --------------------------------------------------------------------------- history


@_SETTINGS
@given(
    now=st.one_of(st.floats(), st.integers(-(2**64), 2**64)),
    rtt=st.one_of(st.floats(), st.integers(-5, 5)),
    kind=st.sampled_from(["refused", "unreachable", "timeout", "soft", "error", "bogus"]),
)
def test_fuzz_history(now: float, rtt: float, kind: str) -> None:
    """PairHistory methods take any ``now``/``rtt``: they record, or refuse with a ValueError
    (InvalidArgument); a refused call records nothing."""
    from aioconnlist._core.pairs import Pair

    hist = PairHistory()
    pair = Pair(None, Endpoint(ipaddress.IPv4Address("192.0.2.1"), 80))
    for call in (
        lambda: hist.record_failure(pair, kind, now),  # type: ignore[arg-type]
        lambda: hist.record_success(pair, rtt, now),
    ):
        size = len(hist)
        try:
            call()
        except ValueError:
            assert len(hist) == size
    for read in (
        lambda: hist.rank(pair, now),
        lambda: hist.rto(pair, now),
        lambda: hist.snapshot(now),
        lambda: hist.order_valid_until([pair], now),
    ):
        with contextlib.suppress(ValueError):
            read()
    if not math.isfinite(now):
        assert len(hist) == 0
