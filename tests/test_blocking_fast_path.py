"""The blocking facade's single-pair fast path (no deadline, no observer: one poll(2) on one
descriptor, SO_ERROR read only on trouble) takes the decisions of the general path: the same
result, the same history update, the same error, the same descriptors."""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from aioconnlist import ConnectError, PairHistory, RaceEvent, blocking
from aioconnlist._core.addresses import parse_address
from aioconnlist._core.options import make_options
from aioconnlist._core.pairs import Pair
from aioconnlist._core.race import delay_after
from aioconnlist._drivers import poll
from tests.support import BlackHole, Listener, fd_count, has_ipv6_loopback, refused_address

HAVE_IPV6 = has_ipv6_loopback()


@pytest.fixture
def listener() -> Iterator[Listener]:
    server = Listener()
    yield server
    server.close()


@pytest.fixture(autouse=True)
def warm(listener: Listener) -> None:
    """Option defaults learned, sources cached, before descriptors are counted."""
    for family in (socket.AF_INET, socket.AF_INET6):
        with socket.socket(family) as s:
            blocking.connect_by_list(s, [listener.address], local_addresses=None, history=None)
    blocking.create_connection([listener.address], local_addresses=None, history=None).close()
    for conn in listener.accept_all():
        conn.close()


def nonblocking(sock: socket.socket) -> bool:
    return bool(fcntl.fcntl(sock.fileno(), fcntl.F_GETFL) & os.O_NONBLOCK)


def stats_of(history: PairHistory) -> list[tuple[Any, ...]]:
    """What a race filed in ``history``: per pair, its key, samples, failures and kind."""
    return [
        (s.key, s.samples, s.srtt is not None, s.failures, s.failure_kind)
        for s in history.snapshot(time.monotonic())
    ]


Call = Callable[[list[Any], dict[str, Any]], tuple[Any, Any]]


def by_list(family: int) -> Call:
    """connect_by_list on a fresh socket of ``family``: (source, peer), family."""

    def call(addresses: list[Any], options: dict[str, Any]) -> tuple[Any, Any]:
        sock = socket.socket(family)
        try:
            local, remote = blocking.connect_by_list(sock, addresses, **options)
            assert not nonblocking(sock) and sock.gettimeout() is None  # the caller's mode
            assert (local, remote) == (sock.getsockname(), sock.getpeername())
            return (local[0], remote), sock.family
        finally:
            sock.close()

    return call


def create(addresses: list[Any], options: dict[str, Any]) -> tuple[Any, Any]:
    conn = blocking.create_connection(addresses, **options)
    try:
        assert not nonblocking(conn) and conn.gettimeout() is None
        return (conn.getsockname()[0], conn.getpeername()), conn.family
    finally:
        conn.close()


CALLS = {
    "connect_by_list AF_INET": by_list(socket.AF_INET),
    "connect_by_list dual-stack": by_list(socket.AF_INET6),
    "create_connection": create,
}


def both_paths(
    call: Call, addresses: list[Any]
) -> tuple[list[tuple[Any, Any, PairHistory]], list[RaceEvent]]:
    """The same call twice, each with a history of its own: the fast path (no observer) and
    the general path (an ``on_event`` observer makes the driver run a `Race`)."""
    events: list[RaceEvent] = []
    results = []
    for extra in ({}, {"on_event": events.append}):
        history = PairHistory()
        options = {"local_addresses": None, "history": history, **extra}
        before = fd_count()
        try:
            result: Any = call(addresses, options)
        except ConnectError as exc:
            result = exc
        assert fd_count() == before  # nothing left open, on either path
        results.append((result, extra, history))
    return results, events


@pytest.mark.parametrize("which", list(CALLS))
def test_a_success_is_the_general_paths(listener: Listener, which: str) -> None:
    if "dual" in which and not HAVE_IPV6:
        pytest.skip("no IPv6 on this machine")
    results, events = both_paths(CALLS[which], [listener.address])
    (fast, _, fast_history), (general, _, general_history) = results
    assert fast == general  # the same source, peer and family
    assert [e.kind for e in events] == ["started", "won"]  # (the general path did run)
    assert stats_of(fast_history) == stats_of(general_history)
    [(key, samples, has_rtt, failures, _kind)] = stats_of(fast_history)
    assert key[1:] == listener.address and samples == 1 and has_rtt and failures == 0


