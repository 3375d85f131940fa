"""The per-connect caches (plan, options, parsed lists) give exactly what computing afresh gives.

Speed itself is shown by benchmarks/bench_core.py; these tests prove the caches change no
behaviour: every cached answer is compared with the uncached reference.
"""

from __future__ import annotations

import ipaddress
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aioconnlist import InvalidArgument, PairHistory
from aioconnlist._core.addresses import Endpoint, parse_address, parse_addresses
from aioconnlist._core.options import make_options, options_from
from aioconnlist._core.pairs import LocalAddress
from aioconnlist._core.planner import plan_pairs
from aioconnlist._drivers.asyncio import plan_race
from aioconnlist._io.sources import gather_sources, invalidate

POOL = [
    "127.0.0.1:80",
    "127.0.0.2:81",
    "192.0.2.7:80",
    "192.0.2.8:443",
    "198.51.100.1:80",
    "[::1]:80",
    "[fd00::5]:80",
    "[fd00::6]:8080",
    "[2001:db8::1]:80",
    "[fe80::1%1]:80",
    "[fe80::2]:80",  # no zone: never usable
]
LOCALS: list[Any] = [
    None,
    "auto",
    (LocalAddress(ipaddress.ip_address("127.0.0.1")),),
    (
        LocalAddress(ipaddress.ip_address("192.0.2.2")),
        LocalAddress(ipaddress.ip_address("fd00::2")),
        LocalAddress(ipaddress.ip_address("127.0.0.1")),
    ),
]
KINDS = ["refused", "unreachable", "timeout", "soft", "error"]

operation = st.one_of(
    st.tuples(st.just("plan"), st.floats(0, 8)),
    st.tuples(st.just("success"), st.integers(0, 40), st.floats(0, 0.002), st.floats(0, 8)),
    st.tuples(st.just("failure"), st.integers(0, 40), st.sampled_from(KINDS), st.floats(0, 8)),
    st.tuples(st.just("clear")),
    st.tuples(st.just("invalidate")),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    picks=st.lists(st.integers(0, len(POOL) - 1), min_size=1, max_size=9),
    local=st.sampled_from(LOCALS),
    interleave=st.integers(0, 2),
    sort=st.booleans(),
    with_history=st.booleans(),
    same_list=st.booleans(),
    ops=st.lists(operation, min_size=1, max_size=25),
)
def test_cached_plan_equals_fresh_plan(
    picks: list[int],
    local: Any,
    interleave: int,
    sort: bool,
    with_history: bool,
    same_list: bool,
    ops: list[tuple[Any, ...]],
) -> None:
    # short TTLs, so that evidence expires within the generated time steps
    history = PairHistory(failure_ttl=10.0, success_ttl=25.0) if with_history else None
    options = make_options(local_addresses=local, interleave=interleave, sort=sort, history=history)
    dests = [parse_address(POOL[i]) for i in picks]
    now = 1000.0
    for op in ops:
        # the driver hands over the same list each time, or an equal new one (a new call)
        given_dests = dests if same_list else [parse_address(POOL[i]) for i in picks]
        reference = plan_pairs(
            given_dests,
            gather_sources(given_dests, options.local_addresses),
            history=history,
            now=now,
            interleave=interleave,
            sort=sort,
        )
        if op[0] == "plan":
            cached = plan_race(given_dests, options, now)
            assert cached == reference
            assert plan_race(given_dests, options, now) == reference  # the hit, too
            now += op[1]
        elif op[0] in ("success", "failure") and history is not None and reference:
            pair = reference[op[1] % len(reference)]
            if op[0] == "success":
                history.record_success(pair, op[2], now)
            else:
                history.record_failure(pair, op[2], now)
            now += op[3]
        elif op[0] == "clear" and history is not None:
            history.clear()
        elif op[0] == "invalidate":
            invalidate()


