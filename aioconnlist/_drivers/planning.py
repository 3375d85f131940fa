"""What both drivers do before any socket: the ranked plan of a destination list (cached) and
the `Race` that runs it."""

from __future__ import annotations

import _thread
import errno
import logging
import math
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from .._core import history as _history
from .._core.addresses import LONG_LIST, Endpoint, IPAddress, int128s, own_copy, seen_before
from .._core.errors import (
    RESOURCE_ERRNOS,
    ConnectError,
    ConnectTimeout,
    InvalidArgument,
    OutOfResources,
)
from .._core.history import PairHistory
from .._core.options import Options
from .._core.pairs import (
    LINK_LOCAL,
    LOOPBACK,
    WIDER,
    Pair,
    SourceView,
    destination_usable,
    locality,
)
from .._core.planner import PlanHead, plan_head, plan_pairs
from .._core.race import Race
from .._core.records import positional_record
from .._io import sources
from .._io.nat64 import synthesized_map
from .._io.sources import (
    gather_sources_until,
    invalidate,
    kernel_source_entry,
    learn_kernel_source,
    machine_addresses,
    machine_addresses_entry,
    sources_generation,
)

if TYPE_CHECKING:
    from .._io.network import NetworkIdentity

#: seconds after the first plan before the network is read (off that plan's connect, and out
#: of a short-lived process altogether; a waiter, `wait_followed`, does not wait for it)
FOLLOW_DELAY = 0.02


def _open_history(history: PairHistory, path: str) -> None:
    from .._io import history_file  # the file machinery (json...) when a file is asked for

    history_file.install()
    history_file.attach(history, path)


if os.environ.get("AIOCONNLIST_HISTORY"):
    from .._io import history_file

    history_file.install()  # DEFAULT_HISTORY file-backed now, as the variable asks
else:
    _history._OPENER = _open_history  # PairHistory.open
_start_lock = threading.RLock()
_started = False
_wake = threading.Event()  # a waiter wants the network followed now
_followed = threading.Event()  # the first go at the network is over


def _start() -> None:
    """On the first plan: follow the network (history partitions per network; sources re-read
    when the kernel reports an address, link or route change). A thread does the work (the
    network's identity, the kernel's TCP metrics, the machine's addresses, the watcher thread),
    started `FOLLOW_DELAY` seconds after the first plan, by a timer of the event loop that
    plan runs on (else at once, and it waits that long itself): the first connect pays neither
    for it nor for its start, no netlink dump and none of that machinery's imports run on the
    loop, and a process that ends sooner never starts it. Until the identity arrives the
    history gathers its evidence unnamed (the first identity names it); the sources are cached
    ``CACHE_TTL`` seconds, as where no change is notified."""
    global _scheduled_on
    with _start_lock:
        if _started:
            return
        loop = _running_loop()
        if loop is None:
            _start_thread(FOLLOW_DELAY)
        elif _scheduled_on is not loop or loop.is_closed():  # pending on no loop that runs
            _scheduled_on = loop
            loop.call_later(FOLLOW_DELAY, _start_thread, 0.0)


_scheduled_on: Any = None  # the loop whose timer will start the thread


def _running_loop() -> Any:
    """The asyncio loop running in this thread, if any (asyncio is not imported for it)."""
    asyncio = sys.modules.get("asyncio")
    if asyncio is None:
        return None
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _start_thread(delay: float) -> None:
    global _started
    with _start_lock:
        if _started:
            return
        _started = True
    # a bare thread: threading.Thread.start() would wait for it to run
    _thread.start_new_thread(_follow, (delay,))


def _follow(delay: float) -> None:
    try:
        if delay:
            _wake.wait(delay)
        from .._io import history_file, network

        sources.set_change_notifications(network.notifying)
        network.watch(_on_network, wait=True)  # the identity read here, then the watcher starts
        history_file.install()
        history_file.follow_network(wait=True)  # the histories on it, with the kernel's RTTs
        sources.refresh_local_addresses()
    except Exception:  # never an unhandled error in a thread of ours
        logging.getLogger("aioconnlist.network").exception("following the network failed")
    finally:
        _followed.set()