@pytest.mark.parametrize("which", list(CALLS))
def test_a_refusal_is_the_general_paths(which: str) -> None:
    # Loopback refuses after connect() returned EINPROGRESS: poll(2) reports POLLERR|POLLHUP
    # and SO_ERROR must be read to tell it (a POLLOUT alone would mean connected).
    if "dual" in which and not HAVE_IPV6:
        pytest.skip("no IPv6 on this machine")
    address = refused_address()
    results, events = both_paths(CALLS[which], [address])
    assert [e.kind for e in events] == ["started", "failed"]
    (fast, _, fast_history), (general, _, general_history) = results
    assert isinstance(fast, ConnectError) and isinstance(general, ConnectError)
    assert type(fast) is type(general) and isinstance(fast, ConnectionRefusedError)
    assert fast.errno == general.errno == errno.ECONNREFUSED
    assert str(fast) == str(general)
    assert [(a.outcome, a.index, a.pair) for a in fast.attempts] == [
        (a.outcome, a.index, a.pair) for a in general.attempts
    ]
    assert stats_of(fast_history) == stats_of(general_history)
    [(key, samples, _has_rtt, failures, kind)] = stats_of(fast_history)
    assert key[1:] == address and samples == 0 and failures == 1 and kind == "refused"


def test_the_callers_socket_is_as_it_was_after_a_refusal() -> None:
    with socket.socket() as sock:
        sock.settimeout(3.0)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        fd, before = sock.fileno(), fd_count()
        with pytest.raises(ConnectionRefusedError):
            blocking.connect_by_list(sock, [refused_address()], local_addresses=None, history=None)
        assert sock.fileno() == fd and fd_count() == before
        assert sock.gettimeout() == 3.0 and nonblocking(sock)  # (a timeout: O_NONBLOCK set)
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        assert sock.getsockname() == ("0.0.0.0", 0)  # unbound again: a fresh socket took it


def silent_wait(history: PairHistory | None, **options: Any) -> tuple[float, float]:
    """(seconds `_first_wait` waited on a black-holed connect, the backup delay the general
    path computes for it)."""
    hole = BlackHole()
    try:
        endpoint = parse_address(hole.address)
        pair = Pair(None, endpoint, endpoint.ip)
        if history is not None:
            history.record_success(pair, 0.05, time.monotonic())  # rto = 0.05 + 4 * 0.025
        opts = make_options(history=history, **options)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setblocking(False)
            origin = time.monotonic()
            expected = delay_after(
                pair, origin, opts.attempt_delay, opts.min_attempt_delay, opts.history
            )
            assert sock.connect_ex(hole.address) == errno.EINPROGRESS
            start = time.monotonic()
            assert poll._first_wait(sock, pair, opts, origin) == -1  # silent: the race's turn
            return time.monotonic() - start, expected
    finally:
        hole.close()


def test_a_silent_connect_waits_the_historys_backup_delay() -> None:
    # The first wait is min(min_attempt_delay, attempt_delay) = 10 ms; a pair with a known RTT
    # has a backup delay of its RTO (150 ms here), which must be waited in full - not 10 ms
    # (the first wait only), and not attempt_delay (10 s: the history not consulted).
    waited, expected = silent_wait(PairHistory(), min_attempt_delay=0.01, attempt_delay=10.0)
    assert 0.14 < expected < 0.16
    assert expected - 0.005 <= waited < 5.0


def test_a_silent_connect_without_history_waits_the_attempt_delay() -> None:
    waited, expected = silent_wait(None, min_attempt_delay=0.01, attempt_delay=0.3)
    assert expected == 0.3
    assert expected - 0.005 <= waited < 5.0


def test_without_backups_the_wait_is_not_cut_short(listener: Listener) -> None:
    # backup_attempts=False and a single pair: nothing to stagger, so one wait until the
    # connect ends; on loopback it connects, the RTT is filed.
    history = PairHistory()
    with socket.socket() as sock:
        _local, remote = blocking.connect_by_list(
            sock, [listener.address], local_addresses=None, history=history, backup_attempts=False
        )
        assert remote == listener.address == sock.getpeername()
    [(_key, samples, has_rtt, _failures, _kind)] = stats_of(history)
    assert samples == 1 and has_rtt


