"""What both drivers do before any socket: the ranked plan of a destination list (cached) and
the `Race` that runs it."""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

from .._core.addresses import Endpoint
from .._core.errors import InvalidArgument
from .._core.history import PairHistory
from .._core.options import Options
from .._core.pairs import Pair
from .._core.planner import plan_pairs
from .._core.race import Race
from .._io import history_file, network
from .._io.nat64 import synthesized_map
from .._io.sources import gather_sources_until, invalidate, sources_generation

# PairHistory.open, AIOCONNLIST_HISTORY, history partitions per network; and sources are
# re-read when the kernel reports an address or route change
history_file.install()
network.watch(lambda _identity: invalidate())


@dataclass(slots=True)
class _CachedPlan:
    destinations: list[Endpoint]
    sources_generation: tuple[int, ...]
    sources_until: float  # time.monotonic() scale
    # None: the plan does not depend on history (at most one pair); else its order_version,
    # with the RTT version masked out (-1) when fewer than two pairs had a success rank
    history_version: tuple[int, int] | None
    planned_at: float  # the history's (event loop's) time scale
    history_until: float
    pairs: list[Pair]


_PlanKey = tuple[object, ...]
# Plans of recent destination lists. A plan is a function of the destinations, the options,
# the sources (kernel choices and local addresses, both cached with an expiry) and the history
# (which tells through `order_version`/`order_valid_until` when its ranking could differ). A hit
# is the very plan that planning afresh would give, at the cost of one list comparison.
_PLAN_CACHE: dict[_PlanKey, _CachedPlan] = {}
_PLAN_CACHE_SIZE = 128


def plan_race(destinations: Sequence[Endpoint], options: Options, now: float) -> list[Pair]:
    """The ranked pairs for ``destinations`` (``now``: the history's time), cached."""
    history = options.history
    key: _PlanKey = (
        len(destinations),
        destinations[0],
        destinations[-1],
        options.local_addresses,
        options.interleave,
        options.sort,
        id(history),
    )
    generation = sources_generation()
    cached = _PLAN_CACHE.get(key)
    if (
        cached is not None
        and cached.sources_generation == generation
        and _history_unchanged(cached.history_version, history)
        and cached.planned_at <= now < cached.history_until
        and time.monotonic() < cached.sources_until
        and cached.destinations == destinations  # identical Endpoints compare at once
    ):
        return cached.pairs
    version = None if history is None else history.order_version
    view, sources_until = gather_sources_until(destinations, options.local_addresses)
    synthesized = synthesized_map(destinations)
    if synthesized:
        view = dataclasses.replace(view, nat64=synthesized)
    pairs = plan_pairs(
        destinations,
        view,
        history=history,
        now=now,
        interleave=options.interleave,
        sort=options.sort,
    )
    history_until = math.inf
    if history is None or version is None or len(pairs) < 2:
        version = None  # nothing to order: history cannot change this plan
    else:
        history_until, successes = history.order_valid_until(pairs, now)
        if successes < 2:  # RTT moves of a single successful pair reorder nothing
            version = (version[0], -1)
    if len(_PLAN_CACHE) >= _PLAN_CACHE_SIZE:
        _PLAN_CACHE.clear()
    _PLAN_CACHE[key] = _CachedPlan(
        list(destinations), generation, sources_until, version, now, history_until, pairs
    )
    return pairs


def _history_unchanged(version: tuple[int, int] | None, history: PairHistory | None) -> bool:
    if version is None or history is None:
        return True
    current = history.order_version
    return version[0] == current[0] and (version[1] == -1 or version[1] == current[1])


def no_usable_pair(destinations: Sequence[Endpoint]) -> InvalidArgument:
    shown = ", ".join(str(d) for d in destinations[:8]) + (", ..." if len(destinations) > 8 else "")
    return InvalidArgument(f"no usable (source, destination) pair for {shown}")


def new_race(pairs: Sequence[Pair], options: Options, origin: float, more: bool = False) -> Race:
    """The `Race` of ``pairs`` with ``options``, started at ``origin``."""
    return Race(
        pairs,
        now=origin,
        attempt_delay=options.attempt_delay,
        min_attempt_delay=options.min_attempt_delay,
        history=options.history,
        timeout=options.timeout,
        more_pairs_coming=more,
        on_event=options.on_event,
        backup_attempts=options.backup_attempts,
    )
