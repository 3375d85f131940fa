"""plan_pairs: rank every usable (source, destination) pair (sans-I/O, deterministic).

Order of the plan:

1. Pairs that cannot work are never produced (`pairs.source_usable`,
   `pairs.destination_usable`); duplicate destinations are dropped (first one kept).
2. ``sort=True``: destinations are ordered by the key of their kernel pair (in mode
   "explicit": the best of their pairs for the history part), most significant first:

   - RFC 6724 rule 1, avoid unusable destinations. A destination is *known bad* when the
     kernel has no source for it (no route, or unknown) or its pair has unexpired failure
     evidence (``history.rank > 0``: "known to be unreachable", RFC 6724 §6 rule 1 note).
     Known-bad destinations go after all others; among them those with failure evidence
     last (a no-route attempt fails at once, a black hole costs the attempt delay).
   - path-level history: a destination whose (kernel source, family) path is
     `PairHistory.path_demoted` goes after the destinations of the other family. This
     overrides rules 2-8 on purpose: precedence alone would otherwise always put a broken
     IPv6 first.
   - rules 2 (matching scope), 3 (avoid deprecated source), 5 (matching label),
     6 (higher precedence), 8 (smaller scope); rules 4 and 7 do not apply.
   - history rank (RFC 8305 §4: between rules 8 and 9): recent success and lower smoothed RTT
     first.
   - rule 9 (longest matching prefix with the source, IPv6 only, capped at /64, see
     `aioconnlist._core.rfc6724`), then rule 10 (input order).
3. RFC 8305 §4 interleaving (``interleave`` = First Address Family Count, 0 = none), applied
   separately to the healthy destinations and to the known-bad ones, so a failed destination
   never jumps ahead of a healthy one. With ``sort=False`` the caller's order is interleaved
   as one list and history is not consulted.
4. Modes "auto"/"kernel": every destination's kernel-choice pair, then (auto) the alternate
   sources of every destination in the same destination order — except that (``sort=True``)
   a kernel-choice pair with failure evidence goes after the alternates without any (what
   just black-holed is tried after the others). Alternates of one destination
   are ordered (``sort=True``) by: no failure evidence first, non-deprecated, path not demoted,
   history rank, same
   scope as the destination, same label, longest common prefix, machine order. Mode
   "explicit": destination by destination, each with its sources in the caller's order
   (``sort=True``: stable-sorted by failure evidence, path demotion and history rank only).
5. The kernel's routes (mode "auto", ``SourceView.routes``): an alternate pair that would
   take traffic off a tunnel the kernel's own route uses, or send a bridge/TAP address outside
   its segment (`ROUTE_NEVER`), is never produced; one the kernel would route out of another
   interface than its source's (`ROUTE_OTHER`, the weak host model) goes after every other
   pair, a kernel pair with failure evidence included. NAT64-synthesized destinations
   (``SourceView.nat64``) are ranked and interleaved as the IPv4 addresses they stand for.
"""

from __future__ import annotations

import heapq
import socket
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from typing import TypeVar

from .addresses import Endpoint, EndpointColumns, IPAddress
from .errors import InvalidArgument
from .history import PairHistory
from .pairs import (
    ROUTE_NEVER,
    ROUTE_OTHER,
    LocalAddress,
    Pair,
    SourceView,
    destination_usable,
    explicit_source_usable,
    source_usable,
)
from .rfc6724 import (
    RULE9_MAX_PREFIX,
    V4_MAPPED,
    as_int128,
    common_prefix_len128,
    policy128,
    scope128,
)

_NO_SOURCE = -1
_T = TypeVar("_T")
_Demoted = frozenset[tuple[IPAddress | None, socket.AddressFamily]]


