"""PairHistory: what past races taught about each (source, destination) pair and each path.

No clock of its own: every method takes ``now`` (seconds on one monotonic scale, e.g.
``loop.time()``). Thread-safe (one lock) and bounded (least recently recorded pairs go first).

Per pair (`Pair.key`: effective source or "" when unknown, destination ip, port):

- successes: smoothed RTT and RTT variance as RFC 6298 §2 (first sample ``srtt = r``,
  ``rttvar = r/2``; then ``rttvar = 3/4 rttvar + 1/4 |srtt - r|``, ``srtt = 7/8 srtt + 1/8 r``).
  They expire after ``success_ttl`` (default 1 hour: RTTs of a path change slowly, and moving
  to another network changes the source address, hence the key); the next sample after
  expiry starts afresh.
- failures: time and kind of the last one and the count of failures since the last success.
  They expire after ``failure_ttl`` (default 10 minutes: "forgotten after minutes, not
  never"), so a demoted pair is tried again and a repaired path is found again.

Per path (effective source, address family): the destinations that black-holed through it
("timeout" or "soft" failures) and its last success. `path_demoted` is True when at least two
distinct destinations black-holed through it within ``failure_ttl`` after its last success,
while the other family had a success (through any source) within ``failure_ttl``: the
network's IPv6 (or IPv4) is broken, not one host's.
"""

from __future__ import annotations

import ipaddress
import itertools
import math
import socket
import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal, get_args

from .addresses import IPAddress
from .errors import InvalidArgument
from .pairs import Pair
from .rfc6724 import as_int128

FailureKind = Literal["refused", "unreachable", "timeout", "soft", "error"]
FAILURE_KINDS: frozenset[str] = frozenset(get_args(FailureKind))
#: kinds that cost the attempt delay (a silent path) and count as path-level evidence
BLACK_HOLE_KINDS: frozenset[str] = frozenset({"timeout", "soft"})

# RFC 6298 §2 gains
ALPHA = 1 / 8
BETA = 1 / 4

#: rank bands. Success: SUCCESS_RANK + srtt in 100 µs buckets (capped below 0, so a success
#: is always negative). Failure: FAILURE_RANK + 4 * failures since last success + severity.
SUCCESS_RANK = -1_000_000
FAILURE_RANK = 1_000_000
_RTT_BUCKETS_PER_SECOND = 10_000
# among failed pairs, a quick refusal is cheaper to retry than a silent black hole
_SEVERITY: dict[str, int] = {"refused": 0, "unreachable": 1, "error": 1, "soft": 2, "timeout": 3}
_MAX_COUNTED_FAILURES = 1000
#: distinct black-holed destinations kept per path (the rule needs 2)
_BLACK_HOLES_PER_PATH = 16

_VERSIONS = itertools.count()

_PairKey = tuple[int, int, int]  # (source as int128 or -1, destination as int128, port)
_PathKey = tuple[int, int]  # (source as int128 or -1, address family)


def _source_int(ip: IPAddress | None) -> int:
    return -1 if ip is None else as_int128(ip)


def _pair_key(pair: Pair) -> _PairKey:
    key = pair._history_key
    if key is None:  # computed once per Pair: plans are cached and reused
        dest = pair.destination
        key = (_source_int(pair.effective_source), dest._int128, dest.port)
        object.__setattr__(pair, "_history_key", key)
    return key


@dataclass(slots=True)
class _PairRecord:
    key: tuple[str, str, int]  # Pair.key, for display
    srtt: float | None = None
    rttvar: float = 0.0
    samples: int = 0
    last_success: float | None = None
    last_failure: float | None = None
    failure_kind: FailureKind | None = None
    failures: int = 0  # since the last success (or since the last failure expired)


@dataclass(slots=True)
class _PathRecord:
    black_holes: OrderedDict[int, float] = field(default_factory=OrderedDict)  # dest -> time
    last_success: float | None = None


@dataclass(frozen=True, slots=True)
class PairStats:
    """A read-only view of one pair's record at time ``now`` (expired fields are None/0)."""

    key: tuple[str, str, int]
    rank: int
    srtt: float | None
    rttvar: float | None
    rto: float | None
    samples: int
    last_success: float | None
    last_failure: float | None
    failure_kind: FailureKind | None
    failures: int