def test_plan_is_reused_until_something_changes_the_order() -> None:
    history = PairHistory()
    options = make_options(local_addresses=None, history=history)
    dests = parse_addresses(["192.0.2.7:80", "192.0.2.9:80", "192.0.2.8:80"])
    first = plan_race(dests, options, 10.0)
    assert plan_race(dests, options, 10.5) is first, "unchanged inputs: the cached plan"
    # a new RTT sample that keeps the pair's rank, and a fresh success, then a failure
    history.record_success(first[1], 0.010, 11.0)
    second = plan_race(dests, options, 11.0)
    assert second[0] == first[1], "a success moves its destination first"
    history.record_success(second[0], 0.010, 11.5)
    assert plan_race(dests, options, 12.0) is second, "same rank bucket: still the cached plan"
    history.record_failure(second[0], "refused", 12.0)
    third = plan_race(dests, options, 12.0)
    assert third[-1] == second[0], "a failure moves its destination last"
    # the failure expires after failure_ttl (600 s): the order changes back by itself
    later = plan_race(dests, options, 12.0 + 601.0)
    assert later[-1] != second[0]


def test_plan_cache_compares_the_endpoints_not_their_hashes() -> None:
    """The plan cache finds a plan by its ends' hashes: a fresh list of equal endpoints (new
    objects) gets the cached plan, a list whose ends only hash alike gets its own."""
    options = make_options(local_addresses=None, history=None)
    dests = [parse_address(("192.0.2.7", 80)), parse_address(("192.0.2.8", 80))]
    first = plan_race(dests, options, 10.0)
    fresh = [Endpoint(d.ip, d.port) for d in dests]
    assert fresh[0] is not dests[0]
    assert plan_race(fresh, options, 10.0) is first
    alike = [Endpoint(ipaddress.ip_address("192.0.2.9"), 80), Endpoint(dests[1].ip, 81)]
    for new, old in zip(alike, dests, strict=True):
        object.__setattr__(new, "_hash", old._hash)  # a collision of the key's hashes
    plan = plan_race(alike, options, 10.0)
    assert [p.destination for p in plan] == alike


def test_plan_follows_rtt_moves_between_two_successful_pairs() -> None:
    history = PairHistory()
    options = make_options(local_addresses=None, history=history)
    dests = parse_addresses(["192.0.2.7:80", "192.0.2.8:80"])
    a, b = plan_race(dests, options, 10.0)
    history.record_success(a, 0.001, 10.0)
    history.record_success(b, 0.002, 10.0)
    assert [p.destination for p in plan_race(dests, options, 10.0)] == [
        a.destination,
        b.destination,
    ]
    for _ in range(40):  # b's smoothed RTT falls towards 0, below a's
        history.record_success(b, 0.0, 10.0)
        assert plan_race(dests, options, 10.0) == plan_pairs(
            dests, gather_sources(dests, None), history=history, now=10.0
        )
    assert plan_race(dests, options, 10.0)[0].destination == b.destination


@settings(max_examples=300, deadline=None)
@given(
    kwargs=st.dictionaries(
        st.sampled_from(["timeout", "attempt_delay", "min_attempt_delay", "interleave", "sort"]),
        st.one_of(
            st.none(),
            st.booleans(),
            st.integers(-2, 3),
            st.floats(allow_nan=True, allow_infinity=True),
            st.sampled_from([0.0, -0.0, 0.01, 0.1, 1, 1.0, True, False]),
            st.text(max_size=3),
        ),
        max_size=4,
    ),
    local=st.sampled_from([None, "auto", "bogus", ["127.0.0.1"], ()]),
)
def test_options_cache_equals_make_options(kwargs: dict[str, Any], local: Any) -> None:
    kwargs = dict(kwargs, local_addresses=local) if local != () else kwargs
    for _ in range(2):  # the second time from the cache
        try:
            expected: Any = make_options(**kwargs)
        except InvalidArgument as e:
            expected = ("error", str(e))
        try:
            got: Any = options_from(dict(kwargs))
        except InvalidArgument as e:
            got = ("error", str(e))
        assert got == expected
        if not isinstance(expected, tuple):
            for name in ("timeout", "attempt_delay", "min_attempt_delay"):
                want, have = getattr(expected, name), getattr(got, name)
                assert type(want) is type(have)
                if want is not None and not math.isnan(want):
                    assert math.copysign(1, want) == math.copysign(1, have)


