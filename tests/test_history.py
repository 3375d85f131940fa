"""PairHistory: RFC 6298 smoothing, expiry, ranks, LRU bound, path level, thread safety."""

from __future__ import annotations

import ipaddress
import socket
import threading

import pytest

from aioconnlist import DEFAULT_HISTORY, InvalidArgument, PairHistory
from aioconnlist._core.addresses import parse_address
from aioconnlist._core.history import FAILURE_RANK, SUCCESS_RANK
from aioconnlist._core.pairs import LocalAddress, Pair
from aioconnlist._core.rfc6724 import as_int128

ip = ipaddress.ip_address
S6 = ip("2001:db8:1::10")
S4 = ip("192.0.2.10")


def kpair(dest: str, kernel: str | None = None) -> Pair:
    """A kernel-choice pair to ``dest``; the kernel source defaults to S4/S6 by family."""
    d = parse_address(dest)
    ks = (S4 if d.ip.version == 4 else S6) if kernel is None else ip(kernel)
    return Pair(None, d, ks)


A = kpair("[2001:db8::a]:443")
B = kpair("[2001:db8::b]:443")
C = kpair("[2001:db8::c]:443")
V4 = kpair("198.51.100.1:443")


def test_rfc6298_arithmetic_exact() -> None:
    h = PairHistory()
    h.record_success(A, 1.0, now=0.0)
    s = h.stats(A, 0.0)
    assert s is not None and (s.srtt, s.rttvar, s.rto, s.samples) == (1.0, 0.5, 3.0, 1)
    h.record_success(A, 2.0, now=1.0)  # rttvar = 3/4*0.5 + 1/4*|1-2|; srtt = 7/8*1 + 1/8*2
    s = h.stats(A, 1.0)
    assert s is not None and (s.srtt, s.rttvar) == (1.125, 0.625)
    h.record_success(A, 0.5, now=2.0)
    s = h.stats(A, 2.0)
    assert s is not None and (s.srtt, s.rttvar, s.samples) == (1.046875, 0.625, 3)
    assert h.rto(A, 2.0) == 1.046875 + 4 * 0.625


def test_rank_neutral_success_failure() -> None:
    h = PairHistory()
    assert h.rank(A, 0.0) == 0
    h.record_success(A, 0.010, now=0.0)
    h.record_success(B, 0.020, now=0.0)
    assert SUCCESS_RANK <= h.rank(A, 1.0) < h.rank(B, 1.0) < 0
    h.record_failure(A, "timeout", now=2.0)  # more recent than the success: wins
    assert h.rank(A, 3.0) >= FAILURE_RANK
    assert h.rto(A, 3.0) is None
    h.record_success(A, 0.010, now=4.0)  # and a later success wins back
    assert h.rank(A, 5.0) < 0
    assert h.rto(A, 5.0) is not None
    assert h.rank(C, 5.0) == 0


def test_rank_is_bucketed_int_and_capped() -> None:
    h = PairHistory()
    h.record_success(A, 1e6, now=0.0)  # absurd RTT still ranks as a success
    assert isinstance(h.rank(A, 0.0), int) and h.rank(A, 0.0) == -1
    h.record_success(B, 0.0, now=0.0)
    assert h.rank(B, 0.0) == SUCCESS_RANK


def test_failure_order_by_count_and_severity() -> None:
    h = PairHistory()
    h.record_failure(A, "refused", now=0.0)
    h.record_failure(B, "timeout", now=0.0)
    h.record_failure(C, "timeout", now=0.0)
    h.record_failure(C, "timeout", now=1.0)
    assert 0 < h.rank(A, 2.0) < h.rank(B, 2.0) < h.rank(C, 2.0)
    stats = h.stats(C, 2.0)
    assert stats is not None and stats.failures == 2 and stats.failure_kind == "timeout"


def test_soft_failure_is_evidence() -> None:
    h = PairHistory()
    h.record_failure(A, "soft", now=10.0)
    assert h.rank(A, 11.0) > 0
    s = h.stats(A, 11.0)
    assert s is not None and s.failure_kind == "soft" and s.last_failure == 10.0


def test_failure_expiry() -> None:
    h = PairHistory(failure_ttl=60.0)
    h.record_failure(A, "timeout", now=100.0)
    assert h.rank(A, 159.9) > 0
    assert h.rank(A, 160.0) == 0  # forgotten: the pair is tried again
    s = h.stats(A, 160.0)
    assert s is not None and s.failures == 0 and s.failure_kind is None
    h.record_failure(A, "timeout", now=161.0)  # the count restarts after expiry
    s = h.stats(A, 161.0)
    assert s is not None and s.failures == 1


def test_failure_expiry_uncovers_older_success() -> None:
    h = PairHistory(failure_ttl=60.0, success_ttl=3600.0)
    h.record_success(A, 0.01, now=0.0)
    h.record_failure(A, "refused", now=10.0)
    assert h.rank(A, 20.0) > 0
    assert h.rank(A, 70.0) < 0