def wait_followed(timeout: float | None) -> bool:
    """Block until the first go at the network after `_start` is over (False: `_start` was not
    called, or ``timeout`` passed first); the thread is started now if pending, and asked not
    to wait its delay."""
    if not _started and _scheduled_on is None:
        return False
    _wake.set()
    _start_thread(0.0)
    if not _followed.wait(timeout):
        return False
    from .._io import network

    network.wait_ready(timeout)  # the watcher thread running, counted by threading
    return True


def _before_addresses() -> bool:
    """True until the first go at the network (which reads the machine's addresses into the
    cache) is over, unless they were read otherwise: the plans of a process's first races take
    the kernel's choice of source alone, with no interface enumeration (two netlink dumps) on
    their path; alternate sources join the plans from then on."""
    global _addresses_known
    if _followed.is_set() or sources.local_addresses_read():
        _addresses_known = True  # for good: neither turns back (a fork keeps a set event)
        return False
    return True


_addresses_known = False  # `_before_addresses` turned false (a look at a global per plan)


_seen_network = False


def _on_network(_identity: NetworkIdentity) -> None:
    """Every identity after the first is a change: the cached sources go, and are read again
    here, in the watcher's thread."""
    global _seen_network
    if _seen_network:
        invalidate()
        sources.refresh_local_addresses()
    _seen_network = True


def _after_fork_in_child() -> None:
    global _started, _wake, _followed, _scheduled_on
    if not _followed.is_set():  # the thread did not come along: start again at the next plan
        _started, _scheduled_on = False, None
        _wake, _followed = threading.Event(), threading.Event()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


@positional_record
class _CachedPlan:
    destinations: Sequence[Endpoint]  # a list, or `EndpointColumns` (immutable: kept as is)
    sources_generation: tuple[int, ...]
    sources_until: float  # time.monotonic() scale
    # None: the plan does not depend on history (at most one pair); else its order_version,
    # with the RTT version masked out (-1) when fewer than two pairs had a success rank
    history_version: tuple[int, int] | None
    planned_at: float  # the history's (event loop's) time scale
    history_until: float
    pairs: list[Pair]
    size: int  # what it counts for in `PLAN_CACHE_PAIRS`
    # a head plan (kernel-choice pairs only, the same in modes "kernel" and "auto"): the
    # deprecated local addresses it was ranked with (rule 3); None: a full plan
    deprecated: frozenset[IPAddress] | None
    used: int  # `_plan_misses` when last planned or hit
    hit: bool = False  # used again since it was planned


_PlanKey = tuple[object, ...]
# Plans of recent destination lists. A plan is a function of the destinations, the options,
# the sources (kernel choices and local addresses, both cached with an expiry) and the history
# (which tells through `order_version`/`order_valid_until` when its ranking could differ). A hit
# is the very plan that planning afresh would give, at the cost of one list comparison.
# Bounded by what it holds, not only by its count of plans: at most `PLAN_CACHE_PAIRS` pairs in
# all (a head plan, `PlanHead`, counts as the destinations it holds), the least recently used
# dropped first, and a full plan larger than a quarter of that (32,768) is not kept (planning
# it costs far more than a cache miss on it saves). A head plan is kept up to the whole bound:
# it is what makes the same long list cost a list comparison.
_PLAN_CACHE: dict[_PlanKey, _CachedPlan] = {}
_PLAN_CACHE_SIZE = 128
PLAN_CACHE_PAIRS = 131_072
_PLAN_LOCK = threading.Lock()
_plan_cache_pairs = 0
# A plan larger than a quarter of the bound evicts only plans never used again or unused for
# `_RECENT` misses (and is not kept when that does not make room): fresh long lists, each
# planned once, do not push out the long list a caller passes again and again.
_RECENT = 8
_plan_misses = 0
_SEEN_ONCE: dict[tuple[object, ...], None] = {}  # long lists planned once (`seen_before`)
# Kernel choices are probed this many destinations at a time, with a look at ``stop`` between.
_CHUNK = 512
#: lists longer than this are planned head first (`plan_race` with ``head=True``)
HEAD_MIN = 32