@lru_cache(maxsize=8192)
def _rfc6724_key(
    dest: int, source: int, deprecated: bool
) -> tuple[tuple[int, ...], tuple[int, ...], int]:
    """Static part of a destination's key from its kernel source.

    Returns (rules 1-9 as one tuple, rules 1-8, rule 9) so the hot path without history sorts
    on one cached tuple. ``dest`` and ``source`` are 128-bit (v4-mapped) integers, ``source``
    -1 when the kernel has no route (rule 1; rules 2, 3, 5 and 9 need a source).
    """
    d_prec, d_label = policy128(dest)
    d_scope = scope128(dest)
    if source == _NO_SOURCE:
        head: tuple[int, ...] = (1, 0, 0, 0, -d_prec, d_scope)
        return (*head, 0), head, 0
    head = (
        0,
        int(scope128(source) != d_scope),  # rule 2
        int(deprecated),  # rule 3
        int(policy128(source)[1] != d_label),  # rule 5
        -d_prec,  # rule 6
        d_scope,  # rule 8
    )
    is_v6 = dest >> 32 != 0xFFFF
    rule9 = -min(common_prefix_len128(dest, source), RULE9_MAX_PREFIX) if is_v6 else 0
    return (*head, rule9), head, rule9


@lru_cache(maxsize=8192)
def _source_key(source: int, dest: int) -> tuple[int, int, int]:
    """RFC 6724 source-selection preference of ``source`` towards ``dest``: same scope (rule 2),
    same label (rule 6), longest common prefix (rule 8; IPv6 capped at /64)."""
    is_v6 = dest >> 32 != 0xFFFF
    common = common_prefix_len128(dest, source)
    common = min(common, RULE9_MAX_PREFIX) if is_v6 else common - 96
    return (
        int(scope128(source) != scope128(dest)),
        int(policy128(source)[1] != policy128(dest)[1]),
        -common,
    )


def _interleave(items: list[_T], versions: Sequence[int], first_count: int) -> list[_T]:
    """RFC 8305 §4: ``first_count`` of the first family, then one of the other, alternating.

    ``versions[i]`` is the IP version of ``items[i]``.
    """
    if first_count == 0 or len(items) < 2:
        return items
    first_version = versions[0]
    first = [x for x, v in zip(items, versions, strict=True) if v == first_version]
    if len(first) == len(items):
        return items
    other = [x for x, v in zip(items, versions, strict=True) if v != first_version]
    out = first[:first_count]
    rest = first[first_count:]
    for i in range(max(len(rest), len(other))):
        if i < len(other):
            out.append(other[i])
        if i < len(rest):
            out.append(rest[i])
    return out


def _interleave_pairs(pairs: list[Pair], first_count: int) -> list[Pair]:
    return _interleave(pairs, [p.destination.ip.version for p in pairs], first_count)


def _usable_destinations(destinations: Sequence[Endpoint]) -> list[Endpoint]:
    """Distinct destinations (first occurrence kept) that some pair can reach."""
    if len(destinations) == 1:
        return [destinations[0]] if destination_usable(destinations[0]) else []
    return [d for d in dict.fromkeys(destinations) if destination_usable(d)]


def _history_view(
    history: PairHistory | None, pairs: Sequence[Pair], now: float
) -> tuple[list[int] | None, _Demoted]:
    """(rank of each pair, demoted paths); (None, nothing) without history."""
    if history is None or len(history) == 0:
        return None, frozenset()
    return history.ranks(pairs, now), history.demoted_paths(now)


def _order_destinations(
    pairs: list[Pair],
    ranks: Sequence[int] | None,
    demoted: _Demoted,
    deprecated: frozenset[IPAddress],
    interleave: int,
    nat64: Mapping[IPAddress, IPAddress] | None = None,
) -> list[int]:
    """Indices into ``pairs`` (one representative pair per destination) in plan order.

    ``ranks`` None (no history): the key is the cached RFC 6724 tuple alone (the hot path).
    ``nat64``: synthesized destinations, ranked (and interleaved) as the IPv4 they stand for.
    """
    rfc6724_key = _rfc6724_key
    keys: list[tuple[object, ...]] = []
    for i, pair in enumerate(pairs):
        ks = pair.kernel_source
        dest_ip = pair.destination.ip
        if nat64 and dest_ip in nat64:
            dest_ip = ks = nat64[dest_ip]  # as an IPv4 destination with a matching source
        dest = int(dest_ip) | V4_MAPPED if dest_ip.version == 4 else int(dest_ip)
        if ks is None:
            full, head, rule9 = rfc6724_key(dest, _NO_SOURCE, False)
        else:
            source = int(ks) | V4_MAPPED if ks.version == 4 else int(ks)
            full, head, rule9 = rfc6724_key(dest, source, bool(deprecated) and ks in deprecated)
        if ranks is None:
            keys.append((full, i))
            continue
        rank = ranks[i]
        no_route = head[0]
        path_demoted = bool(demoted) and (pair.effective_source, pair.destination.family) in demoted
        failed = rank > 0
        keys.append((failed or no_route == 1, failed, no_route, path_demoted, head, rank, rule9, i))
    keys.sort()
    order: list[int] = [key[-1] for key in keys]  # type: ignore[misc]
    if ranks is None:
        split = next((n for n, key in enumerate(keys) if key[0][0]), len(keys))  # type: ignore[index]
    else:
        split = next((n for n, key in enumerate(keys) if key[0]), len(keys))
    versions = [_version(pairs[i], nat64) for i in order]
    healthy = _interleave(order[:split], versions[:split], interleave)
    known_bad = _interleave(order[split:], versions[split:], interleave)
    return healthy + known_bad