def test_success_expiry_restarts_srtt() -> None:
    h = PairHistory(success_ttl=100.0)
    h.record_success(A, 1.0, now=0.0)
    assert h.rank(A, 99.0) < 0 and h.rto(A, 99.0) == 3.0
    assert h.rank(A, 100.0) == 0 and h.rto(A, 100.0) is None
    h.record_success(A, 4.0, now=150.0)  # first sample again, not a smoothed one
    s = h.stats(A, 150.0)
    assert s is not None and (s.srtt, s.rttvar, s.samples) == (4.0, 2.0, 1)


def test_bad_input() -> None:
    h = PairHistory()
    with pytest.raises(InvalidArgument, match="failure kind"):
        h.record_failure(A, "lost", now=0.0)  # type: ignore[arg-type]
    for rtt in (-1.0, float("nan"), float("inf"), "1"):
        with pytest.raises(InvalidArgument, match="rtt"):
            h.record_success(A, rtt, now=0.0)  # type: ignore[arg-type]
    for kwargs in ({"max_pairs": 0}, {"failure_ttl": 0}, {"success_ttl": -1}, {"max_paths": 1.5}):
        with pytest.raises(InvalidArgument):
            PairHistory(**kwargs)  # type: ignore[arg-type]
    assert len(h) == 0


def test_lru_bound() -> None:
    h = PairHistory(max_pairs=3)
    pairs = [kpair(f"198.51.100.{i}:80") for i in range(1, 6)]
    for i, p in enumerate(pairs[:3]):
        h.record_success(p, 0.01, now=float(i))
    h.record_failure(pairs[0], "refused", now=3.0)  # refreshes pairs[0]
    h.record_success(pairs[3], 0.01, now=4.0)  # evicts pairs[1], the least recent
    assert len(h) == 3
    assert h.stats(pairs[1], 5.0) is None
    assert [s.key[1] for s in h.snapshot(5.0)] == ["198.51.100.3", "198.51.100.1", "198.51.100.4"]
    for i, p in enumerate(pairs * 10):
        h.record_failure(p, "error", now=6.0 + i)
    assert len(h) == 3


def test_keys_and_source_identity() -> None:
    h = PairHistory()
    bound = Pair(LocalAddress(S6), A.destination, ip("2001:db8:1::99"))
    h.record_success(bound, 0.5, now=0.0)
    # the kernel pair whose kernel source is S6 is the same (source, destination) pair
    assert h.rank(A, 0.0) < 0
    other_port = kpair("[2001:db8::a]:80")
    assert h.rank(other_port, 0.0) == 0
    unknown = Pair(None, A.destination, None)
    h.record_failure(unknown, "unreachable", now=0.0)
    s = h.stats(unknown, 0.0)
    assert s is not None and s.key == ("", "2001:db8::a", 443) == unknown.key
    assert h.rank(A, 0.0) < 0  # a different key: unaffected


def _black_hole(h: PairHistory, pairs: list[Pair], now: float, kind: str = "timeout") -> None:
    for p in pairs:
        h.record_failure(p, kind, now)  # type: ignore[arg-type]


def test_path_demoted() -> None:
    h = PairHistory(failure_ttl=600.0, retry_after=None)  # expiry only
    v6 = socket.AF_INET6
    h.record_success(V4, 0.02, now=2.0)
    h.record_failure(A, "timeout", now=1.0)
    assert not h.path_demoted(S6, v6, 2.0)  # one destination: maybe that host
    h.record_failure(A, "soft", now=1.5)
    assert not h.path_demoted(S6, v6, 2.0)  # still one distinct destination
    h.record_failure(B, "soft", now=2.0)
    assert h.path_demoted(S6, v6, 3.0)
    assert h.demoted_paths(3.0) == {(S6, v6)}
    assert not h.path_demoted(S6, socket.AF_INET, 3.0)
    assert not h.path_demoted(ip("2001:db8:1::11"), v6, 3.0)  # another source
    assert not h.path_demoted(None, v6, 3.0)
    # expires with the failures (the earliest at 1.5 -> demoted until 601.5)
    assert h.path_demoted(S6, v6, 601.0)
    assert not h.path_demoted(S6, v6, 601.5)


def test_path_needs_other_family_success() -> None:
    h = PairHistory(failure_ttl=100.0)
    _black_hole(h, [A, B, C], now=0.0)
    assert not h.path_demoted(S6, socket.AF_INET6, 1.0)  # maybe the whole network is down
    h.record_success(V4, 0.01, now=2.0)
    assert h.path_demoted(S6, socket.AF_INET6, 3.0)
    assert not h.path_demoted(S6, socket.AF_INET6, 100.0)  # failures at 0 expired


def test_path_other_family_success_expires() -> None:
    h = PairHistory(failure_ttl=100.0)
    h.record_success(V4, 0.01, now=0.0)
    _black_hole(h, [A, B], now=50.0)
    assert h.path_demoted(S6, socket.AF_INET6, 60.0)
    assert not h.path_demoted(S6, socket.AF_INET6, 100.0)  # IPv4 success no longer recent