def plan_race(
    destinations: Sequence[Endpoint],
    options: Options,
    now: float,
    *,
    stop: Callable[[], bool] | None = None,
    head: bool = False,
) -> list[Pair]:
    """The ranked pairs for ``destinations`` (``now``: the history's time), cached.

    ``head``: a list longer than `HEAD_MIN` may be planned head first (`head_of_plan`): the
    result is then a `PlanHead` (its first pairs exactly; the race asks for the full plan,
    ``head=False``, once it has started them). ``stop``: polled while the sources of a long
    list are gathered; when it turns true, planning ends with `ConnectTimeout`. A shortage of
    descriptors or memory while the sources are gathered is `OutOfResources`; another OSError
    a `ConnectError` of its errno.
    """
    global _plan_cache_pairs
    if not _started:
        _start()
    if (
        not _addresses_known and options.local_addresses == "auto" and head and _before_addresses()
    ):  # a process's first races: the kernel's choice first, alternates when needed
        known = _evidence_sources(options.history, destinations)
        if known is not None:
            kernel = options.replace(local_addresses=None)
            planned = plan_race(destinations, kernel, now, stop=stop, head=True)
            if not known or (type(planned) is list and known <= _sources_of(planned)):
                return _alternates_later(planned)
    history = options.history
    if head and len(destinations) > HEAD_MIN:
        first = head_of_plan(destinations, options, now)
        if first is not None:
            return first
    key = _key(destinations, options)
    generation = sources_generation()
    hit = cached_plan(destinations, options, now, key, generation)
    if hit is not None:
        return hit
    version = None if history is None else history.order_version
    try:
        view, sources_until = _gather(destinations, options, stop)
    except ConnectError:
        raise
    except OSError as exc:  # e.g. EMFILE while the interfaces are enumerated
        raise as_connect_error(exc, "reading the local addresses") from exc
    if stop is not None and stop():
        raise ConnectTimeout(
            f"timed out planning {len(destinations)} destinations; no attempt was started"
        )
    synthesized = synthesized_map(destinations)
    if synthesized:
        view = view.replace(nat64=synthesized)
    pairs = plan_pairs(
        destinations,
        view,
        history=history,
        now=now,
        interleave=options.interleave,
        sort=options.sort,
    )
    if len(pairs) <= PLAN_CACHE_PAIRS // 4:  # a longer plan costs far more than a miss saves
        _keep(key, destinations, history, pairs, pairs, generation, sources_until, version, now)
    return pairs


def quick_plan(destinations: Sequence[Endpoint], options: Options, now: float) -> PlanHead | None:
    """The plan of a process's first races to one destination, made with no I/O and kept
    nowhere: its kernel's-choice pair, alternates later, as `plan_race` plans it then (when
    history knows nothing of the destination, or only successes through that pair). The
    kernel's source is the cached one, else left unknown: the race's first attempt makes the
    pair whole, its connected socket naming the source (`learned_pair`), or, when it fails
    or is slow, the plan is made in full (`full_plan`). A first connect thus pays for no UDP
    probe and no plan. None when `plan_race` must plan (``now``: ``time.monotonic()``)."""
    if _addresses_known or len(destinations) != 1 or options.local_addresses != "auto":
        return None
    if not _started:
        _start()
    destination = destinations[0]
    if not _before_addresses() or not destination_usable(destination):
        return None
    evidence = _evidence_sources(options.history, destinations)
    if evidence is None:
        return None  # evidence against it: ranked with history
    kernel_source = sources.cached_kernel_source(destination, now)
    if evidence and not evidence <= {_history._source_int(kernel_source)}:
        return None  # a success through another source: ranked with history
    return _alternates_later([Pair(None, destination, kernel_source)])


def learned_pair(pair: Pair, host: str | None) -> Pair:
    """``pair``, of a `quick_plan` with no kernel's source, with the one its connected socket
    names (``host``: its name's address; None: not readable, then probed), kept for the next
    plans as a probe's answer is."""
    destination = pair.destination
    if host is None:
        return Pair(None, destination, sources.kernel_source(destination))
    return Pair(None, destination, learn_kernel_source(destination, host, time.monotonic()))


