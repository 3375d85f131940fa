"""plan_head: the head of a long plan, exactly `plan_pairs`' first pairs, with few lookups."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aioconnlist import PairHistory, RaceEvent
from aioconnlist._core.addresses import Endpoint, EndpointColumns, IPAddress
from aioconnlist._core.pairs import LocalAddress, Pair, SourceView
from aioconnlist._core.planner import PlanHead, plan_head, plan_pairs
from aioconnlist._core.race import Race

ip = ipaddress.ip_address

# destinations of every class the ranking tells apart: loopback, link-local and global IPv4,
# ::1, global, 6to4, Teredo, ULA, site-local and ::/96 IPv6
DEST_POOL = [
    *(f"127.0.0.{i}" for i in range(1, 5)),
    *(f"169.254.1.{i}" for i in range(1, 3)),
    *(f"192.0.2.{i}" for i in range(1, 6)),
    *(f"198.51.100.{i}" for i in range(1, 3)),
    "::1",
    *(f"2001:db8:1::{i}" for i in range(1, 5)),
    *(f"2001:db8:2:0:8000::{i}" for i in range(1, 3)),
    "2002:c000:201::1",
    "2001:0:1::1",
    *(f"fd00::{i}" for i in range(1, 3)),
    "fec0::1",
    "::c000:201",
]
# kernel choices: matching and mismatching scope/label/prefix, and no route (None)
SOURCE_POOL: list[str | None] = [
    "127.0.0.1",
    "169.254.0.1",
    "192.0.2.10",
    "10.0.0.1",
    "::1",
    "2001:db8:1::10",
    "2001:db8:3::10",
    "2002:c000:201::10",
    "fd00::10",
    "fe80::1",
    None,
]


def endpoint(text: str, port: int) -> Endpoint:
    return Endpoint(ip(text), port)


class Probe:
    """A kernel-source lookup of a fixed table that counts its calls."""

    def __init__(self, table: dict[IPAddress, IPAddress | None]) -> None:
        self.table = table
        self.calls: list[Endpoint] = []

    def __call__(self, destination: Endpoint) -> IPAddress | None:
        self.calls.append(destination)
        return self.table[destination.ip]


def full_plan(
    dests: Sequence[Endpoint],
    table: dict[IPAddress, IPAddress | None],
    history: PairHistory | None,
    interleave: int,
    mode: str = "kernel",
    local: tuple[LocalAddress, ...] = (),
) -> list[Pair]:
    view = SourceView(mode, local, table)  # type: ignore[arg-type]
    return plan_pairs(dests, view, history=history, now=1000.0, interleave=interleave)


@st.composite
def scenarios(draw: st.DrawFn) -> dict[str, object]:
    ips = draw(st.lists(st.sampled_from(DEST_POOL), min_size=3, max_size=40))
    ports = draw(st.lists(st.sampled_from([80, 443]), min_size=len(ips), max_size=len(ips)))
    dests = [endpoint(a, p) for a, p in zip(ips, ports, strict=True)]
    table: dict[IPAddress, IPAddress | None] = {}
    for d in dests:
        if d.ip not in table:
            same_family = [s for s in SOURCE_POOL if s is None or ip(s).version == d.ip.version]
            choice = draw(st.sampled_from(same_family))
            table[d.ip] = None if choice is None else ip(choice)
    deprecated = draw(st.sets(st.sampled_from([s for s in SOURCE_POOL if s]), max_size=2))
    history = None
    if draw(st.booleans()):
        history = PairHistory()
        for d in draw(st.lists(st.sampled_from(dests), max_size=6)):
            pair = Pair(None, d, table[d.ip])
            if draw(st.booleans()):
                history.record_success(pair, draw(st.sampled_from([0.001, 0.02, 0.3])), 990.0)
            else:
                kind = draw(st.sampled_from(["refused", "timeout", "soft"]))
                history.record_failure(pair, kind, 995.0)  # type: ignore[arg-type]
    return {
        "dests": dests,
        "table": table,
        "deprecated": frozenset(ip(s) for s in deprecated),
        "history": history,
        "interleave": draw(st.integers(0, 3)),
        "count": draw(st.integers(2, 6)),
        "max_probes": draw(st.sampled_from([3, 10, 1000])),
    }


@settings(max_examples=600, deadline=None)
@given(scenarios())
def test_the_head_is_the_full_plans_first_pairs(s: dict[str, object]) -> None:
    """Whenever plan_head answers, its pairs are exactly the first pairs of the full plan (every
    address class, kernel choices of every kind, deprecated sources, history of successes and
    failures, any interleave); it looks up no destination twice and at most ``max_probes``."""
    dests: list[Endpoint] = s["dests"]  # type: ignore[assignment]
    table: dict[IPAddress, IPAddress | None] = s["table"]  # type: ignore[assignment]
    history: PairHistory | None = s["history"]  # type: ignore[assignment]
    deprecated: frozenset[IPAddress] = s["deprecated"]  # type: ignore[assignment]
    local = tuple(LocalAddress(a) for a in sorted(deprecated, key=str))
    view_local = tuple(LocalAddress(a.ip, deprecated=True) for a in local)
    probe = Probe(table)
    count: int = s["count"]  # type: ignore[assignment]
    got = plan_head(
        dests,
        probe,
        deprecated=deprecated,
        history=history,
        now=1000.0,
        interleave=s["interleave"],  # type: ignore[arg-type]
        count=count,
        max_probes=s["max_probes"],  # type: ignore[arg-type]
    )
    # mode "auto" with those deprecated sources: the kernel pairs come first either way
    reference = full_plan(dests, table, history, s["interleave"], "auto", view_local)  # type: ignore[arg-type]
    if got is None:
        return
    head, probed = got
    assert isinstance(head, PlanHead)
    assert list(head) == reference[:count]
    assert head.more == len(set(dests)) - count
    assert len({d.ip for d in probe.calls}) == len(probe.calls)  # no lookup twice
    assert len(probe.calls) <= s["max_probes"]  # type: ignore[operator]
    assert set(head) <= set(probed)


def columns_of(dests: Sequence[Endpoint]) -> EndpointColumns:
    distinct = list(dict.fromkeys(dests))
    return EndpointColumns(tuple(d._int128 for d in distinct), tuple(d.port for d in distinct))


V4_POOL = [a for a in DEST_POOL if ip(a).version == 4]


@st.composite
def v4_scenarios(draw: st.DrawFn) -> dict[str, object]:
    kinds = draw(st.sampled_from([V4_POOL, V4_POOL[:4], V4_POOL[4:6], V4_POOL[6:], V4_POOL[3:]]))
    ips = draw(st.lists(st.sampled_from(kinds), min_size=3, max_size=40))
    ports = draw(st.lists(st.sampled_from([80, 443]), min_size=len(ips), max_size=len(ips)))
    dests = [endpoint(a, p) for a, p in zip(ips, ports, strict=True)]
    sources = [s for s in SOURCE_POOL if s is None or ip(s).version == 4]
    table = {d.ip: draw(st.sampled_from(sources)) for d in dests}
    history = None
    if draw(st.booleans()):
        history = PairHistory()
        named = draw(st.lists(st.sampled_from(dests), max_size=12))
        for d in named:
            pair = Pair(None, d, None if table[d.ip] is None else ip(table[d.ip]))
            if draw(st.booleans()):
                history.record_success(pair, draw(st.sampled_from([0.001, 0.02, 0.3])), 990.0)
            else:
                history.record_failure(pair, "refused", 995.0)
    return {
        "dests": dests,
        "table": {k: None if v is None else ip(v) for k, v in table.items()},
        "history": history,
        "interleave": draw(st.integers(0, 3)),
        "count": draw(st.integers(2, 6)),
    }


@settings(max_examples=400, deadline=None)
@given(v4_scenarios())
def test_a_head_planned_by_columns_is_the_head_planned_by_endpoints(s: dict[str, object]) -> None:
    """An IPv4 list as `EndpointColumns` (loopback, link-local, global, one kind or mixed,
    history naming some): the same head, the same lookups in the same order, and only the
    endpoints looked up are made."""
    dests: list[Endpoint] = s["dests"]  # type: ignore[assignment]
    table: dict[IPAddress, IPAddress | None] = s["table"]  # type: ignore[assignment]
    heads = []
    for given_as in (dests, columns_of(dests)):
        probe = Probe(table)
        got = plan_head(
            given_as,
            probe,
            history=s["history"],  # type: ignore[arg-type]
            now=1000.0,
            interleave=s["interleave"],  # type: ignore[arg-type]
            count=s["count"],  # type: ignore[arg-type]
        )
        heads.append((got, probe.calls))
    assert heads[0] == heads[1]
    columns = columns_of(dests)
    plan_head(columns, Probe(table), history=s["history"], now=1000.0, count=s["count"])  # type: ignore[arg-type]
    assert columns._all is None
    assert len(columns._made) <= len(set(dests))


def test_columns_naming_many_destinations_in_history_plan_as_endpoints() -> None:
    """More than 8 destinations named by history (the column scan's other branch)."""
    dests = [endpoint(f"192.0.2.{i}", 80) for i in range(1, 60)]
    history = PairHistory()
    for d in dests[5:30]:
        history.record_success(Pair(None, d, ip("192.0.2.100")), 0.01 * (d.ip.packed[3] % 7), 990.0)
    table: dict[IPAddress, IPAddress | None] = dict.fromkeys(
        (d.ip for d in dests), ip("192.0.2.100")
    )
    results = []
    for given_as in (dests, columns_of(dests)):
        probe = Probe(table)
        results.append((plan_head(given_as, probe, history=history, now=1000.0), probe.calls))
    assert results[0][0] is not None
    assert results[0] == results[1]


def test_a_long_list_of_one_class_costs_one_lookup_per_pair_of_the_head() -> None:
    """10,000 loopback destinations: the head of 8 pairs looks up 8 of them, the first 8."""
    dests = [Endpoint(ipaddress.IPv4Address(0x7F000001 + i), 80) for i in range(10_000)]
    probe = Probe(dict.fromkeys((d.ip for d in dests), ip("127.0.0.1")))
    got = plan_head(dests, probe, history=None, now=0.0, count=8)
    assert got is not None
    head, _ = got
    assert [p.destination for p in head] == dests[:8]
    assert probe.calls == dests[:8]


def test_a_dual_stack_list_interleaves_with_few_lookups() -> None:
    """Global IPv6 and IPv4, 5,000 each: the head interleaves them as the full plan does, and
    looks up a few destinations of each family, not the list."""
    v6 = [Endpoint(ipaddress.IPv6Address(0x20010DB8 << 96 | i), 443) for i in range(1, 5001)]
    v4 = [
        Endpoint(ipaddress.IPv4Address(0xC0000200 + i % 250 + (i // 250 << 8)), 443)
        for i in range(5000)
    ]
    dests = [x for pair in zip(v4, v6, strict=True) for x in pair]
    table: dict[IPAddress, IPAddress | None] = {
        d.ip: ip("2001:db8::10") if d.ip.version == 6 else ip("192.0.2.10") for d in dests
    }
    probe = Probe(table)
    got = plan_head(dests, probe, history=None, now=0.0, interleave=1, count=6)
    assert got is not None
    assert list(got[0]) == full_plan(dests, table, None, 1)[:6]
    assert [p.destination.ip.version for p in got[0]] == [6, 4, 6, 4, 6, 4]
    assert len(probe.calls) <= 64


def test_history_named_destinations_are_looked_up_and_can_lead() -> None:
    """A destination deep in the list with a recent success leads the head (history rank
    before rule 9/10), and one with a failure is not in it."""
    dests = [Endpoint(ipaddress.IPv4Address(0xC0000201 + i), 80) for i in range(3000)]
    table = dict.fromkeys((d.ip for d in dests), ip("192.0.2.250"))
    history = PairHistory()
    history.record_success(Pair(None, dests[2000], table[dests[2000].ip]), 0.01, 999.0)
    history.record_failure(Pair(None, dests[0], table[dests[0].ip]), "refused", 999.0)
    probe = Probe(table)
    got = plan_head(dests, probe, history=history, now=1000.0, count=4)
    assert got is not None
    assert [p.destination for p in got[0]] == [dests[2000], *dests[1:4]]
    assert list(got[0]) == full_plan(dests, table, history, 1)[:4]
    assert len(probe.calls) == 2 + 3


def test_no_route_at_the_front_costs_lookups_and_gives_up_when_bounded() -> None:
    """The first destinations have no route (known bad): the head is the routed ones, found by
    looking further; bounded by ``max_probes`` it gives up (None) rather than guess."""
    dests = [Endpoint(ipaddress.IPv4Address(0xC0000201 + i), 80) for i in range(2000)]
    table: dict[IPAddress, IPAddress | None] = {
        d.ip: None if i < 50 else ip("192.0.2.250") for i, d in enumerate(dests)
    }
    probe = Probe(table)
    got = plan_head(dests, probe, history=None, now=0.0, count=4, max_probes=100)
    assert got is not None
    assert [p.destination for p in got[0]] == dests[50:54]
    assert list(got[0]) == full_plan(dests, table, None, 1)[:4]
    assert plan_head(dests, Probe(table), history=None, now=0.0, count=4, max_probes=40) is None


@pytest.mark.parametrize("failing", [0, 3, 8])
def test_a_race_over_the_head_runs_as_over_the_full_plan(failing: int) -> None:
    """A Race given the head asks for the rest only when the head is started and the next
    attempt is due; then its attempts, their times and its error are those of a race over the
    full plan."""
    dests = [Endpoint(ipaddress.IPv4Address(0xC0000201 + i), 80) for i in range(40)]
    table = dict.fromkeys((d.ip for d in dests), ip("192.0.2.250"))
    full = full_plan(dests, table, None, 1)
    got = plan_head(dests, Probe(table), history=None, now=0.0, count=4)
    assert got is not None
    head = got[0]

    def run(race: Race) -> list[tuple[str, float]]:
        log: list[tuple[str, float]] = []
        now = 0.0
        for _ in range(200):  # bounded
            if race.finished:
                break
            if race.tail is not None and race.needs_tail(now):
                race.set_tail(full)
            while (a := race.start_due(now)) is not None:
                log.append((str(a.pair.destination), now))
                if a.index < failing:
                    race.failed(a, ConnectionRefusedError(111, "refused"), now)
                elif a.index == failing + 5:
                    race.connected(a, now + 0.01)
            wake = race.wake_at()
            if wake is None:
                break
            now = max(now, wake)
        return log

    def make(pairs: Sequence[Pair]) -> Race:
        from aioconnlist._core.options import make_options
        from aioconnlist._drivers.planning import new_race

        return new_race(pairs, make_options(attempt_delay=0.25, history=None), 0.0)

    lazy, eager = make(head), make(full)
    assert lazy.tail == 36
    assert run(lazy) == run(eager)
    assert lazy.winner is not None and eager.winner is not None
    assert lazy.winner.pair == eager.winner.pair


# --- through the drivers: real sockets on loopback -----------------------------------------


def _long_list(port: int, refused: int, size: int, second: int) -> list[tuple[str, int]]:
    """``refused`` loopback addresses (nothing listens there: refused at once), then
    127.0.0.1 (the listener), then more loopback addresses up to ``size``: all of one class,
    so the plan is the input order (rule 10)."""
    head = [(f"127.{second}.1.{i + 1}", port) for i in range(refused)]
    tail = [(f"127.{second}.{2 + i // 250}.{i % 250 + 1}", port) for i in range(size - refused - 1)]
    return [*head, ("127.0.0.1", port), *tail]


def _probed(addresses: Sequence[tuple[str, int]]) -> int:
    """How many of ``addresses`` the kernel-source cache holds (were looked up)."""
    from aioconnlist._io import sources

    entries = sources._kernel_cache._entries
    return sum((ip(h), 0) in entries for h, _ in addresses)


async def test_a_long_list_whose_first_works_looks_up_only_the_head(listener: object) -> None:
    """5,000 addresses, the first works: one connect, and the kernel's source of only the
    plan's head was looked up (not of every destination)."""
    addresses = await _connect_to_the_first(listener, 5000, 61)
    assert _probed(addresses) == 8  # HEAD_PAIRS


async def _connect_to_the_first(listener: object, n: int, second: int) -> list[tuple[str, int]]:
    """Connect to a fresh list of ``n`` addresses whose first is ``listener``'s; the list."""
    import aioconnlist
    from tests.support import Listener

    assert isinstance(listener, Listener)
    items = _long_list(listener.port, 0, n, second)
    sock = await aioconnlist.connect_by_list(items, history=PairHistory())
    try:
        assert sock.getpeername() == listener.address
    finally:
        sock.close()
    return items


async def test_a_fresh_list_whose_first_works_makes_only_the_heads_endpoints(
    listener: object,
) -> None:
    """A fresh list of 1,000 (IPv4, port) tuples, the first works: the race reads the
    endpoints of the plan's head (and the list's ends, the plan cache's key), not the rest
    (the parsed list, as the parsed-list cache holds it)."""
    from aioconnlist._core import addresses

    items = await _connect_to_the_first(listener, 1000, 62)
    columns = addresses._LIST_CACHE[(len(items), id(items[0]), id(items[-1]))][1]
    assert isinstance(columns, EndpointColumns)
    assert columns._all is None
    assert len(columns._made) <= 8 + 1  # HEAD_PAIRS, the last


@pytest.mark.both_loops
async def test_a_race_past_the_head_tries_in_the_full_plans_order(listener: object) -> None:
    """12 refused addresses first (more than the head), then the listener, in a list of 3,000:
    the attempts are those of the full plan, in its order, and the listener wins."""
    import aioconnlist
    from tests.support import Listener

    assert isinstance(listener, Listener)
    addresses = _long_list(listener.port, 12, 3000, 62)
    started, on_event = _started_destinations()
    sock = await aioconnlist.connect_by_list(
        addresses, history=PairHistory(), on_event=on_event, attempt_delay=5.0
    )
    try:
        assert sock.getpeername() == listener.address
    finally:
        sock.close()
    assert started == [f"{h}:{p}" for h, p in addresses[:13]]


def _started_destinations() -> tuple[list[str], Callable[[RaceEvent], None]]:
    """A list of the destinations of the attempts a race starts, and the ``on_event`` that
    fills it."""
    started: list[str] = []

    def on_event(event: RaceEvent) -> None:
        if event.kind == "started":
            started.append(str(event.pair.destination))

    return started, on_event


def test_the_blocking_race_past_the_head_tries_in_the_full_plans_order(listener: object) -> None:
    """The same with the blocking driver (its own call of the planner)."""
    from aioconnlist.blocking import create_connection
    from tests.support import Listener

    assert isinstance(listener, Listener)
    addresses = _long_list(listener.port, 12, 3000, 63)
    started, on_event = _started_destinations()
    sock = create_connection(addresses, history=PairHistory(), on_event=on_event, attempt_delay=5.0)
    try:
        assert sock.getpeername() == listener.address
    finally:
        sock.close()
    assert started == [f"{h}:{p}" for h, p in addresses[:13]]


def test_a_long_list_passed_again_stays_cached_among_fresh_long_lists() -> None:
    """The same 70,000-address list between fresh ones of that length (two do not fit in
    either cache): it keeps its parsed list and its plan (a list comparison per call), the
    fresh ones are not kept in its place, and both caches stay within their bounds."""
    from aioconnlist._core import addresses as addresses_module
    from aioconnlist._core.options import make_options
    from aioconnlist._drivers import planning

    def fresh(salt: int) -> list[tuple[str, int]]:
        return [(f"127.{2 * salt + (i >> 16)}.{i >> 8 & 255}.{i & 255}", 9) for i in range(70_000)]

    same = fresh(20)
    key = (len(same), id(same[0]), id(same[-1]))
    opts = make_options(local_addresses=None, history=None)
    planning.plan_race(addresses_module.parse_addresses(same), opts, 0.0, head=True)
    assert key not in addresses_module._LIST_CACHE  # a long list seen once is not kept
    first = planning.plan_race(addresses_module.parse_addresses(same), opts, 0.0, head=True)
    assert isinstance(first, PlanHead)  # kept the second time
    fresh_lists = []
    for salt in range(21, 24):
        parsed = addresses_module.parse_addresses(same)
        assert planning.plan_race(parsed, opts, 0.0, head=True) is first
        fresh_lists.append(fresh(salt))
        planning.plan_race(addresses_module.parse_addresses(fresh_lists[-1]), opts, 0.0, head=True)
    assert addresses_module._LIST_CACHE[key][0] == tuple(same)
    for other in fresh_lists:
        assert (len(other), id(other[0]), id(other[-1])) not in addresses_module._LIST_CACHE
    total = sum(len(entry[1]) for entry in addresses_module._LIST_CACHE.values())
    assert total <= addresses_module.LIST_CACHE_ENDPOINTS
    assert sum(e.size for e in planning._PLAN_CACHE.values()) <= planning.PLAN_CACHE_PAIRS