@pytest.mark.parametrize(
    ("good", "bad"),
    [({"sort": True}, {"sort": 1}), ({"interleave": 1}, {"interleave": True})],
    ids=["sort", "interleave"],
)
def test_validated_options_are_reused_only_for_the_same_types(
    listener: Listener, good: dict[str, Any], bad: dict[str, Any]
) -> None:
    # 1 == True: a cache keyed on values alone would hand the valid options to the bad call.
    for _ in range(2):  # the second call of each is answered by the facade's cache
        with socket.socket() as sock:
            blocking.connect_by_list(sock, [listener.address], local_addresses=None, **good)
        blocking.create_connection([listener.address], local_addresses=None, **good).close()
        with socket.socket() as sock, pytest.raises(ConnectError) as caught:
            blocking.connect_by_list(sock, [listener.address], local_addresses=None, **bad)
        assert caught.value.errno == errno.EINVAL and next(iter(bad)) in str(caught.value)
        with pytest.raises(ConnectError):
            blocking.create_connection([listener.address], local_addresses=None, **bad)
    with socket.socket() as sock, pytest.raises(TypeError, match="sortt"):
        blocking.connect_by_list(sock, [listener.address], local_addresses=None, sortt=True)


def test_a_success_changes_the_history_versions_as_its_ranks_say() -> None:
    # Every connect files its RTT (the fast path included): a sample in the same RTT bucket
    # must leave every plan valid, one in another bucket changes the RTT version only, and a
    # success after a failure changes the order. The rank before and after is computed inline
    # for a pair with no failure on record; these cases tell if it ever differs from rank().
    history = PairHistory()
    endpoint = parse_address(("127.0.0.1", 80))
    pair = Pair(None, endpoint, endpoint.ip)
    t = 1000.0
    history.record_success(pair, 0.010, t)  # the family's first success: the order changes
    assert history.rank(pair, t) == -1_000_000 + 100  # bucket of 10 ms, 0.1 ms per bucket
    first = history.order_version
    history.record_success(pair, 0.0101, t + 1)  # srtt 10.0125 ms: the same bucket
    assert history.rank(pair, t + 1) == -1_000_000 + 100
    assert history.order_version == first  # no plan made earlier goes stale
    history.record_success(pair, 0.5, t + 2)  # srtt 71.26 ms: another bucket
    assert history.rank(pair, t + 2) == -1_000_000 + 712
    moved = history.order_version
    assert moved[0] == first[0] and moved[1] != first[1]  # the RTT version only
    history.record_failure(pair, "refused", t + 3)
    assert history.rank(pair, t + 3) > 0
    failed = history.order_version
    history.record_success(pair, 0.010, t + 4)  # after a failure: the class changes
    assert history.rank(pair, t + 4) < 0
    assert history.order_version[0] != failed[0]
    history.record_success(pair, 0.010, t + 3 + 2 * history.success_ttl)  # the old one expired
    assert history.rank(pair, t + 3 + 2 * history.success_ttl) == -1_000_000 + 100


def test_a_success_in_the_highest_rtt_bucket_keeps_the_history_versions() -> None:
    # An RTT beyond the highest bucket (100 s) ranks in that bucket: a second such sample, or
    # one that moves the srtt within it, changes no version (the inline ranks cap as rank()).
    history = PairHistory()
    endpoint = parse_address(("127.0.0.1", 80))
    pair = Pair(None, endpoint, endpoint.ip)
    t = 1000.0
    history.record_success(pair, 150.0, t)
    assert history.rank(pair, t) == -1
    first = history.order_version
    history.record_success(pair, 300.0, t + 1)  # srtt 168.75 s: still the highest bucket
    assert history.rank(pair, t + 1) == -1
    assert history.order_version == first
    history.record_success(pair, 0.0, t + 2)  # srtt 147.66 s: still there
    assert history.order_version == first
    for i in range(80):  # down to below 100 s: another bucket, the RTT version only
        history.record_success(pair, 0.0, t + 3 + i)
    assert history.rank(pair, t + 83) < -1
    moved = history.order_version
    assert moved[0] == first[0] and moved[1] != first[1]