def _version(pair: Pair, nat64: Mapping[IPAddress, IPAddress] | None) -> int:
    ip = pair.destination.ip
    return 4 if nat64 and ip in nat64 else ip.version


def _check_interleave(interleave: int) -> None:
    if isinstance(interleave, bool) or not isinstance(interleave, int) or interleave < 0:
        raise InvalidArgument(f"interleave must be an integer >= 0, not {interleave!r}")


def plan_pairs(
    destinations: Sequence[Endpoint],
    sources: SourceView,
    *,
    history: PairHistory | None,
    now: float,
    interleave: int = 1,
    sort: bool = True,
) -> list[Pair]:
    """Every usable (source, destination) pair of ``destinations`` × ``sources``, best first.

    See the module docstring for the order. ``now`` is the history's time scale.
    """
    _check_interleave(interleave)
    dests = _usable_destinations(destinations)
    if not dests:
        return []
    if sources.mode == "explicit":
        return _plan_explicit(dests, sources, history, now, interleave, sort)
    kernel_get = sources.kernel_choice.get
    kernel_pairs = [Pair(None, d, kernel_get(d.ip)) for d in dests]
    if len(kernel_pairs) > 1:
        if sort:
            ranks, demoted = _history_view(history, kernel_pairs, now)
            deprecated = frozenset(s.ip for s in sources.local if s.deprecated)
            order = _order_destinations(
                kernel_pairs, ranks, demoted, deprecated, interleave, sources.nat64
            )
            kernel_pairs = [kernel_pairs[i] for i in order]
        else:
            kernel_pairs = _interleave_pairs(kernel_pairs, interleave)
    if sources.mode == "kernel" or not sources.local:
        return kernel_pairs
    alternates = _alternates(kernel_pairs, sources.local, history, now, sort, sources.routes)
    misrouted: list[Pair] = []
    if sources.routes:
        routes = sources.routes
        misrouted = [p for p in alternates if routes.get(_route_key(p)) == ROUTE_OTHER]
        if misrouted:
            alternates = [p for p in alternates if routes.get(_route_key(p)) != ROUTE_OTHER]
    if not sort or history is None or len(history) == 0 or not alternates:
        return kernel_pairs + alternates + misrouted
    return _failed_last(kernel_pairs, alternates, history, now) + misrouted


def _route_key(pair: Pair) -> tuple[IPAddress, IPAddress]:
    assert pair.source is not None
    return (pair.source.ip, pair.destination.ip)


def _failed_last(
    kernel_pairs: list[Pair], alternates: list[Pair], history: PairHistory, now: float
) -> list[Pair]:
    """Kernel-choice pairs with failure evidence go after the alternates without any.

    A pair that just black-holed is tried after the others next time. On a
    multi-homed host whose kernel-chosen source is broken, this is what makes the second
    connection go through the working interface at once instead of after the attempt delay.
    """
    kernel_failed = [rank > 0 for rank in history.ranks(kernel_pairs, now)]
    if not any(kernel_failed):
        return kernel_pairs + alternates
    alternate_failed = [rank > 0 for rank in history.ranks(alternates, now)]
    return (
        [p for p, bad in zip(kernel_pairs, kernel_failed, strict=True) if not bad]
        + [p for p, bad in zip(alternates, alternate_failed, strict=True) if not bad]
        + [p for p, bad in zip(kernel_pairs, kernel_failed, strict=True) if bad]
        + [p for p, bad in zip(alternates, alternate_failed, strict=True) if bad]
    )