def full_plan(
    pair: Pair, destinations: Sequence[Endpoint], options: Options, now: float
) -> list[Pair]:
    """The plan `plan_race` makes of ``destinations`` now, with the kernel's-choice pair of
    ``pair``'s destination first: ``pair`` is a `quick_plan`'s, whose attempt started and
    which the race now needs in full (the attempt failed, or the next one is due)."""
    planned = plan_race(destinations, options, now, head=True)
    destination = pair.destination
    first = next((p for p in planned if p.source is None and p.destination == destination), None)
    if first is None:
        first = learned_pair(pair, None)  # (not in the plan: probed)
    elif first is planned[0]:
        return planned  # (always, unless history learned of the destination meanwhile)
    reordered = [first, *(p for p in planned if p is not first)]
    if not isinstance(planned, PlanHead):
        return reordered
    head = PlanHead(reordered)
    head.more = planned.more
    return head


def _evidence_sources(
    history: PairHistory | None, destinations: Sequence[Endpoint]
) -> frozenset[int] | None:
    """The sources of ``history``'s evidence for ``destinations`` when it is all successes
    (empty: no evidence; None: maybe evidence against one of them). A kernel's-choice plan
    is then the head of the full plan: alternate sources, of which it knows nothing, rank
    after pairs that connected and after the healthy kernel's-choice pairs."""
    if history is None:
        return frozenset()
    return history.evidence_sources(int128s(destinations))


def _sources_of(pairs: list[Pair]) -> frozenset[int]:
    """The sources of ``pairs`` as history keys them (-1: unknown)."""
    return frozenset(_history._pair_key(p)[0] for p in pairs)


def _alternates_later(kernel: list[Pair]) -> PlanHead:
    """The kernel's-choice plan as the head of the full plan: a race that needs more than it
    (its pairs started, the next attempt due) asks for the full plan, alternate sources and
    all; the machine's addresses are read then, not before (a process's first races)."""
    if isinstance(kernel, PlanHead):
        return kernel
    head = PlanHead(kernel)
    head.more = 0
    return head


def head_of_plan(
    destinations: Sequence[Endpoint], options: Options, now: float, *, cached_only: bool = False
) -> PlanHead | None:
    """The head of the plan of a list longer than `HEAD_MIN` (cached), or None when it is
    planned in full (``sort=False``, explicit sources, NAT64, or a head that needs more than
    a few hundred lookups to be sure of). ``cached_only``: the cached head or None."""
    if len(destinations) <= HEAD_MIN or not options.sort:
        return None
    if options.local_addresses is not None and options.local_addresses != "auto":
        return None
    if not _started:
        _start()
    deprecated: frozenset[IPAddress] = frozenset()
    if options.local_addresses == "auto":
        try:
            local = machine_addresses_entry(time.monotonic())[1]
        except OSError as exc:  # e.g. EMFILE while the interfaces are enumerated
            raise as_connect_error(exc, "reading the local addresses") from exc
        deprecated = frozenset(s.ip for s in local if s.deprecated)
    key = _key(destinations, options, True)
    generation = sources_generation()
    hit = cached_plan(destinations, options, now, key, generation, deprecated=deprecated)
    if hit is not None:
        assert isinstance(hit, PlanHead)
        return hit
    if cached_only:
        return None
    history = options.history
    version = None if history is None else history.order_version
    planned = _plan_head(destinations, options, now, deprecated)
    if planned is None:
        return None
    pairs, probed, sources_until = planned
    _keep(
        key,
        destinations,
        history,
        pairs,
        probed,
        generation,
        sources_until,
        version,
        now,
        deprecated,
    )
    return pairs


def _plan_head(
    destinations: Sequence[Endpoint],
    options: Options,
    now: float,
    deprecated: frozenset[IPAddress],
) -> tuple[PlanHead, list[Pair], float] | None:
    """`plan_head` with the cached kernel choices: (head, the pairs looked up, until when the
    kernel choices it read hold), or None (plan in full)."""
    if synthesized_map(destinations):
        return None  # NAT64 destinations rank as the IPv4 they stand for: planned in full
    t = time.monotonic()
    until = math.inf

    def kernel_source(destination: Endpoint) -> IPAddress | None:
        nonlocal until
        expiry, source = kernel_source_entry(destination, t)
        until = min(until, expiry)
        return source

    planned = plan_head(
        destinations,
        kernel_source,
        deprecated=deprecated,
        history=options.history,
        now=now,
        interleave=options.interleave,
    )
    return None if planned is None else (*planned, until)


