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

Convergence: besides expiry, a demoted pair is tried first again ("now and then") once
``retry_after`` seconds (default 60) passed since its last failure, doubling with each
consecutive failure (60, 120, 240, 480 s; the evidence expires at ``failure_ttl`` anyway); a
demoted path likewise once its newest black hole is that old (60 s after the second black
hole, 120 s after the third...). The retried pair ranks neutral until its outcome is recorded;
if it still fails, the failure demotes it again for twice as long. A permanently broken path
so costs the attempt delay about five times per ten minutes and pair, and a repaired one is
found within a minute under continuous traffic, not after ten.

Networks: evidence is kept per network (`set_network`: an identity string the I/O layer
computes from the default routes and prefixes). Switching to another network puts the current
evidence aside and brings back what is known of the new one (empty for a new network); at
most ``MAX_NETWORKS`` are kept. Kernel evidence (`set_kernel_evidence`: RTTs the kernel
remembers of completed connections) ranks pairs history has no record of as successes; it is
never evidence against a pair.

Persistence is pure here: `export_state` gives a JSON-ready dict in which destinations appear
only as keyed hashes (blake2b with the per-file key `hash_key`, 64 bits) and times as wall-clock
seconds (``now + offset``), and `merge_state` merges such a dict back (another process's
evidence included). The file, its lock and the key live in the I/O layer.
"""

from __future__ import annotations

import ipaddress
import itertools
import math
import os
import socket
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any, Literal, TypeVar, get_args

try:  # the C module itself: hashlib would load OpenSSL's bindings too (~1.5 ms at import)
    from _blake2 import blake2b
except ImportError:  # pragma: no cover - an interpreter without it
    from hashlib import blake2b

from .addresses import IPAddress
from .errors import InvalidArgument
from .pairs import Pair
from .records import FrozenRecord, Record
from .rfc6724 import as_int128

FailureKind = Literal["refused", "unreachable", "timeout", "soft", "error"]
FAILURE_KINDS: frozenset[str] = frozenset(get_args(FailureKind))
#: kinds that cost the attempt delay (a silent path) and count as path-level evidence
BLACK_HOLE_KINDS: frozenset[str] = frozenset({"timeout", "soft"})

# RFC 6298 §2 gains
ALPHA = 1 / 8
BETA = 1 / 4
_KEEP_SRTT = 1 - ALPHA
_KEEP_RTTVAR = 1 - BETA

#: rank bands. Success: SUCCESS_RANK + srtt in 100 µs buckets (capped below 0, so a success
#: is always negative). Failure: FAILURE_RANK + 4 * failures since last success + severity.
SUCCESS_RANK = -1_000_000
FAILURE_RANK = 1_000_000
_RTT_BUCKETS_PER_SECOND = 10_000
_RTT_BUCKET_CAP = -SUCCESS_RANK - 1  # the highest bucket: a success's rank stays below 0
# among failed pairs, a quick refusal is cheaper to retry than a silent black hole
_SEVERITY: dict[str, int] = {"refused": 0, "unreachable": 1, "error": 1, "soft": 2, "timeout": 3}
_MAX_COUNTED_FAILURES = 1000
#: distinct black-holed destinations kept per path (the rule needs 2)
_BLACK_HOLES_PER_PATH = 16

_VERSIONS = itertools.count()

#: networks whose evidence is kept besides the current one's
MAX_NETWORKS = 8
#: the persisted format (`export_state`); another value is a foreign file
STATE_FORMAT = "aioconnlist-history"
STATE_VERSION = 1

_PairKey = tuple[int, int, int]  # (source as int128 or -1, destination as int128, port)
_PathKey = tuple[int, int]  # (source as int128 or -1, address family)
_K = TypeVar("_K")
_V = TypeVar("_V")


def _source_int(ip: IPAddress | None) -> int:
    return -1 if ip is None else as_int128(ip)


_NO_SOURCES: frozenset[int] = frozenset()


def _pair_key(pair: Pair) -> _PairKey:
    key = pair._history_key
    if key is None:  # computed once per Pair: plans are cached and reused
        dest = pair.destination
        key = (_source_int(pair.effective_source), dest._int128, dest.port)
        object.__setattr__(pair, "_history_key", key)
    return key


class _PairRecord(Record):
    __slots__ = (
        "failure_kind",
        "failures",
        "key",
        "last_failure",
        "last_success",
        "rttvar",
        "samples",
        "srtt",
    )
    _fields = (
        "key",
        "srtt",
        "rttvar",
        "samples",
        "last_success",
        "last_failure",
        "failure_kind",
        "failures",
    )

    key: tuple[str, str, int]  # Pair.key, for display
    srtt: float | None
    rttvar: float
    samples: int
    last_success: float | None
    last_failure: float | None
    failure_kind: FailureKind | None
    failures: int  # since the last success (or since the last failure expired)

    def __init__(
        self,
        key: tuple[str, str, int],
        srtt: float | None = None,
        rttvar: float = 0.0,
        samples: int = 0,
        last_success: float | None = None,
        last_failure: float | None = None,
        failure_kind: FailureKind | None = None,
        failures: int = 0,
    ) -> None:
        self.key = key
        self.srtt = srtt
        self.rttvar = rttvar
        self.samples = samples
        self.last_success = last_success
        self.last_failure = last_failure
        self.failure_kind = failure_kind
        self.failures = failures


class _PathRecord(Record):
    __slots__ = ("black_holes", "last_success")
    _fields = ("black_holes", "last_success")

    # keyed hash of the destination -> time of its last black hole
    black_holes: OrderedDict[int, float]
    last_success: float | None

    def __init__(
        self, black_holes: OrderedDict[int, float] | None = None, last_success: float | None = None
    ) -> None:
        self.black_holes = OrderedDict() if black_holes is None else black_holes
        self.last_success = last_success


class _Partition(Record):
    """The evidence of one network while another is current."""

    __slots__ = ("dormant", "family_success", "pairs", "paths")
    _fields = ("pairs", "dormant", "paths", "family_success")

    pairs: OrderedDict[_PairKey, _PairRecord]
    dormant: dict[int, _PairRecord]
    paths: OrderedDict[_PathKey, _PathRecord]
    family_success: dict[int, float]

    def __init__(
        self,
        pairs: OrderedDict[_PairKey, _PairRecord],
        dormant: dict[int, _PairRecord],
        paths: OrderedDict[_PathKey, _PathRecord],
        family_success: dict[int, float],
    ) -> None:
        self.pairs = pairs
        self.dormant = dormant
        self.paths = paths
        self.family_success = family_success


def _merge_record(into: _PairRecord, other: _PairRecord) -> None:
    """Keep the newer success and the newer failure of two records of one pair."""
    if other.last_success is not None and (
        into.last_success is None or other.last_success > into.last_success
    ):
        into.srtt, into.rttvar, into.samples = other.srtt, other.rttvar, other.samples
        into.last_success = other.last_success
    if other.last_failure is not None and (
        into.last_failure is None or other.last_failure > into.last_failure
    ):
        into.last_failure, into.failure_kind = other.last_failure, other.failure_kind
        into.failures = max(into.failures, other.failures)


def _display_key(key: _PairKey) -> tuple[str, str, int]:
    source = _int128_to_ip(key[0])
    return ("" if source is None else str(source), str(_int128_to_ip(key[1])), key[2])


class PairStats(FrozenRecord):
    """A read-only view of one pair's record at time ``now`` (expired fields are None/0)."""

    __slots__ = (
        "failure_kind",
        "failures",
        "key",
        "last_failure",
        "last_success",
        "rank",
        "rto",
        "rttvar",
        "samples",
        "srtt",
    )
    _fields = (
        "key",
        "rank",
        "srtt",
        "rttvar",
        "rto",
        "samples",
        "last_success",
        "last_failure",
        "failure_kind",
        "failures",
    )

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

    def __init__(
        self,
        key: tuple[str, str, int],
        rank: int,
        srtt: float | None,
        rttvar: float | None,
        rto: float | None,
        samples: int,
        last_success: float | None,
        last_failure: float | None,
        failure_kind: FailureKind | None,
        failures: int,
    ) -> None:
        object.__setattr__(self, "key", key)
        object.__setattr__(self, "rank", rank)
        object.__setattr__(self, "srtt", srtt)
        object.__setattr__(self, "rttvar", rttvar)
        object.__setattr__(self, "rto", rto)
        object.__setattr__(self, "samples", samples)
        object.__setattr__(self, "last_success", last_success)
        object.__setattr__(self, "last_failure", last_failure)
        object.__setattr__(self, "failure_kind", failure_kind)
        object.__setattr__(self, "failures", failures)