def _alternates(
    kernel_pairs: list[Pair],
    local: Sequence[LocalAddress],
    history: PairHistory | None,
    now: float,
    sort: bool,
    routes: Mapping[tuple[IPAddress, IPAddress], int],
) -> list[Pair]:
    """Mode "auto": for each destination in plan order, its other usable sources (those the
    kernel's routes rule out, `ROUTE_NEVER`, left out)."""
    groups: list[list[Pair]] = []
    for kp in kernel_pairs:
        dest, ks = kp.destination, kp.kernel_source
        groups.append(
            [
                Pair(s, dest, ks)
                for s in local
                if s.ip != ks
                and source_usable(s, dest)
                and (not routes or routes.get((s.ip, dest.ip)) != ROUTE_NEVER)
            ]
        )
    flat = [p for group in groups for p in group]
    if not sort or len(flat) < 2:
        return flat
    ranks, demoted = _history_view(history, flat, now)
    if ranks is None:
        ranks = [0] * len(flat)
    position = {s: i for i, s in reversed(list(enumerate(local)))}
    out: list[Pair] = []
    n = 0
    for group in groups:
        keyed = []
        for pair in group:
            src = pair.source
            assert src is not None
            rank = ranks[n]
            n += 1
            keyed.append(
                (
                    rank > 0,
                    src.deprecated,
                    bool(demoted) and (src.ip, pair.destination.family) in demoted,
                    rank,
                    _source_key(as_int128(src.ip), as_int128(pair.destination.ip)),
                    position[src],
                    pair,
                )
            )
        keyed.sort(key=lambda k: k[:6])
        out.extend(k[-1] for k in keyed)
    return out


def _plan_explicit(
    dests: list[Endpoint],
    sources: SourceView,
    history: PairHistory | None,
    now: float,
    interleave: int,
    sort: bool,
) -> list[Pair]:
    """Mode "explicit": exactly the caller's sources, destination by destination."""
    kernel_get = sources.kernel_choice.get
    groups: list[list[Pair]] = []
    for dest in dests:
        ks = kernel_get(dest.ip)
        group = [Pair(s, dest, ks) for s in sources.local if explicit_source_usable(s, dest)]
        if group:
            groups.append(group)
    if not groups:
        return []
    if not sort:
        versions = [g[0].destination.ip.version for g in groups]
        return [p for g in _interleave(groups, versions, interleave) for p in g]

    flat = [p for group in groups for p in group]
    ranks, demoted = _history_view(history, flat, now)
    deprecated = frozenset(s.ip for s in sources.local if s.deprecated)
    if ranks is None:  # no history: the caller's source order, destinations by RFC 6724
        order = _order_destinations([g[0] for g in groups], None, demoted, deprecated, interleave)
        return [p for i in order for p in groups[i]]
    # within a destination: failure evidence, path demotion, history rank, the caller's order
    n = 0
    sorted_groups: list[list[Pair]] = []
    best_ranks: list[int] = []
    for group in groups:
        keyed = []
        for i, pair in enumerate(group):
            eff = pair.effective_source
            is_demoted = bool(demoted) and (eff, pair.destination.family) in demoted
            keyed.append((ranks[n] > 0, is_demoted, ranks[n], i))
            n += 1
        keyed.sort()
        sorted_groups.append([group[k[3]] for k in keyed])
        best_ranks.append(keyed[0][2])
    # a destination is ranked by its kernel source for RFC 6724 and by its best pair for
    # history (rank and path demotion: `_order_destinations` reads the effective source)
    order = _order_destinations(
        [g[0] for g in sorted_groups], best_ranks, demoted, deprecated, interleave
    )
    return [p for i in order for p in sorted_groups[i]]


