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

_PairKey = tuple[int, int, int]  # (source as int128 or -1, destination as int128, port)
_PathKey = tuple[int, int]  # (source as int128 or -1, address family)


def _source_int(ip: IPAddress | None) -> int:
    return -1 if ip is None else as_int128(ip)


def _pair_key(pair: Pair) -> _PairKey:
    dest = pair.destination
    return (_source_int(pair.effective_source), as_int128(dest.ip), dest.port)


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

    # -- recording ---------------------------------------------------------------------------

    def _record(self, pair: Pair) -> _PairRecord:
        key = _pair_key(pair)
        rec = self._pairs.get(key)
        if rec is None:
            rec = self._pairs[key] = _PairRecord(pair.key)
            while len(self._pairs) > self.max_pairs:
                self._pairs.popitem(last=False)
        else:
            self._pairs.move_to_end(key)
        return rec

    def _path(self, pair: Pair) -> _PathRecord:
        key = (_source_int(pair.effective_source), int(pair.destination.family))
        rec = self._paths.get(key)
        if rec is None:
            rec = self._paths[key] = _PathRecord()
            while len(self._paths) > self.max_paths:
                self._paths.popitem(last=False)
        else:
            self._paths.move_to_end(key)
        return rec

    def record_success(self, pair: Pair, rtt: float, now: float) -> None:
        """A connect on ``pair`` succeeded after ``rtt`` seconds."""
        if isinstance(rtt, bool) or not isinstance(rtt, (int, float)) or not rtt >= 0:
            raise InvalidArgument(f"rtt must be a non-negative number of seconds, not {rtt!r}")
        rtt = float(rtt)
        if math.isinf(rtt):
            raise InvalidArgument("rtt must be finite")
        with self._lock:
            rec = self._record(pair)
            if rec.srtt is None or not self._success_valid(rec, now):
                rec.srtt, rec.rttvar, rec.samples = rtt, rtt / 2, 1  # RFC 6298 (2.2)
            else:  # RFC 6298 (2.3): rttvar first, from the old srtt
                rec.rttvar = (1 - BETA) * rec.rttvar + BETA * abs(rec.srtt - rtt)
                rec.srtt = (1 - ALPHA) * rec.srtt + ALPHA * rtt
                rec.samples += 1
            rec.last_success = now
            rec.failures = 0
            self._path(pair).last_success = now
            family = int(pair.destination.family)
            self._family_success[family] = max(now, self._family_success.get(family, now))

    def record_failure(self, pair: Pair, kind: FailureKind, now: float) -> None:
        """An attempt on ``pair`` failed (``soft``: still unanswered when another pair won)."""
        if kind not in FAILURE_KINDS:
            raise InvalidArgument(
                f"failure kind {kind!r} is not one of {', '.join(sorted(FAILURE_KINDS))}"
            )
        with self._lock:
            rec = self._record(pair)
            if not self._failure_valid(rec, now):
                rec.failures = 0
            rec.failures += 1
            rec.last_failure, rec.failure_kind = now, kind
            if kind in BLACK_HOLE_KINDS:
                holes = self._path(pair).black_holes
                holes[as_int128(pair.destination.ip)] = now
                holes.move_to_end(as_int128(pair.destination.ip))
                while len(holes) > _BLACK_HOLES_PER_PATH:
                    holes.popitem(last=False)

    def clear(self) -> None:
        """Forget everything."""
        with self._lock:
            self._pairs.clear()
            self._paths.clear()
            self._family_success.clear()

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
        if self._failure_wins(rec, now):
            failures = min(rec.failures, _MAX_COUNTED_FAILURES)
            return FAILURE_RANK + 4 * failures + _SEVERITY[rec.failure_kind or "error"]
        if rec.srtt is not None and self._success_valid(rec, now):
            bucket = min(int(rec.srtt * _RTT_BUCKETS_PER_SECOND), -SUCCESS_RANK - 1)
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
        key = _pair_key(pair)
        with self._lock:
            return self._rank_locked(self._pairs.get(key), now)

    def ranks(self, pairs: Iterable[Pair], now: float) -> list[int]:
        """`rank` of each pair, under one lock acquisition (the planner's hot path)."""
        keys = [_pair_key(p) for p in pairs]
        with self._lock:
            if not self._pairs:
                return [0] * len(keys)
            get = self._pairs.get
            return [self._rank_locked(get(k), now) for k in keys]

    def rto(self, pair: Pair, now: float) -> float | None:
        """srtt + 4*rttvar of the pair's successes, ``None`` when unknown or expired (or when a
        failure is more recent than the last success)."""
        key = _pair_key(pair)
        with self._lock:
            return self._rto_locked(self._pairs.get(key), now)

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
        key = (_source_int(source), int(family))
        with self._lock:
            return self._path_demoted_locked(key, now)

    def demoted_paths(self, now: float) -> frozenset[tuple[IPAddress | None, socket.AddressFamily]]:
        """Every (source, family) for which `path_demoted` is True at ``now``."""
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
        key = _pair_key(pair)
        with self._lock:
            rec = self._pairs.get(key)
            return None if rec is None else self._stats_locked(rec, now)

    def snapshot(self, now: float) -> list[PairStats]:
        """Every recorded pair at ``now``, least recently recorded first."""
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


def _int128_to_ip(n: int) -> IPAddress | None:
    if n < 0:
        return None
    if n >> 32 == 0xFFFF:
        return ipaddress.IPv4Address(n & 0xFFFFFFFF)
    return ipaddress.IPv6Address(n)


#: the process-wide shared history (thread-safe, bounded)
DEFAULT_HISTORY = PairHistory()