def test_options_cache_tells_true_from_one() -> None:
    assert options_from({"sort": True}).sort is True
    with pytest.raises(InvalidArgument, match="sort"):
        options_from({"sort": 1})
    assert options_from({"interleave": 1}).interleave == 1
    with pytest.raises(InvalidArgument, match="interleave"):
        options_from({"interleave": True})


def test_parsed_list_cache_follows_the_list() -> None:
    same = [("127.0.0.1", 80), "192.0.2.1:443"]
    first = parse_addresses(same)
    assert parse_addresses(same) == first
    assert parse_addresses(same) is not parse_addresses(same), "callers get their own list"
    same.append(("127.0.0.1", 80.0))  # a new last element: parsed (and refused) afresh
    with pytest.raises(InvalidArgument, match="port"):
        parse_addresses(same)
    same[-1] = ("127.0.0.3", 80)
    assert parse_addresses(same)[-1] == Endpoint(ipaddress.ip_address("127.0.0.3"), 80)
    same[0] = ("127.0.0.4", 80)  # same length, same last element, another first one
    assert parse_addresses(same)[0].ip == ipaddress.ip_address("127.0.0.4")
    inner: list[Any] = ["127.0.0.1", 80]  # mutable elements are never cached
    outer = [inner]
    assert parse_addresses(outer)[0].port == 80
    inner[1] = 81
    assert parse_addresses(outer)[0].port == 81
    inner[1] = 81.0
    with pytest.raises(InvalidArgument, match="port"):
        parse_addresses(outer)


@given(
    st.lists(
        st.one_of(
            st.sampled_from(POOL),
            st.tuples(st.sampled_from(["127.0.0.1", "::1", "192.0.2.9"]), st.integers(1, 3)),
            st.tuples(st.sampled_from(["127.0.0.1"]), st.sampled_from([1.0, True, "80", 0])),
        ),
        max_size=6,
    )
)
def test_parsed_list_cache_equals_fresh_parse(values: list[Any]) -> None:
    def fresh() -> Any:
        try:
            seen: dict[Endpoint, None] = {}
            for v in values:
                seen.setdefault(parse_address(v), None)
            if not seen:
                raise InvalidArgument("the address list is empty")
            return list(seen)
        except InvalidArgument as e:
            return ("error", str(e))

    def cached() -> Any:
        try:
            return parse_addresses(values)
        except InvalidArgument as e:
            return ("error", str(e))

    def rebuilt() -> Any:  # equal by value, new tuples: the short-list cache, not the list's
        try:
            return parse_addresses([tuple(list(v)) if type(v) is tuple else v for v in values])
        except InvalidArgument as e:
            return ("error", str(e))

    expected = fresh()
    assert cached() == expected
    assert cached() == expected
    assert rebuilt() == expected
    assert rebuilt() == expected


def test_a_short_list_built_afresh_meets_the_endpoints_parsed_before() -> None:
    port = 40_000 + id(object()) % 20_000  # not met by another test

    def built() -> list[Any]:
        return [("127.0.0.1", port + int("0")), ("::1", port)]

    first = parse_addresses(built())
    again = parse_addresses(built())
    assert again == first and again is not first, "callers get their own list"
    assert all(a is b for a, b in zip(again, first, strict=True)), "the very same endpoints"
    # equal by value is not enough: only exact str and int meet the cache
    with pytest.raises(InvalidArgument, match="port"):
        parse_addresses([("127.0.0.1", float(port)), ("::1", port)])
    with pytest.raises(InvalidArgument, match="port"):
        parse_addresses([("127.0.0.1", True), ("::1", port)])
    assert parse_addresses([("127.0.0.1", 1), ("::1", port)])[0].port == 1
    with pytest.raises(InvalidArgument, match="port"):
        parse_addresses([("127.0.0.1", True), ("::1", port)])