# --- the head of a long plan, planned lazily ------------------------------------------------
#
# Design. Planning a list in full costs one kernel-source lookup per destination (a UDP
# connect: ~40 µs), which RFC 6724 needs to rank each of them; a race whose first attempt
# connects tries one. `plan_head` gives the first ``count`` pairs of the plan, exactly those
# `plan_pairs` puts first, and looks up the kernel's source of only as many destinations as
# it must to be sure of them:
#
# - every key component that depends on the source (rules 1, 2, 3, 5, 9; history's failure,
#   path demotion and rank) is bounded below without it: (0, 0, 0, 0) for rules 1-5,
#   rule 9 >= -64 (IPv6; 0 for IPv4), no path demotion, rank 0 for a destination no record
#   names (those that one names are looked up first, `PairHistory.evidence_destinations`).
#   Rules 6 and 8 and the input order depend on the destination alone. So each destination
#   has a lower bound of its sort key, and its exact key is never below it;
# - destinations are visited in the order of their lower bounds (bucketed: the bounds take
#   few distinct values); a looked-up destination with a healthy key is certain to come next
#   as soon as its key is below the lower bound of every destination not yet looked up
#   (a best-first merge). With the usual list (the same class of address throughout) each
#   pair of the head costs one lookup;
# - RFC 8305 interleaving needs the healthy destinations of each family in order: one such
#   merge per family, interleaved as `_interleave` does;
# - the known-bad destinations (no route, failure evidence) and, in mode "auto", the
#   alternate sources all come after every healthy kernel-choice pair in the full plan, so a
#   head of healthy kernel pairs is a prefix of it. The rest is planned in full (the lookups
#   made are cached) when the race has started the head.
#
# It gives up (None: plan in full) after ``max_probes`` lookups, when fewer than ``count``
# healthy destinations exist, and for what it does not model (zones, which key kernel choices
# by address only; NAT64 and explicit sources are the caller's to exclude).

#: the pairs `plan_head` plans (the race takes the rest from the full plan)
HEAD_PAIRS = 8
#: `plan_head` gives up after this many kernel-source lookups
HEAD_PROBES = 256

_V4_LINK: tuple[int, ...] = (
    0,
    0,
    0,
    0,
    -35,
    2,
)  # 127/8, 169.254/16: ::ffff:0:0/96, link-local scope
_V4_GLOBAL: tuple[int, ...] = (0, 0, 0, 0, -35, 14)


class PlanHead(list[Pair]):
    """The first pairs of a plan: exactly those `plan_pairs` would put first. At least
    ``more`` pairs follow them, planned when the race has started these."""

    more: int = 0


class _GiveUp(Exception):
    pass


def _v6_bound(n: int) -> tuple[int, ...]:
    """Rules 1-8 of an IPv6 destination's key at their lowest (rules 6 and 8 exact)."""
    return (0, 0, 0, 0, -policy128(n)[0], scope128(n))


class _Merge:
    """The healthy destinations of one family in plan order, looked up best-first."""

    def __init__(
        self,
        buckets: Mapping[tuple[int, ...], Sequence[int]],
        rule9_bound: int,
        exact: Callable[[int], tuple[object, ...] | None],
        with_history: bool,
    ) -> None:
        self._buckets = sorted(buckets.items())
        self._bucket = 0
        self._pos = 0
        self._rule9 = rule9_bound
        self._exact = exact
        self._history = with_history
        self.heap: list[tuple[object, ...]] = []

    def _next_bound(self) -> tuple[object, ...] | None:
        while self._bucket < len(self._buckets):
            bound, indices = self._buckets[self._bucket]
            if self._pos < len(indices):
                i = indices[self._pos]
                if self._history:  # (failed/no route, failed, no route, demoted, head, rank, 9, i)
                    return (False, False, 0, False, bound, 0, self._rule9, i)
                return ((*bound, self._rule9), i)
            self._bucket += 1
            self._pos = 0
        return None

    def peek(self) -> tuple[object, ...] | None:
        """The key of the next healthy destination (its index last), or None: no more."""
        heap = self.heap
        while True:
            bound = self._next_bound()
            if heap and (bound is None or heap[0] < bound):
                return heap[0]
            if bound is None:
                return None
            self._pos += 1
            key = self._exact(bound[-1])  # type: ignore[arg-type]
            if key is not None:
                heapq.heappush(heap, key)

    def take(self) -> int | None:
        key = self.peek()
        if key is None:
            return None
        heapq.heappop(self.heap)
        return key[-1]  # type: ignore[return-value]