class PairHistory:
    """Outcomes of past attempts per (source, destination) pair and per (source, family) path."""

    def __init__(
        self,
        *,
        max_pairs: int = 4096,
        failure_ttl: float = 600.0,
        success_ttl: float = 3600.0,
        max_paths: int = 256,
        retry_after: float | None = 60.0,
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
        if retry_after is not None and (
            isinstance(retry_after, bool)
            or not isinstance(retry_after, (int, float))
            or not retry_after > 0
        ):
            raise InvalidArgument(f"retry_after must be None or positive, not {retry_after!r}")
        #: seconds after a failure before a demoted pair/path is tried first again (doubling
        #: per consecutive failure); None: only expiry
        self.retry_after = math.inf if retry_after is None else float(retry_after)
        self.max_pairs = max_pairs
        self.max_paths = max_paths
        self.failure_ttl = float(failure_ttl)
        self.success_ttl = float(success_ttl)
        self._lock = threading.Lock()
        self._pairs: OrderedDict[_PairKey, _PairRecord] = OrderedDict()
        self._paths: OrderedDict[_PathKey, _PathRecord] = OrderedDict()
        self._family_success: dict[int, float] = {}  # family -> last success, any source
        # records loaded from a file, by keyed hash of their key: promoted on first lookup
        self._dormant: dict[int, _PairRecord] = {}
        # (source, destination) -> (srtt, rttvar, when): RTTs the kernel remembers
        self._kernel: dict[tuple[int, int], tuple[float, float, float]] = {}
        self._network: str | None = None  # the current network's identity (None: not known)
        self._networks: OrderedDict[str, _Partition] = OrderedDict()  # the others
        #: key of the hashes that stand for destinations (`export_state`, black holes)
        self.hash_key = b""
        #: called (outside the lock) after a record that may change a plan, e.g. to save
        self.on_change: Callable[[], None] | None = None
        # Change whenever a recorded outcome may change a plan's order (see `order_version`).
        # Drawn from one counter for all histories: a plan made with another history (even one
        # that had the same id) can never look valid for this one.
        self._order_version = next(_VERSIONS)
        self._rtt_version = next(_VERSIONS)

    # -- recording ---------------------------------------------------------------------------

    def _token(self, data: bytes) -> int:
        digest = blake2b(data, key=self.hash_key, digest_size=8).digest()
        return int.from_bytes(digest, "big")

    def _pair_token(self, key: _PairKey) -> int:
        return self._token(
            (key[0] + 1).to_bytes(17, "big")
            + key[1].to_bytes(16, "big")
            + key[2].to_bytes(2, "big")
        )

    def _dest_token(self, dest: int) -> int:
        return self._token(dest.to_bytes(16, "big"))

    def _get_locked(self, key: _PairKey) -> _PairRecord | None:
        """The record of ``key``, a loaded one promoted from `_dormant` on first use."""
        rec = self._pairs.get(key)
        if rec is None and self._dormant:
            rec = self._dormant.pop(self._pair_token(key), None)
            if rec is not None:
                rec.key = _display_key(key)
                self._pairs[key] = rec
                while len(self._pairs) > self.max_pairs:
                    self._pairs.popitem(last=False)
        return rec

    def _record(self, pair: Pair) -> _PairRecord:
        key = _pair_key(pair)
        rec = self._get_locked(key)
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
        if not -_INF < now < _INF:  # (every connect comes here: `_finite`, inline)
            _finite(now)
        if type(rtt) is not float or not 0.0 <= rtt < _INF:
            if isinstance(rtt, bool) or not isinstance(rtt, (int, float)) or not rtt >= 0:
                raise InvalidArgument(f"rtt must be a non-negative number of seconds, not {rtt!r}")
            rtt = float(rtt)
            if math.isinf(rtt):
                raise InvalidArgument("rtt must be finite")
        key = pair._history_key or _pair_key(pair)
        family = pair.destination._family  # (an IntEnum: as a key, equal to and hashed as int)
        success_ttl = self.success_ttl
        # The success ranks, inline (every connect comes here): SUCCESS_RANK plus the srtt's
        # bucket, ``floor(min(srtt * buckets, cap))``, compared as floats (`_rank_locked`).
        versions = self._order_version, self._rtt_version
        lock = self._lock  # (acquire/release: a `with` costs a bound __exit__ per call)
        lock.acquire()
        try:
            rec = self._pairs.get(key)
            if rec is None:
                rec = self._record(pair)
                versions = (-1, -1)
            else:
                self._pairs.move_to_end(key)
            last_success = rec.last_success
            srtt = rec.srtt
            valid = last_success is not None and now - last_success < success_ttl
            last_failure = rec.last_failure
            if last_failure is not None:
                rank_before: float = self._rank_locked(rec, now)
            elif valid and srtt is not None:
                bucket = srtt * _RTT_BUCKETS_PER_SECOND
                rank_before = SUCCESS_RANK + (
                    bucket // 1 if bucket < _RTT_BUCKET_CAP else _RTT_BUCKET_CAP
                )
            else:
                rank_before = 0
            if srtt is None or not valid:
                srtt = rtt
                rec.srtt, rec.rttvar, rec.samples = rtt, rtt / 2, 1  # RFC 6298 (2.2)
            else:  # RFC 6298 (2.3): rttvar first, from the old srtt
                deviation = srtt - rtt  # (abs(), inline)
                if deviation < 0.0:
                    deviation = -deviation
                rec.rttvar = _KEEP_RTTVAR * rec.rttvar + BETA * deviation
                rec.srtt = srtt = _KEEP_SRTT * srtt + ALPHA * rtt
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
                family_success[int(family) if family_before is None else family] = now
            # A new RTT sample in the same rank bucket changes no order: plans stay valid.
            if last_failure is not None:
                rank_after: float = self._rank_locked(rec, now)
            elif success_ttl > 0.0:  # (the success just recorded is valid, srtt is set)
                bucket = srtt * _RTT_BUCKETS_PER_SECOND
                rank_after = SUCCESS_RANK + (
                    bucket // 1 if bucket < _RTT_BUCKET_CAP else _RTT_BUCKET_CAP
                )
            else:
                rank_after = 0
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
        finally:
            lock.release()
        hook = self.on_change
        if hook is not None and versions != (self._order_version, self._rtt_version):
            hook()

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
                dest = self._dest_token(pair.destination._int128)
                holes[dest] = now
                holes.move_to_end(dest)
                while len(holes) > _BLACK_HOLES_PER_PATH:
                    holes.popitem(last=False)
        hook = self.on_change
        if hook is not None:
            hook()

    def clear(self) -> None:
        """Forget everything."""
        with self._lock:
            self._pairs.clear()
            self._paths.clear()
            self._family_success.clear()
            self._dormant.clear()
            self._kernel.clear()
            self._networks.clear()
            self._order_version = next(_VERSIONS)

    # -- reading -----------------------------------------------------------------------------

    def _success_valid(self, rec: _PairRecord, now: float) -> bool:
        return rec.last_success is not None and now - rec.last_success < self.success_ttl

    def _failure_valid(self, rec: _PairRecord, now: float) -> bool:
        return rec.last_failure is not None and now - rec.last_failure < self.failure_ttl

    def _retry_delay(self, failures: int) -> float:
        """Seconds after the last of ``failures`` consecutive failures before a retry first."""
        return min(self.retry_after * 2.0 ** min(max(failures, 1) - 1, 30), self.failure_ttl)

    def _kernel_rank(self, key: _PairKey, now: float) -> int:
        known = self._kernel.get((key[0], key[1]))
        if known is None or now - known[2] >= self.success_ttl:
            return 0
        return SUCCESS_RANK + min(int(known[0] * _RTT_BUCKETS_PER_SECOND), -SUCCESS_RANK - 1)

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
        ):  # an unexpired failure no older than the last unexpired success (every plan's pairs)
            if now - last_failure >= self._retry_delay(rec.failures):
                return 0  # retried first now and then: a repaired path is found again
            failures = min(rec.failures, _MAX_COUNTED_FAILURES)
            return FAILURE_RANK + 4 * failures + _SEVERITY[rec.failure_kind or "error"]
        if success and rec.srtt is not None:
            bucket = int(min(rec.srtt * _RTT_BUCKETS_PER_SECOND, -SUCCESS_RANK - 1))
            return SUCCESS_RANK + bucket
        return 0

    def _rto_locked(self, rec: _PairRecord | None, now: float) -> float | None:
        # (inline, as in `_rank_locked`: every attempt's delay comes here)
        if rec is None:
            return None
        srtt, last_success = rec.srtt, rec.last_success
        if srtt is None or last_success is None or not now - last_success < self.success_ttl:
            return None
        last_failure = rec.last_failure
        if (
            last_failure is not None
            and now - last_failure < self.failure_ttl
            and last_failure >= last_success
        ):
            return None  # the path failed since: its RTT is no guide
        return srtt + 4 * rec.rttvar

    def rank(self, pair: Pair, now: float) -> int:
        """Sort key for the pair (lower first); 0 = neutral.

        Negative after an unexpired success, lower for a lower smoothed RTT; positive after an
        unexpired failure at least as recent as the last success (more failures, and silent
        ones, rank later).
        """
        _finite(now)
        key = _pair_key(pair)
        with self._lock:
            rec = self._get_locked(key)
            if rec is None:
                return self._kernel_rank(key, now) if self._kernel else 0
            return self._rank_locked(rec, now)

    def ranks(self, pairs: Iterable[Pair], now: float) -> list[int]:
        """`rank` of each pair, under one lock acquisition (the planner's hot path)."""
        _finite(now)
        keys = [_pair_key(p) for p in pairs]
        with self._lock:
            if not self._pairs and not self._dormant and not self._kernel:
                return [0] * len(keys)
            get = self._get_locked if self._dormant else self._pairs.get
            if not self._kernel:
                return [self._rank_locked(get(k), now) for k in keys]
            result = []
            for k in keys:
                rec = get(k)
                result.append(
                    self._kernel_rank(k, now) if rec is None else self._rank_locked(rec, now)
                )
            return result

    def evidence_destinations(self) -> frozenset[int] | None:
        """The destinations (128-bit integers, IPv4 mapped) that a record or a kernel RTT of
        this history names: every other pair ranks 0. ``None`` when records loaded from a file
        are still unmatched (they are found by a keyed hash: they could name any destination).
        """
        with self._lock:
            if self._dormant:
                return None
            return frozenset(k[1] for k in self._pairs) | frozenset(k[1] for k in self._kernel)

    def evidence_sources(self, destinations: Iterable[int]) -> frozenset[int] | None:
        """The sources (128-bit integers; -1: unknown) of the successes and kernel RTTs this
        history holds for ``destinations`` (128-bit integers), when it holds nothing else for
        them. ``None`` when it may hold evidence against one of them: a failure (expired or
        not), or records loaded from a file and still unmatched (found by a keyed hash)."""
        if not self._pairs and not self._kernel and not self._dormant:
            return _NO_SOURCES  # (a process's first connect)
        wanted = frozenset(destinations)
        with self._lock:
            if self._dormant:
                return None
            found = set()
            for key, rec in self._pairs.items():
                if key[1] in wanted:
                    if rec.failures or rec.last_failure is not None:
                        return None
                    found.add(key[0])
            found.update(k[0] for k in self._kernel if k[1] in wanted)
            return frozenset(found)

    def rto(self, pair: Pair, now: float) -> float | None:
        """srtt + 4*rttvar of the pair's successes, ``None`` when unknown or expired (or when a
        failure is more recent than the last success)."""
        if not -_INF < now < _INF:  # (`_finite`, inline)
            _finite(now)
        key = pair._history_key or _pair_key(pair)
        with self._lock:
            rec = self._pairs.get(key)
            if rec is None and self._dormant:
                rec = self._get_locked(key)
            if rec is None and self._kernel:
                known = self._kernel.get((key[0], key[1]))
                if known is not None and now - known[2] < self.success_ttl:
                    return known[0] + 4 * known[1]
            return self._rto_locked(rec, now)

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
            get = self._get_locked
            success_ttl, failure_ttl = self.success_ttl, self.failure_ttl
            for key in keys:
                rec = get(key)
                if rec is None:
                    known = self._kernel.get((key[0], key[1])) if self._kernel else None
                    if known is not None and now < known[2] + success_ttl:
                        successes += 1
                        until = min(until, known[2] + success_ttl)
                    continue
                if self._rank_locked(rec, now) < 0:
                    successes += 1
                if rec.last_success is not None and now < rec.last_success + success_ttl < until:
                    until = rec.last_success + success_ttl
                if rec.last_failure is not None:
                    if now < rec.last_failure + failure_ttl < until:
                        until = rec.last_failure + failure_ttl
                    retry = rec.last_failure + self._retry_delay(rec.failures)
                    if now < retry < until:
                        until = retry
            for path in self._paths.values():
                if len(path.black_holes) >= 2:
                    delays = [self._retry_delay(k) for k in range(1, len(path.black_holes))]
                    for when in path.black_holes.values():
                        for t in (when + failure_ttl, *(when + d for d in delays)):
                            if now < t < until:
                                until = t
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
        newest = -math.inf
        for when in rec.black_holes.values():
            if now - when < self.failure_ttl and (since is None or when > since):
                recent += 1
                newest = max(newest, when)
        # retried first now and then: the newest black hole is old enough
        return recent >= 2 and now - newest < self._retry_delay(recent - 1)

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

    # -- file-backed histories (the file is the I/O layer's) ----------------------------------

    @classmethod
    def open(cls, path: str | os.PathLike[str], **kwargs: Any) -> PairHistory:
        """A history kept in the file ``path``: loaded now, written after changes (coalesced,
        atomically, mode 0600), shared safely by several processes. A missing, corrupt,
        foreign or unwritable file never fails: it is ignored or rebuilt with one warning.
        ``kwargs`` are the constructor's (``max_pairs``, ``failure_ttl``...)."""
        if _OPENER is None:  # the I/O layer registers itself when aioconnlist is imported
            raise RuntimeError("aioconnlist's history file support is not loaded")
        history = cls(**kwargs)
        _OPENER(history, os.path.expanduser(os.fspath(path)))
        return history

    def use_hash_key(self, key: bytes) -> None:
        """Hash destinations with ``key`` from now on (a file's key). Evidence that only
        exists as hashes of another key (loaded, black holes, other networks) is dropped."""
        with self._lock:
            if key == self.hash_key:
                return
            self.hash_key = key
            self._dormant = {}
            self._networks.clear()
            for path in self._paths.values():
                path.black_holes.clear()
            self._network = None
            self._order_version = next(_VERSIONS)

    # -- networks and kernel evidence ----------------------------------------------------------

    @property
    def network(self) -> str | None:
        """The keyed hash of the network whose evidence is current (None: not known yet)."""
        return self._network

    def set_network(self, identity: str) -> bool:
        """The host is on network ``identity`` now. Returns True when that switched partition.

        The first identity given names the evidence gathered so far. Another one puts the
        current evidence aside (under its identity) and makes current what is known of
        ``identity`` (nothing for a network never seen); kernel evidence is dropped (it is read
        again for the new network). Partitions are named by a keyed hash of ``identity``.
        """
        with self._lock:
            identity = f"{self._token(identity.encode()):016x}"
            if identity == self._network:
                return False
            if self._network is None:
                self._network = identity
                other = self._networks.pop(identity, None)
                if other is not None:
                    self._absorb_locked(other)
                return False
            self._networks[self._network] = _Partition(
                self._pairs, self._dormant, self._paths, self._family_success
            )
            self._networks.move_to_end(self._network)
            while len(self._networks) > MAX_NETWORKS:
                self._networks.popitem(last=False)
            part = self._networks.pop(identity, None)
            if part is None:
                part = _Partition(OrderedDict(), {}, OrderedDict(), {})
            self._pairs, self._dormant = part.pairs, part.dormant
            self._paths, self._family_success = part.paths, part.family_success
            self._network = identity
            self._kernel = {}
            self._order_version = next(_VERSIONS)
        return True

    def _absorb_locked(self, part: _Partition) -> None:
        """Merge evidence of the current network kept elsewhere into the current evidence."""
        for key, rec in part.pairs.items():
            mine = self._pairs.get(key)
            if mine is None:
                self._pairs[key] = rec
            else:
                _merge_record(mine, rec)
        if part.dormant:
            live = {self._pair_token(key): rec for key, rec in self._pairs.items()}
            for token, rec in part.dormant.items():
                mine = live.get(token) or self._dormant.get(token)
                if mine is None:
                    self._dormant[token] = rec
                else:
                    _merge_record(mine, rec)
        _merge_all(self._paths, part.paths, _merge_path)
        _keep_latest(self._family_success, part.family_success)
        while len(self._pairs) > self.max_pairs:
            self._pairs.popitem(last=False)
        while len(self._paths) > self.max_paths:
            self._paths.popitem(last=False)
        self._order_version = next(_VERSIONS)

    def set_kernel_evidence(
        self, entries: Iterable[tuple[IPAddress, IPAddress, float, float, float]]
    ) -> None:
        """RTTs the kernel remembers: (source, destination, srtt, rttvar, when) each.

        A pair with no record of its own then ranks as a success of that srtt (any port), and
        its attempt delay follows srtt + 4*rttvar. Never evidence against a pair.
        """
        kernel: dict[tuple[int, int], tuple[float, float, float]] = {}
        for source, dest, srtt, rttvar, when in entries:
            kernel[as_int128(source), as_int128(dest)] = (float(srtt), float(rttvar), float(when))
        with self._lock:
            self._kernel = kernel
            self._order_version = next(_VERSIONS)

    # -- persistence (pure: the file is the I/O layer's) ---------------------------------------

    def export_state(self, now: float, offset: float) -> dict[str, Any]:
        """Everything worth keeping, as a JSON-ready dict (times: ``now``'s scale + ``offset``,
        e.g. wall-clock seconds). Expired evidence is left out; destinations appear only as
        keyed hashes; at most ``max_pairs`` pairs in all, the current network's first."""
        with self._lock:
            parts: list[tuple[str, _Partition]] = []
            if self._network is not None:
                current = _Partition(self._pairs, self._dormant, self._paths, self._family_success)
                parts.append((self._network, current))
            parts.extend(reversed(self._networks.items()))  # most recent first
            budget = self.max_pairs
            networks: dict[str, Any] = {}
            for identity, part in parts:
                pairs_out: list[list[Any]] = []
                records = [(self._pair_token(k), r) for k, r in reversed(part.pairs.items())]
                records.extend(part.dormant.items())
                seen: set[int] = set()
                for token, rec in records:
                    if budget <= 0:
                        break
                    if token in seen:
                        continue
                    seen.add(token)
                    row = self._export_record(token, rec, now, offset)
                    if row is not None:
                        pairs_out.append(row)
                        budget -= 1
                paths_out: list[list[Any]] = []
                for (source, family), path in part.paths.items():
                    holes = [
                        [f"{token:016x}", _wall(when, offset)]
                        for token, when in path.black_holes.items()
                        if now - when < self.failure_ttl
                    ]
                    last = path.last_success
                    if last is not None and now - last >= self.success_ttl:
                        last = None
                    if holes or last is not None:
                        src = _int128_to_ip(source)
                        paths_out.append(
                            [
                                "" if src is None else str(src),
                                6 if family == _AF6 else 4,
                                None if last is None else _wall(last, offset),
                                holes,
                            ]
                        )
                family_out = {
                    str(6 if family == _AF6 else 4): _wall(when, offset)
                    for family, when in part.family_success.items()
                    if now - when < self.failure_ttl
                }
                if pairs_out or paths_out or family_out:
                    networks[identity] = {
                        "pairs": pairs_out,
                        "paths": paths_out,
                        "family_success": family_out,
                    }
        return {"format": STATE_FORMAT, "version": STATE_VERSION, "networks": networks}

    def _export_record(
        self, token: int, rec: _PairRecord, now: float, offset: float
    ) -> list[Any] | None:
        success = rec.srtt is not None and self._success_valid(rec, now)
        failure = self._failure_valid(rec, now)
        if not success and not failure:
            return None
        return [
            f"{token:016x}",
            round(rec.srtt, 6) if success and rec.srtt is not None else None,
            round(rec.rttvar, 6) if success else None,
            rec.samples if success else 0,
            _wall(rec.last_success, offset) if success else None,
            _wall(rec.last_failure, offset) if failure else None,
            rec.failure_kind if failure else None,
            rec.failures if failure else 0,
        ]

    def merge_state(self, state: object, now: float, offset: float) -> None:
        """Merge a dict made by `export_state` (of this or another process, with the same
        `hash_key`): the newer success and the newer failure of each pair win, black holes and
        family successes are united. Raises ValueError when ``state`` is not such a dict (its
        format, version or shape); nothing is merged then."""
        if not isinstance(state, dict):
            raise ValueError("not a history: no JSON object")
        if state.get("format") != STATE_FORMAT:
            raise ValueError("not a history: unknown format")
        if state.get("version") != STATE_VERSION:
            raise ValueError(
                f"history format version {state.get('version')!r} is not {STATE_VERSION}"
            )
        networks = state.get("networks")
        if not isinstance(networks, dict):
            raise ValueError("history without networks")
        parsed = {
            str(identity): self._parse_partition(data, now, offset)
            for identity, data in networks.items()
        }
        with self._lock:
            for identity, part in parsed.items():
                if identity == self._network:
                    self._absorb_locked(part)
                    continue
                mine = self._networks.get(identity)
                if mine is None:
                    if len(self._networks) >= MAX_NETWORKS:
                        continue
                    self._networks[identity] = part
                else:
                    _merge_all(mine.dormant, part.dormant, _merge_record)
                    _merge_all(mine.paths, part.paths, _merge_path)
                    _keep_latest(mine.family_success, part.family_success)
            self._order_version = next(_VERSIONS)

    def _parse_partition(self, data: object, now: float, offset: float) -> _Partition:
        if not isinstance(data, dict):
            raise ValueError("history network is not an object")
        part = _Partition(OrderedDict(), {}, OrderedDict(), {})
        try:
            for row in data.get("pairs", ()):
                token_text, srtt, rttvar, samples, success, failure, kind, failures = row
                rec = _PairRecord(("?", "?", 0))
                if success is not None and srtt is not None:
                    rec.srtt, rec.rttvar = _seconds(srtt), _seconds(rttvar)
                    rec.samples, rec.last_success = int(samples), _local(success, offset, now)
                if failure is not None:
                    if kind not in FAILURE_KINDS:
                        raise ValueError(f"unknown failure kind {kind!r}")
                    rec.last_failure, rec.failure_kind = _local(failure, offset, now), kind
                    rec.failures = max(1, min(int(failures), _MAX_COUNTED_FAILURES))
                part.dormant[int(token_text, 16)] = rec
            for source_text, version, success, holes in data.get("paths", ()):
                source = -1 if source_text == "" else as_int128(ipaddress.ip_address(source_text))
                family = _AF6 if version == 6 else _AF4 if version == 4 else None
                if family is None:
                    raise ValueError(f"unknown family {version!r}")
                path = _PathRecord()
                if success is not None:
                    path.last_success = _local(success, offset, now)
                for token_text, when in sorted(holes, key=lambda h: float(h[1]))[
                    -_BLACK_HOLES_PER_PATH:
                ]:
                    path.black_holes[int(token_text, 16)] = _local(when, offset, now)
                part.paths[(source, family)] = path
            for version_text, when in dict(data.get("family_success", {})).items():
                family = _AF6 if version_text == "6" else _AF4 if version_text == "4" else None
                if family is None:
                    raise ValueError(f"unknown family {version_text!r}")
                part.family_success[family] = _local(when, offset, now)
        except (TypeError, AttributeError, OverflowError) as e:
            raise ValueError(f"malformed history record: {e}") from None
        return part

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
            rec = self._get_locked(key)
            return None if rec is None else self._stats_locked(rec, now)

    def snapshot(self, now: float) -> list[PairStats]:
        """Every recorded pair at ``now``, least recently recorded first."""
        _finite(now)
        with self._lock:
            return [self._stats_locked(rec, now) for rec in self._pairs.values()]

    def __len__(self) -> int:
        """Number of pairs recorded (expired ones included until evicted; loaded ones and kernel
        evidence included)."""
        with self._lock:
            return len(self._pairs) + len(self._dormant) + len(self._kernel)

    def __bool__(self) -> bool:  # an empty history is still a history, not None
        return True

    def __repr__(self) -> str:
        with self._lock:
            pairs, paths = len(self._pairs), len(self._paths)
        return (
            f"PairHistory(pairs={pairs}/{self.max_pairs}, paths={paths}, "
            f"failure_ttl={self.failure_ttl:g}, success_ttl={self.success_ttl:g})"
        )