class PairHistory:
    """Outcomes of past attempts per (source, destination) pair and per (source, family) path."""

    def __init__(
        self,
        *,
        max_pairs: int = 4096,
        failure_ttl: float = 600.0,
        success_ttl: float = 3600.0,
        max_paths: int = 256,
    ) -> None:
        for name, value in (("max_pairs", max_pairs), ("max_paths", max_paths)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidArgument(f"{name} must be a positive integer, not {value!r}")
        for name, ttl in (("failure_ttl", failure_ttl), ("success_ttl", success_ttl)):
            if (
                isinstance(ttl, bool)
                or not isinstance(ttl, (int, float))
                or math.isnan(ttl)
                or ttl <= 0
            ):
                raise InvalidArgument(f"{name} must be a positive number of seconds, not {ttl!r}")
        self.max_pairs = max_pairs
        self.max_paths = max_paths
        self.failure_ttl = float(failure_ttl)
        self.success_ttl = float(success_ttl)
        self._lock = threading.Lock()
        self._pairs: OrderedDict[_PairKey, _PairRecord] = OrderedDict()
        self._paths: OrderedDict[_PathKey, _PathRecord] = OrderedDict()
        self._family_success: dict[int, float] = {}  # family -> last success, any source
        # Change whenever a recorded outcome may change a plan's order (see `order_version`).
        # Drawn from one counter for all histories: a plan made with another history (even one
        # that had the same id) can never look valid for this one.
        self._order_version = next(_VERSIONS)
        self._rtt_version = next(_VERSIONS)

    # -- recording ---------------------------------------------------------------------------

    def _record(self, pair: Pair) -> _PairRecord:
        key = _pair_key(pair)
        rec = self._pairs.get(key)
        if rec is None:
            rec = self._pairs[key] = _PairRecord(pair.key)
            while len(self._pairs) > self.max_pairs:
                self._pairs.popitem(last=False)
                self._order_version = next(_VERSIONS)
        else:
            self._pairs.move_to_end(key)
        return rec

    def _path(self, pair: Pair) -> _PathRecord:
        key = (_pair_key(pair)[0], int(pair.destination.family))
        rec = self._paths.get(key)
        if rec is None:
            rec = self._paths[key] = _PathRecord()
            while len(self._paths) > self.max_paths:
                self._paths.popitem(last=False)
                self._order_version = next(_VERSIONS)
        else:
            self._paths.move_to_end(key)
        return rec

    def record_success(self, pair: Pair, rtt: float, now: float) -> None:
        """A connect on ``pair`` succeeded after ``rtt`` seconds."""
        _finite(now)
        if type(rtt) is not float or not 0.0 <= rtt < math.inf:  # (every connect comes here)
            if isinstance(rtt, bool) or not isinstance(rtt, (int, float)) or not rtt >= 0:
                raise InvalidArgument(f"rtt must be a non-negative number of seconds, not {rtt!r}")
            rtt = float(rtt)
            if math.isinf(rtt):
                raise InvalidArgument("rtt must be finite")
        key = _pair_key(pair)
        family = int(pair.destination._family)
        with self._lock:
            rec = self._pairs.get(key)
            if rec is None:
                rec = self._record(pair)
            else:
                self._pairs.move_to_end(key)
            rank_before = self._rank_locked(rec, now)
            if rec.srtt is None or not self._success_valid(rec, now):
                rec.srtt, rec.rttvar, rec.samples = rtt, rtt / 2, 1  # RFC 6298 (2.2)
            else:  # RFC 6298 (2.3): rttvar first, from the old srtt
                srtt = rec.srtt
                rec.rttvar = (1 - BETA) * rec.rttvar + BETA * abs(srtt - rtt)
                rec.srtt = (1 - ALPHA) * srtt + ALPHA * rtt
                rec.samples += 1
            rec.last_success = now
            rec.failures = 0
            path_key = (key[0], family)
            path = self._paths.get(path_key)
            if path is None:
                path = self._path(pair)
            else:
                self._paths.move_to_end(path_key)
            path.last_success = now
            family_success = self._family_success
            family_before = family_success.get(family)
            if family_before is None or now > family_before:
                family_success[family] = now
            # A new RTT sample in the same rank bucket changes no order: plans stay valid.
            rank_after = self._rank_locked(rec, now)
            if (
                len(path.black_holes) >= 2
                or family_before is None
                or now - family_before >= self.failure_ttl
            ):
                self._order_version = next(_VERSIONS)
            elif rank_after != rank_before:
                if rank_before < 0 and rank_after < 0:  # another RTT bucket
                    self._rtt_version = next(_VERSIONS)
                else:
                    self._order_version = next(_VERSIONS)

    def record_failure(self, pair: Pair, kind: FailureKind, now: float) -> None:
        """An attempt on ``pair`` failed (``soft``: still unanswered when another pair won)."""
        _finite(now)
        if kind not in FAILURE_KINDS:
            raise InvalidArgument(
                f"failure kind {kind!r} is not one of {', '.join(sorted(FAILURE_KINDS))}"
            )
        with self._lock:
            self._order_version = next(_VERSIONS)
            rec = self._record(pair)
            if not self._failure_valid(rec, now):
                rec.failures = 0
            rec.failures += 1
            rec.last_failure, rec.failure_kind = now, kind
            if kind in BLACK_HOLE_KINDS:
                holes = self._path(pair).black_holes
                dest = pair.destination._int128
                holes[dest] = now
                holes.move_to_end(dest)
                while len(holes) > _BLACK_HOLES_PER_PATH:
                    holes.popitem(last=False)

    def clear(self) -> None:
        """Forget everything."""
        with self._lock:
            self._pairs.clear()
            self._paths.clear()
            self._family_success.clear()
            self._order_version = next(_VERSIONS)

    # -- reading -----------------------------------------------------------------------------

    def _success_valid(self, rec: _PairRecord, now: float) -> bool:
        return rec.last_success is not None and now - rec.last_success < self.success_ttl

    def _failure_valid(self, rec: _PairRecord, now: float) -> bool:
        return rec.last_failure is not None and now - rec.last_failure < self.failure_ttl

    def _failure_wins(self, rec: _PairRecord, now: float) -> bool:
        """An unexpired failure no older than the last unexpired success."""
        if not self._failure_valid(rec, now):
            return False
        return not self._success_valid(rec, now) or rec.last_failure >= rec.last_success  # type: ignore[operator]

    def _rank_locked(self, rec: _PairRecord | None, now: float) -> int:
        if rec is None:
            return 0
        last_success = rec.last_success
        success = last_success is not None and now - last_success < self.success_ttl
        last_failure = rec.last_failure
        if (
            last_failure is not None
            and now - last_failure < self.failure_ttl
            and (not success or last_failure >= last_success)  # type: ignore[operator]
        ):  # `_failure_wins`, inline: this runs for every pair of every plan
            failures = min(rec.failures, _MAX_COUNTED_FAILURES)
            return FAILURE_RANK + 4 * failures + _SEVERITY[rec.failure_kind or "error"]
        if success and rec.srtt is not None:
            bucket = int(min(rec.srtt * _RTT_BUCKETS_PER_SECOND, -SUCCESS_RANK - 1))
            return SUCCESS_RANK + bucket
        return 0

    def _rto_locked(self, rec: _PairRecord | None, now: float) -> float | None:
        if rec is None or rec.srtt is None or not self._success_valid(rec, now):
            return None
        if self._failure_wins(rec, now):  # the path failed since: its RTT is no guide
            return None
        return rec.srtt + 4 * rec.rttvar

    def rank(self, pair: Pair, now: float) -> int:
        """Sort key for the pair (lower first); 0 = neutral.

        Negative after an unexpired success, lower for a lower smoothed RTT; positive after an
        unexpired failure at least as recent as the last success (more failures, and silent
        ones, rank later).
        """
        _finite(now)
        key = _pair_key(pair)
        with self._lock:
            return self._rank_locked(self._pairs.get(key), now)

    def ranks(self, pairs: Iterable[Pair], now: float) -> list[int]:
        """`rank` of each pair, under one lock acquisition (the planner's hot path)."""
        _finite(now)
        keys = [_pair_key(p) for p in pairs]
        with self._lock:
            if not self._pairs:
                return [0] * len(keys)
            get = self._pairs.get
            return [self._rank_locked(get(k), now) for k in keys]

    def rto(self, pair: Pair, now: float) -> float | None:
        """srtt + 4*rttvar of the pair's successes, ``None`` when unknown or expired (or when a
        failure is more recent than the last success)."""
        _finite(now)
        key = _pair_key(pair)
        with self._lock:
            return self._rto_locked(self._pairs.get(key), now)

    @property
    def order_version(self) -> tuple[int, int]:
        """(class version, RTT version): numbers that change when a record may change how pairs
        rank (`ranks`, `demoted_paths`). With `order_valid_until` they tell when a plan made
        earlier is still the plan the same inputs would give now (the planner is deterministic).

        The class version changes on anything but a success that only moves a pair's smoothed
        RTT to another rank bucket; that changes the RTT version only, and can reorder a plan
        only if the plan holds two or more pairs with a success rank. A success that leaves
        the rank as it was changes neither (every successful connect records one).
        """
        return self._order_version, self._rtt_version

    def order_valid_until(self, pairs: Iterable[Pair], now: float) -> tuple[float, int]:
        """(until, successes): the first time after ``now`` at which evidence about ``pairs``
        or any path expires (``math.inf``: none), and how many of ``pairs`` have a success rank.

        Until then, while `order_version` stays the same, `ranks` of ``pairs`` and
        `demoted_paths` give what they give at ``now``.
        """
        _finite(now)
        until = math.inf
        successes = 0
        keys = [_pair_key(p) for p in pairs]
        with self._lock:
            get = self._pairs.get
            success_ttl, failure_ttl = self.success_ttl, self.failure_ttl
            for key in keys:
                rec = get(key)
                if rec is None:
                    continue
                if self._rank_locked(rec, now) < 0:
                    successes += 1
                if rec.last_success is not None and now < rec.last_success + success_ttl < until:
                    until = rec.last_success + success_ttl
                if rec.last_failure is not None and now < rec.last_failure + failure_ttl < until:
                    until = rec.last_failure + failure_ttl
            for path in self._paths.values():
                if len(path.black_holes) >= 2:
                    for when in path.black_holes.values():
                        if now < when + failure_ttl < until:
                            until = when + failure_ttl
            for when in self._family_success.values():
                if now < when + failure_ttl < until:
                    until = when + failure_ttl
        # the expiry tests are ``now - t < ttl``: keep clear of float rounding at the edge
        return until - 1e-3, successes

    def _path_demoted_locked(self, key: _PathKey, now: float) -> bool:
        rec = self._paths.get(key)
        if rec is None or len(rec.black_holes) < 2:
            return False
        family = key[1]
        other = int(socket.AF_INET if family == int(socket.AF_INET6) else socket.AF_INET6)
        other_success = self._family_success.get(other)
        if other_success is None or now - other_success >= self.failure_ttl:
            return False
        since = rec.last_success
        recent = 0
        for when in rec.black_holes.values():
            if now - when < self.failure_ttl and (since is None or when > since):
                recent += 1
        return recent >= 2

    def path_demoted(
        self, source: IPAddress | None, family: socket.AddressFamily, now: float
    ) -> bool:
        """True when this family through this source recently black-holed towards several
        destinations while the other family worked: new destinations of it go after the other."""
        _finite(now)
        key = (_source_int(source), int(family))
        with self._lock:
            return self._path_demoted_locked(key, now)

    def demoted_paths(self, now: float) -> frozenset[tuple[IPAddress | None, socket.AddressFamily]]:
        """Every (source, family) for which `path_demoted` is True at ``now``."""
        _finite(now)
        with self._lock:
            demoted = [k for k in self._paths if self._path_demoted_locked(k, now)]
        result: set[tuple[IPAddress | None, socket.AddressFamily]] = set()
        for source, family in demoted:
            result.add((_int128_to_ip(source), socket.AddressFamily(family)))
        return frozenset(result)

    # -- inspection (tests, CLI) -------------------------------------------------------------

    def _stats_locked(self, rec: _PairRecord, now: float) -> PairStats:
        success = rec.srtt is not None and self._success_valid(rec, now)
        failure = self._failure_valid(rec, now)
        return PairStats(
            key=rec.key,
            rank=self._rank_locked(rec, now),
            srtt=rec.srtt if success else None,
            rttvar=rec.rttvar if success else None,
            rto=self._rto_locked(rec, now),
            samples=rec.samples if success else 0,
            last_success=rec.last_success if success else None,
            last_failure=rec.last_failure if failure else None,
            failure_kind=rec.failure_kind if failure else None,
            failures=rec.failures if failure else 0,
        )

    def stats(self, pair: Pair, now: float) -> PairStats | None:
        """What is known of ``pair`` at ``now`` (``None``: never recorded or evicted)."""
        _finite(now)
        key = _pair_key(pair)
        with self._lock:
            rec = self._pairs.get(key)
            return None if rec is None else self._stats_locked(rec, now)

    def snapshot(self, now: float) -> list[PairStats]:
        """Every recorded pair at ``now``, least recently recorded first."""
        _finite(now)
        with self._lock:
            return [self._stats_locked(rec, now) for rec in self._pairs.values()]

    def __len__(self) -> int:
        """Number of pairs recorded (expired ones included until evicted)."""
        with self._lock:
            return len(self._pairs)

    def __bool__(self) -> bool:  # an empty history is still a history, not None
        return True

    def __repr__(self) -> str:
        with self._lock:
            pairs, paths = len(self._pairs), len(self._paths)
        return (
            f"PairHistory(pairs={pairs}/{self.max_pairs}, paths={paths}, "
            f"failure_ttl={self.failure_ttl:g}, success_ttl={self.success_ttl:g})"
        )


def _finite(now: float) -> None:
    """Refuse a ``now`` that is not a finite time (``inf`` would make evidence permanent)."""
    if not -math.inf < now < math.inf:  # (NaN fails too)
        raise InvalidArgument(f"now must be a finite number of seconds, not {now!r}")


def _int128_to_ip(n: int) -> IPAddress | None:
    if n < 0:
        return None
    if n >> 32 == 0xFFFF:
        return ipaddress.IPv4Address(n & 0xFFFFFFFF)
    return ipaddress.IPv6Address(n)


#: the process-wide shared history (thread-safe, bounded)
DEFAULT_HISTORY = PairHistory()