def _buckets(
    destinations: Sequence[Endpoint], evidence: frozenset[int]
) -> tuple[list[Endpoint], list[int], list[int], list[int], dict[tuple[int, ...], list[int]]]:
    """The usable distinct destinations, and their indices: those history names (``evidence``)
    and the others in the bucket of their key's lower bound (IPv4 link, IPv4 global, IPv6 by
    bound); raises `_GiveUp` when one has a zone."""
    v4_link: list[int] = []
    v4_global: list[int] = []
    v6_buckets: dict[tuple[int, ...], list[int]] = {}
    first: list[int] = []
    v6_bound = lru_cache(maxsize=64)(_v6_bound)
    dests: list[Endpoint] = []  # `_usable_destinations`, inline: one pass over a long list
    i = 0
    for d in dict.fromkeys(destinations):
        if d.scope_id:
            raise _GiveUp
        n = d._int128
        if n >> 32 == 0xFFFF:
            if evidence and n in evidence:
                first.append(i)
            elif n >> 24 & 0xFF == 127 or n >> 16 & 0xFFFF == 0xA9FE:
                v4_link.append(i)
            else:
                v4_global.append(i)
        elif n >> 118 == 0x3FA:
            continue  # link-local without a zone: not usable (`destination_usable`)
        elif evidence and n in evidence:
            first.append(i)
        else:
            # rules 6 and 8 read no bit past /64, but for ::1 and ::/96 (the low 64 bits)
            v6_buckets.setdefault(v6_bound(n >> 64 << 64 if n >> 64 else n), []).append(i)
        dests.append(d)
        i += 1
    return dests, first, v4_link, v4_global, v6_buckets


# IPv4 loopback (127/8) and link-local (169.254/16), as `Endpoint._int128` ranges
_V4_LOOP = (0xFFFF7F000000, 0xFFFF7FFFFFFF)
_V4_LL = (0xFFFFA9FE0000, 0xFFFFA9FEFFFF)


def _v4_buckets(
    int128s: tuple[int, ...], evidence: frozenset[int]
) -> tuple[list[int], Sequence[int], Sequence[int]]:
    """`_buckets` of distinct IPv4 destinations (their `Endpoint._int128` column): the indices
    history names, then the others in the link and global buckets; a column whose
    addresses are all of one kind costs no step per address."""
    first: list[int] = []
    present = evidence.intersection(int128s) if evidence else frozenset()
    if len(present) <= 8:  # found by C scans of the column
        for n in present:
            try:
                i = int128s.index(n)
                while True:
                    first.append(i)
                    i = int128s.index(n, i + 1)
            except ValueError:
                pass
        first.sort()
    else:
        first = [i for i, n in enumerate(int128s) if n in present]
    (loop_lo, loop_hi), (ll_lo, ll_hi) = _V4_LOOP, _V4_LL
    lo, hi = min(int128s), max(int128s)
    if (loop_lo <= lo and hi <= loop_hi) or (ll_lo <= lo and hi <= ll_hi):
        return first, _without(len(int128s), first), []
    if hi < loop_lo or lo > ll_hi or (loop_hi < lo and hi < ll_lo):
        return first, [], _without(len(int128s), first)
    named = set(first)
    link = [
        i
        for i, n in enumerate(int128s)
        if (loop_lo <= n <= loop_hi or ll_lo <= n <= ll_hi) and i not in named
    ]
    wide = [
        i
        for i, n in enumerate(int128s)
        if not (loop_lo <= n <= loop_hi or ll_lo <= n <= ll_hi) and i not in named
    ]
    return first, link, wide


def _without(count: int, skipped: list[int]) -> Sequence[int]:
    """``range(count)`` without the sorted indices ``skipped``."""
    if not skipped:
        return range(count)
    kept: list[int] = []
    start = 0
    for i in skipped:
        kept.extend(range(start, i))
        start = i + 1
    kept.extend(range(start, count))
    return kept