def _keep(
    key: _PlanKey,
    destinations: Sequence[Endpoint],
    history: PairHistory | None,
    pairs: list[Pair],
    ranked: list[Pair],
    generation: tuple[int, ...],
    sources_until: float,
    version: tuple[int, int] | None,
    now: float,
    deprecated: frozenset[IPAddress] | None = None,
) -> None:
    """Cache the plan ``pairs`` of ``destinations`` (``ranked``: every pair whose history
    ranked it: what bounds how long it holds). An entry counts as its destinations or its
    pairs, whichever are more (a head plan of a long list holds the list)."""
    global _plan_cache_pairs, _plan_misses
    history_until = math.inf
    if history is None or version is None or len(ranked) < 2:
        version = None  # nothing to order: history cannot change this plan
    else:
        history_until, successes = history.order_valid_until(ranked, now)
        if successes < 2:  # RTT moves of a single successful pair reorder nothing
            version = (version[0], -1)
    size = max(len(pairs), len(destinations))
    if size > PLAN_CACHE_PAIRS:
        return
    with _PLAN_LOCK:  # a long list is planned in a worker thread
        if len(destinations) > LONG_LIST:  # kept when planned a second time: not fresh lists
            middle = destinations[len(destinations) // 2]
            if not seen_before((*key, middle), _SEEN_ONCE):
                return
        _plan_misses += 1
        entry = _CachedPlan(
            own_copy(destinations),
            generation,
            sources_until,
            version,
            now,
            history_until,
            pairs,
            size,
            deprecated,
            _plan_misses,
        )
        old = _PLAN_CACHE.pop(key, None)
        if old is not None:
            _plan_cache_pairs -= old.size

        def full() -> bool:
            return (
                len(_PLAN_CACHE) >= _PLAN_CACHE_SIZE or _plan_cache_pairs + size > PLAN_CACHE_PAIRS
            )

        if size > PLAN_CACHE_PAIRS // 4:  # only what was not used lately makes room
            stale = [
                k for k, v in _PLAN_CACHE.items() if not v.hit or v.used < _plan_misses - _RECENT
            ]
            for k in stale:
                if not full():
                    break
                _plan_cache_pairs -= _PLAN_CACHE.pop(k).size
            if full():
                return
        while _PLAN_CACHE and full():  # the least recently used go first, not the whole cache
            _plan_cache_pairs -= _PLAN_CACHE.pop(next(iter(_PLAN_CACHE))).size
        _PLAN_CACHE[key] = entry
        _plan_cache_pairs += size


def _key(destinations: Sequence[Endpoint], options: Options, head: bool = False) -> _PlanKey:
    # The end endpoints by their hashes, not themselves: a fresh list's endpoints are new
    # objects, and each lookup, LRU move and store would compare them field by field (a Python
    # __eq__ and ipaddress's per endpoint, seven times a plan); a hit compares the list anyway.
    return (
        len(destinations),
        destinations[0]._hash,
        destinations[-1]._hash,
        "head" if head else options.local_addresses,  # (a head: modes "kernel" and "auto")
        options.interleave,
        options.sort,
        id(options.history),
    )


def cached_plan(
    destinations: Sequence[Endpoint],
    options: Options,
    now: float,
    key: _PlanKey | None = None,
    generation: tuple[int, ...] | None = None,
    *,
    deprecated: frozenset[IPAddress] | None = None,
) -> list[Pair] | None:
    """The full plan `plan_race` would give, when it is in the cache (no I/O); else None.
    (``deprecated``: the deprecated local addresses now, for a head plan's key.)"""
    if key is None:
        key = _key(destinations, options)
    cached = _PLAN_CACHE.get(key)
    if cached is None:
        return None
    if (
        cached.sources_generation == (sources_generation() if generation is None else generation)
        and (
            cached.history_version is None
            or _history_unchanged(cached.history_version, options.history)
        )
        and cached.planned_at <= now < cached.history_until
        and time.monotonic() < cached.sources_until
        and cached.deprecated == deprecated
        and cached.destinations == destinations  # identical Endpoints compare at once
    ):
        cached.used = _plan_misses
        cached.hit = True
        # (already the most recently used, the everyday repeat: no lock, no three lookups more)
        if len(_PLAN_CACHE) > 1 and next(reversed(_PLAN_CACHE.values())) is not cached:
            with _PLAN_LOCK:  # most recently used last
                if _PLAN_CACHE.get(key) is cached:
                    _PLAN_CACHE[key] = _PLAN_CACHE.pop(key)
        return cached.pairs
    return None


def _gather(
    destinations: Sequence[Endpoint], options: Options, stop: Callable[[], bool] | None
) -> tuple[SourceView, float]:
    """`gather_sources_until`, in chunks with a look at ``stop`` between them."""
    if stop is None or len(destinations) <= _CHUNK:
        return gather_sources_until(destinations, options.local_addresses)
    kernel_choice: dict[IPAddress, IPAddress | None] = {}
    routes: dict[tuple[IPAddress, IPAddress], int] = {}
    until = math.inf
    view = None
    for i in range(0, len(destinations), _CHUNK):
        if stop():
            raise ConnectTimeout(
                f"timed out planning {len(destinations)} destinations; no attempt was started"
            )
        view, chunk_until = gather_sources_until(
            destinations[i : i + _CHUNK], options.local_addresses
        )
        kernel_choice.update(view.kernel_choice)
        routes.update(view.routes)
        until = min(until, chunk_until)
    assert view is not None
    return view.replace(kernel_choice=kernel_choice, routes=routes), until


def as_connect_error(exc: OSError, what: str = "") -> ConnectError:
    """A bare OSError from outside the race (no descriptor for a probe socket...), as the error
    family: `OutOfResources` (ENOBUFS) for a shortage of memory or descriptors, a
    `ConnectError` of its own errno otherwise. ``what``: what it kept from being done."""
    detail = f"{what}: {exc.strerror or exc}" if what else str(exc.strerror or exc)
    if exc.errno in RESOURCE_ERRNOS:
        return OutOfResources(f"out of resources: {detail}")
    return ConnectError(exc.errno or errno.EIO, detail)


def _history_unchanged(version: tuple[int, int], history: PairHistory | None) -> bool:
    if history is None:
        return True
    current = history.order_version
    return version[0] == current[0] and (version[1] == -1 or version[1] == current[1])


_KIND = {LOOPBACK: "loopback", LINK_LOCAL: "link-local", WIDER: "global"}


def _why_unusable(destination: Endpoint, local: object) -> str:
    """Why no pair can reach ``destination`` with the sources ``local`` (Options' form)."""
    ip = destination.ip
    if not destination_usable(destination):
        return f"{ip} is IPv6 link-local and has no zone (write it [{ip}%eth0]:{destination.port})"
    if not isinstance(local, tuple):
        return "no source reaches it"
    family = [s for s in local if s.ip.version == ip.version]
    if not family:
        return f"no IPv{ip.version} address among local_addresses (a source must be of its family)"
    kind = _KIND[locality(ip)]
    kinds = sorted({_KIND[locality(s.ip)] for s in family})
    return (
        f"it is {kind} and the IPv{ip.version} local_addresses are {'/'.join(kinds)}: "
        "loopback and link-local sources reach only destinations of their own kind"
    )


def no_usable_pair(
    destinations: Sequence[Endpoint], options: Options | None = None
) -> InvalidArgument:
    """The error for a race with nothing to attempt, saying why for each destination (a
    family mismatch, a link-local address without zone, sources of the wrong kind) and which
    explicit sources are not addresses of this machine."""
    local = None if options is None else options.local_addresses
    reasons = [f"{d}: {_why_unusable(d, local)}" for d in destinations[:8]]
    if len(destinations) > 8:
        reasons.append(f"and {len(destinations) - 8} more")
    message = "no usable (source, destination) pair: " + "; ".join(reasons)
    if isinstance(local, tuple):
        machine = {a.ip for a in machine_addresses()}
        foreign = [str(s) for s in local if s.ip not in machine]
        if foreign:
            message += f" (not an address of this machine: {', '.join(foreign)})"
    return InvalidArgument(message)


def new_race(pairs: Sequence[Pair], options: Options, origin: float, more: bool = False) -> Race:
    """The `Race` of ``pairs`` with ``options``, started at ``origin`` (a `PlanHead`: the
    race asks for the rest, `Race.needs_tail`)."""
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
        tail=pairs.more if isinstance(pairs, PlanHead) else None,
    )