_INF = math.inf


def _finite(now: float) -> None:
    """Refuse a ``now`` that is not a finite time (``inf`` would make evidence permanent)."""
    if not -math.inf < now < math.inf:  # (NaN fails too)
        raise InvalidArgument(f"now must be a finite number of seconds, not {now!r}")


_AF4 = int(socket.AF_INET)
_AF6 = int(socket.AF_INET6)


def _merge_all(mine: dict[_K, _V], theirs: dict[_K, _V], merge: Callable[[_V, _V], None]) -> None:
    """Merge ``theirs`` into ``mine``: a key of theirs only is taken, one of both is merged."""
    for key, value in theirs.items():
        known = mine.get(key)
        if known is None:
            mine[key] = value
        else:
            merge(known, value)


def _keep_latest(mine: dict[_K, float], theirs: dict[_K, float]) -> None:
    """Merge two maps of times: the later of the two for every key."""
    for key, when in theirs.items():
        if when > mine.get(key, -math.inf):
            mine[key] = when


def _merge_path(into: _PathRecord, other: _PathRecord) -> None:
    for token, when in other.black_holes.items():
        if when > into.black_holes.get(token, -math.inf):
            into.black_holes[token] = when
    if len(into.black_holes) > _BLACK_HOLES_PER_PATH:
        newest = sorted(into.black_holes.items(), key=lambda item: item[1])
        into.black_holes = OrderedDict(newest[-_BLACK_HOLES_PER_PATH:])
    if other.last_success is not None and (
        into.last_success is None or other.last_success > into.last_success
    ):
        into.last_success = other.last_success


def _wall(t: float | None, offset: float) -> float | None:
    return None if t is None else round(t + offset, 3)


def _seconds(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"not a number: {value!r}")
    result = float(value)
    if not 0.0 <= result < 1e6:
        raise ValueError(f"not a duration: {value!r}")
    return result


def _local(wall: object, offset: float, now: float) -> float:
    """A stored wall-clock time on the history's scale; one in the future is taken as now."""
    if isinstance(wall, bool) or not isinstance(wall, (int, float)) or math.isnan(wall):
        raise ValueError(f"not a time: {wall!r}")
    return min(float(wall) - offset, now)


def _int128_to_ip(n: int) -> IPAddress | None:
    if n < 0:
        return None
    if n >> 32 == 0xFFFF:
        return ipaddress.IPv4Address(n & 0xFFFFFFFF)
    return ipaddress.IPv6Address(n)


#: set by the I/O layer: makes a history file-backed (`PairHistory.open`)
_OPENER: Callable[[PairHistory, str], None] | None = None

#: the process-wide shared history (thread-safe, bounded)
DEFAULT_HISTORY = PairHistory()