def plan_head(
    destinations: Sequence[Endpoint],
    kernel_source: Callable[[Endpoint], IPAddress | None],
    *,
    deprecated: frozenset[IPAddress] = frozenset(),
    history: PairHistory | None,
    now: float,
    interleave: int = 1,
    count: int = HEAD_PAIRS,
    max_probes: int = HEAD_PROBES,
) -> tuple[PlanHead, list[Pair]] | None:
    """The first ``count`` pairs of ``plan_pairs(destinations, sources, sort=True, ...)`` in
    mode "kernel" or "auto" (``sources.kernel_choice`` given by ``kernel_source``, called for
    as few destinations as the order needs; ``deprecated``: the deprecated local addresses),
    and every pair it looked up (their evidence bounds how long the head holds).

    None when it cannot be sure within ``max_probes`` lookups, when fewer than ``count``
    destinations are healthy, or when a destination has a zone. See the design note above.
    """
    _check_interleave(interleave)
    with_history = history is not None and len(history) > 0
    evidence: frozenset[int] = frozenset()
    demoted: _Demoted = frozenset()
    if with_history:
        assert history is not None
        known = history.evidence_destinations()
        if known is None:
            return None
        evidence = known
        demoted = history.demoted_paths(now)
    dests: Sequence[Endpoint]
    first: list[int]
    v4_link: Sequence[int]
    v4_global: Sequence[int]
    v6_buckets: dict[tuple[int, ...], list[int]] = {}
    if type(destinations) is EndpointColumns:  # distinct IPv4 addresses: by columns
        first, v4_link, v4_global = _v4_buckets(destinations.int128s, evidence)
        dests = destinations
    else:
        try:
            dests, first, v4_link, v4_global, v6_buckets = _buckets(destinations, evidence)
        except _GiveUp:  # a zone
            return None
    if len(dests) <= count:
        return None
    buckets: tuple[Mapping[tuple[int, ...], Sequence[int]], ...] = (
        {_V4_LINK: v4_link, _V4_GLOBAL: v4_global},
        v6_buckets,
    )
    pairs: dict[int, Pair] = {}
    probed: list[Pair] = []
    by_ip: dict[IPAddress, IPAddress | None] = {}

    def exact(i: int) -> tuple[object, ...] | None:
        """The key of destination ``i`` (looked up now), or None when it is known bad."""
        if len(probed) >= max_probes:
            raise _GiveUp
        d = dests[i]
        if d.ip in by_ip:
            ks = by_ip[d.ip]
        else:
            ks = by_ip[d.ip] = kernel_source(d)
        pair = Pair(None, d, ks)
        pairs[i] = pair
        probed.append(pair)
        dest = d._int128
        if ks is None:
            full, head, rule9 = _rfc6724_key(dest, _NO_SOURCE, False)
        else:
            source = as_int128(ks)
            full, head, rule9 = _rfc6724_key(dest, source, bool(deprecated) and ks in deprecated)
        if not with_history:
            return None if full[0] else (full, i)
        assert history is not None
        rank = history.ranks([pair], now)[0]
        if rank > 0 or head[0]:
            return None
        path_demoted = bool(demoted) and (pair.effective_source, d.family) in demoted
        return (False, False, 0, path_demoted, head, rank, rule9, i)

    merges = (
        _Merge(buckets[0], 0, exact, with_history),
        _Merge(buckets[1], -RULE9_MAX_PREFIX, exact, with_history),
    )
    order: list[int] = []
    try:
        for i in first:  # destinations history names: their rank is only known exactly
            key = exact(i)
            if key is not None:
                heapq.heappush(merges[dests[i].ip.version == 6].heap, key)
        a, b = merges[0].peek(), merges[1].peek()
        if a is None and b is None:
            return None
        if interleave == 0 or a is None or b is None:  # one merged order
            while len(order) < count:
                a, b = merges[0].peek(), merges[1].peek()
                if a is None and b is None:
                    break
                if b is None or (a is not None and a < b):
                    order.append(merges[0].take())  # type: ignore[arg-type]
                else:
                    order.append(merges[1].take())  # type: ignore[arg-type]
        else:
            lead, other = (merges[0], merges[1]) if a < b else (merges[1], merges[0])
            while len(order) < min(interleave, count):
                i_lead = lead.take()
                if i_lead is None:
                    break
                order.append(i_lead)
            while len(order) < count:
                i_other = other.take()
                if i_other is not None:
                    order.append(i_other)
                if len(order) >= count:
                    break
                i_lead = lead.take()
                if i_lead is not None:
                    order.append(i_lead)
                if i_other is None and i_lead is None:
                    break
    except _GiveUp:
        return None
    if len(order) < count:
        return None
    result = PlanHead(pairs[i] for i in order)
    result.more = len(dests) - count
    return result, probed