def test_path_cleared_by_later_success_of_the_family() -> None:
    h = PairHistory()
    h.record_success(V4, 0.01, now=0.0)
    _black_hole(h, [A, B], now=1.0)
    assert h.path_demoted(S6, socket.AF_INET6, 2.0)
    h.record_success(C, 0.03, now=3.0)  # IPv6 through S6 works again
    assert not h.path_demoted(S6, socket.AF_INET6, 4.0)
    _black_hole(h, [A], now=5.0)  # one new black hole after the success: not enough
    assert not h.path_demoted(S6, socket.AF_INET6, 6.0)
    _black_hole(h, [B], now=7.0)
    assert h.path_demoted(S6, socket.AF_INET6, 8.0)


def test_path_ignores_fast_failures_and_unknown_source() -> None:
    h = PairHistory()
    h.record_success(V4, 0.01, now=0.0)
    _black_hole(h, [A, B, C], now=1.0, kind="refused")
    _black_hole(h, [A, B, C], now=1.0, kind="unreachable")
    assert not h.path_demoted(S6, socket.AF_INET6, 2.0)
    unknown = [Pair(None, p.destination, None) for p in (A, B)]
    _black_hole(h, unknown, now=3.0)
    assert h.path_demoted(None, socket.AF_INET6, 4.0)  # keyed as "" like Pair.key
    assert not h.path_demoted(S6, socket.AF_INET6, 4.0)


def test_path_ipv4_broken() -> None:
    h = PairHistory()
    h.record_success(A, 0.01, now=0.0)
    _black_hole(h, [V4, kpair("203.0.113.7:443")], now=1.0)
    assert h.path_demoted(S4, socket.AF_INET, 2.0)
    assert not h.path_demoted(S6, socket.AF_INET6, 2.0)


def test_clear_repr_snapshot_bool() -> None:
    h = PairHistory(max_pairs=10)
    assert bool(h) is True  # empty, but not falsy like None
    h.record_success(A, 0.25, now=0.0)
    h.record_failure(B, "refused", now=0.0)
    assert "pairs=2/10" in repr(h)
    snap = h.snapshot(1.0)
    assert [s.key for s in snap] == [A.key, B.key]
    assert snap[0].srtt == 0.25 and snap[0].rank < 0 < snap[1].rank
    h.clear()
    assert len(h) == 0 and h.snapshot(1.0) == [] and h.rank(A, 1.0) == 0
    assert isinstance(DEFAULT_HISTORY, PairHistory)


def test_ranks_bulk_matches_rank() -> None:
    h = PairHistory()
    h.record_success(A, 0.1, now=0.0)
    h.record_failure(B, "soft", now=0.0)
    assert h.ranks([A, B, C], 1.0) == [h.rank(A, 1.0), h.rank(B, 1.0), h.rank(C, 1.0)]
    assert PairHistory().ranks([A, B], 0.0) == [0, 0]


def test_thread_safety() -> None:
    h = PairHistory(max_pairs=64)
    pairs = [kpair(f"198.51.100.{i}:443") for i in range(1, 41)]  # 40 pairs, all fit
    threads_n, rounds = 16, 300
    barrier = threading.Barrier(threads_n)
    errors: list[BaseException] = []

    def hammer(t: int) -> None:
        try:
            barrier.wait(timeout=10)
            for r in range(rounds):
                p = pairs[(t + r) % len(pairs)]
                h.record_success(p, 1.0, now=float(r))
                h.record_failure(p, "soft", now=float(r))
                h.rank(p, float(r))
                h.path_demoted(S4, socket.AF_INET, float(r))
                h.rto(p, float(r))
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=hammer, args=(t,)) for t in range(threads_n)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=30)
    assert not errors
    assert not any(th.is_alive() for th in threads)
    snap = h.snapshot(float(rounds))
    assert len(snap) == len(pairs)
    # every success was counted exactly once, and a constant RTT smooths to itself
    assert sum(s.samples for s in snap) == threads_n * rounds
    assert all(s.srtt == 1.0 for s in snap)


def test_evidence_sources_names_the_sources_of_successes_and_refuses_with_a_failure() -> None:
    """What a process's first plans ask before reading the machine's addresses: the sources
    through which only successes are known for the destinations asked (none: an empty set),
    and None once one of them has a failure, even an old one."""
    h = PairHistory()
    dest = lambda p: p.destination._int128  # noqa: E731
    assert h.evidence_sources([dest(A), dest(V4)]) == frozenset()
    h.record_success(A, 0.01, now=0.0)
    h.record_success(V4, 0.01, now=0.0)
    h.record_failure(B, "refused", now=0.0)
    assert h.evidence_sources([dest(A), dest(V4)]) == {as_int128(S6), as_int128(S4)}
    assert h.evidence_sources([dest(C)]) == frozenset()
    assert h.evidence_sources([dest(A), dest(B)]) is None
    h.record_success(B, 0.01, now=1.0)  # a success after it: the failure is still known
    assert h.evidence_sources([dest(B)]) is None
