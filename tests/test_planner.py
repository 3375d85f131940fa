"""plan_pairs: usable pairs only, RFC 6724 + history order, RFC 8305 interleave, speed."""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aioconnlist import InvalidArgument, PairHistory
from aioconnlist._core.addresses import Endpoint, IPAddress, parse_address
from aioconnlist._core.pairs import (
    LocalAddress,
    Pair,
    SourceView,
    destination_usable,
    explicit_source_usable,
    source_usable,
)
from aioconnlist._core.planner import _interleave, plan_pairs

ip = ipaddress.ip_address
S4 = ip("192.0.2.10")
S6 = ip("2001:db8:1::10")


def E(text: str) -> Endpoint:
    return parse_address(text)


def kernel_view(
    dests: Sequence[Endpoint],
    choice: dict[str, str | None] | None = None,
    mode: str = "kernel",
    local: Sequence[LocalAddress] = (),
) -> SourceView:
    """Kernel choice S4/S6 by family unless ``choice`` names one per destination ip."""
    kc: dict[IPAddress, IPAddress | None] = {}
    for d in dests:
        if choice is not None and str(d.ip) in choice:
            c = choice[str(d.ip)]
            kc[d.ip] = None if c is None else ip(c)
        else:
            kc[d.ip] = S4 if d.ip.version == 4 else S6
    return SourceView(mode, tuple(local), kc)  # type: ignore[arg-type]


def plan(dests: Sequence[Endpoint], view: SourceView, **kw: object) -> list[Pair]:
    kw.setdefault("history", None)
    kw.setdefault("now", 1000.0)
    return plan_pairs(dests, view, **kw)  # type: ignore[arg-type]


def dest_ips(pairs: Sequence[Pair]) -> list[str]:
    return [str(p.destination.ip) for p in pairs]


# -- RFC 6724 rules, one by one --------------------------------------------------------------


def test_rule1_no_kernel_source_last() -> None:
    dests = [E("[2001:db8::1]:80"), E("198.51.100.1:80"), E("[2001:db8::2]:80")]
    view = kernel_view(dests, {"2001:db8::1": None})
    pairs = plan(dests, view)
    assert dest_ips(pairs) == ["2001:db8::2", "198.51.100.1", "2001:db8::1"]
    assert pairs[-1].kernel_source is None and pairs[-1].source is None  # still attempted


def test_rule2_global_v6_with_link_local_source_below_ipv4() -> None:
    dests = [E("[2001:db8::1]:80"), E("198.51.100.1:80")]
    view = kernel_view(dests, {"2001:db8::1": "fe80::1"})
    assert dest_ips(plan(dests, view, interleave=0)) == ["198.51.100.1", "2001:db8::1"]
    assert dest_ips(plan(dests, view)) == ["198.51.100.1", "2001:db8::1"]


def test_rule3_deprecated_source_last() -> None:
    dests = [E("[2001:db8::1]:80"), E("[2001:db8::2]:80")]
    old, new = ip("2001:db8:1::1"), ip("2001:db8:1::2")
    view = kernel_view(
        dests,
        {"2001:db8::1": str(old), "2001:db8::2": str(new)},
        mode="auto",
        local=[LocalAddress(old, deprecated=True), LocalAddress(new)],
    )
    pairs = plan(dests, view)
    assert dest_ips(pairs[:2]) == ["2001:db8::2", "2001:db8::1"]


def test_rule5_matching_label_beats_precedence() -> None:
    # RFC 6724 §10.2 style: a 6to4 source prefers the 6to4 destination (label 2)
    dests = [E("[2001:db8::1]:80"), E("[2002:c633:6401::1]:80")]
    view = kernel_view(
        dests, {"2001:db8::1": "2002:c000:204::1", "2002:c633:6401::1": "2002:c000:204::1"}
    )
    assert dest_ips(plan(dests, view)) == ["2002:c633:6401::1", "2001:db8::1"]


def test_rule6_precedence_loopback() -> None:
    dests = [E("127.0.0.1:80"), E("[::1]:80")]
    view = kernel_view(dests, {"127.0.0.1": "127.0.0.1", "::1": "::1"})
    assert dest_ips(plan(dests, view, interleave=0)) == ["::1", "127.0.0.1"]
    assert dest_ips(plan(dests, view, sort=False, interleave=0)) == ["127.0.0.1", "::1"]


def test_rule6_precedence_teredo_last() -> None:
    dests = [E("[2001:0:4136:e378::1]:80"), E("[2001:db8::1]:80")]
    view = kernel_view(dests)
    assert dest_ips(plan(dests, view)) == ["2001:db8::1", "2001:0:4136:e378::1"]


def test_rule8_smaller_scope_first() -> None:
    ll = Endpoint(ip("fe80::1"), 80, 0, 1)
    dests = [E("[2001:db8::1]:80"), ll]
    view = kernel_view(dests, {"fe80::1": "fe80::2"})
    assert dest_ips(plan(dests, view)) == ["fe80::1", "2001:db8::1"]


def test_rule9_longest_prefix_ipv6() -> None:
    dests = [E("[2001:db8:2::1]:80"), E("[2001:db8:1::1]:80")]
    view = kernel_view(dests)  # S6 = 2001:db8:1::10
    assert dest_ips(plan(dests, view)) == ["2001:db8:1::1", "2001:db8:2::1"]


def test_rule9_capped_at_64_and_not_for_ipv4() -> None:
    same64 = [E("[2001:db8:1::ffff]:80"), E("[2001:db8:1::11]:80")]
    assert dest_ips(plan(same64, kernel_view(same64))) == ["2001:db8:1::ffff", "2001:db8:1::11"]
    v4 = [E("203.0.113.1:80"), E("192.0.2.11:80")]  # S4 = 192.0.2.10
    assert dest_ips(plan(v4, kernel_view(v4))) == ["203.0.113.1", "192.0.2.11"]


def test_rule10_stable() -> None:
    dests = [E(f"198.51.100.{i}:80") for i in (9, 3, 7, 1)]
    assert dest_ips(plan(dests, kernel_view(dests))) == [str(d.ip) for d in dests]


# -- history rules ---------------------------------------------------------------------------


def test_recent_failure_demoted_even_across_families() -> None:
    h = PairHistory()
    dests = [E("[2001:db8::1]:443"), E("198.51.100.1:443")]
    view = kernel_view(dests)
    first = plan(dests, view, history=h)
    assert dest_ips(first) == ["2001:db8::1", "198.51.100.1"]
    h.record_failure(first[0], "soft", now=1000.0)
    assert dest_ips(plan(dests, view, history=h, now=1001.0)) == ["198.51.100.1", "2001:db8::1"]
    # evidence expired: the repaired path is tried first again
    assert dest_ips(plan(dests, view, history=h, now=1000.0 + h.failure_ttl)) == [
        "2001:db8::1",
        "198.51.100.1",
    ]


def test_no_route_before_failed() -> None:
    h = PairHistory()
    dests = [E("198.51.100.1:443"), E("198.51.100.2:443"), E("198.51.100.3:443")]
    view = kernel_view(dests, {"198.51.100.1": None})
    h.record_failure(Pair(None, dests[1], S4), "refused", now=0.0)
    assert dest_ips(plan(dests, view, history=h, now=1.0)) == [
        "198.51.100.3",
        "198.51.100.1",
        "198.51.100.2",
    ]


def test_failure_ranks_even_without_kernel_choice() -> None:
    # kernel_choice unknown for every destination: failure evidence still orders them
    h = PairHistory()
    dests = [E("[2001:db8::1]:443"), E("198.51.100.1:443")]
    view = SourceView("kernel")
    h.record_failure(Pair(None, dests[0], None), "soft", now=0.0)
    assert dest_ips(plan(dests, view, history=h, now=1.0)) == ["198.51.100.1", "2001:db8::1"]
    assert dest_ips(plan(dests, view, history=None)) == ["2001:db8::1", "198.51.100.1"]


def test_lower_srtt_first_and_success_before_neutral() -> None:
    h = PairHistory()
    dests = [E(f"198.51.100.{i}:443") for i in (1, 2, 3)]
    view = kernel_view(dests)
    h.record_success(Pair(None, dests[1], S4), 0.080, now=0.0)
    h.record_success(Pair(None, dests[2], S4), 0.020, now=0.0)
    assert dest_ips(plan(dests, view, history=h, now=1.0)) == [
        "198.51.100.3",
        "198.51.100.2",
        "198.51.100.1",
    ]


def test_history_does_not_override_precedence_for_successes() -> None:
    h = PairHistory()
    dests = [E("198.51.100.1:443"), E("[2001:db8::1]:443")]
    h.record_success(Pair(None, dests[0], S4), 0.001, now=0.0)  # RTT between rules 8 and 9
    assert dest_ips(plan(dests, kernel_view(dests), history=h, now=1.0, interleave=0)) == [
        "2001:db8::1",
        "198.51.100.1",
    ]


def test_path_demotion_new_destination_of_broken_family() -> None:
    h = PairHistory()
    h.record_success(Pair(None, E("203.0.113.9:443"), S4), 0.02, now=0.0)
    for old in ("[2001:db8:9::1]:443", "[2001:db8:9::2]:443"):
        h.record_failure(Pair(None, E(old), S6), "soft", now=1.0)
    new = [
        E("[2001:db8::a]:443"),
        E("[2001:db8::b]:443"),
        E("198.51.100.1:443"),
        E("198.51.100.2:443"),
    ]
    view = kernel_view(new)
    assert dest_ips(plan(new, view, history=h, now=2.0)) == [
        "198.51.100.1",
        "2001:db8::a",
        "198.51.100.2",
        "2001:db8::b",
    ]
    assert dest_ips(plan(new, view, history=h, now=2.0, interleave=0)) == [
        "198.51.100.1",
        "198.51.100.2",
        "2001:db8::a",
        "2001:db8::b",
    ]
    # history only changes sort=True plans
    assert dest_ips(plan(new, view, history=h, now=2.0, sort=False)) == [
        "2001:db8::a",
        "198.51.100.1",
        "2001:db8::b",
        "198.51.100.2",
    ]
    # evidence expiry restores RFC 6724 order
    later = 1.0 + h.failure_ttl
    assert dest_ips(plan(new, view, history=h, now=later))[0] == "2001:db8::a"


def test_alternates_skip_demoted_path_and_failures() -> None:
    h = PairHistory()
    d = E("[2001:db8::1]:443")
    s_a, s_b, s_c = (LocalAddress(ip(f"2001:db8:1::{x}")) for x in ("a", "b", "c"))
    view = kernel_view([d], mode="auto", local=[s_a, s_b, s_c])
    assert [str(p.source) for p in plan([d], view, history=h)] == [
        "None",
        "2001:db8:1::a",
        "2001:db8:1::b",
        "2001:db8:1::c",
    ]
    h.record_failure(Pair(s_a, d, S6), "timeout", now=0.0)
    h.record_success(Pair(s_c, d, S6), 0.01, now=0.0)
    assert [str(p.source) for p in plan([d], view, history=h, now=1.0)] == [
        "None",
        "2001:db8:1::c",
        "2001:db8:1::b",
        "2001:db8:1::a",
    ]


# -- sources ---------------------------------------------------------------------------------


def test_auto_kernel_pairs_first_then_alternates_by_destination() -> None:
    d6, d4 = E("[2001:db8::1]:80"), E("198.51.100.1:80")
    local = [
        LocalAddress(S4),
        LocalAddress(ip("192.0.2.20")),
        LocalAddress(S6),
        LocalAddress(ip("2001:db8:1::20"), deprecated=True),
        LocalAddress(ip("2001:db8:1::30")),
        LocalAddress(ip("fe80::5"), scope_id=2),
        LocalAddress(ip("127.0.0.1")),
    ]
    pairs = plan([d6, d4], kernel_view([d6, d4], mode="auto", local=local))
    assert [str(p) for p in pairs] == [
        "kernel(2001:db8:1::10) -> [2001:db8::1]:80",
        "kernel(192.0.2.10) -> 198.51.100.1:80",
        "2001:db8:1::30 -> [2001:db8::1]:80",
        "2001:db8:1::20 -> [2001:db8::1]:80",  # deprecated last
        "192.0.2.20 -> 198.51.100.1:80",
    ]


def test_source_preference_scope_label_prefix() -> None:
    d = E("[2001:db8:5::1]:80")
    local = [
        LocalAddress(ip("2002:c000:204::1")),
        LocalAddress(ip("2001:db8:7::1")),
        LocalAddress(ip("2001:db8:5::2")),
    ]
    pairs = plan([d], kernel_view([d], mode="auto", local=local))
    assert [str(p.source) for p in pairs[1:]] == [
        "2001:db8:5::2",
        "2001:db8:7::1",
        "2002:c000:204::1",
    ]


def test_explicit_destination_major_caller_source_order() -> None:
    d1, d2 = E("198.51.100.1:80"), E("198.51.100.2:80")
    local = [LocalAddress(ip("192.0.2.30")), LocalAddress(ip("192.0.2.20")), LocalAddress(S6)]
    pairs = plan([d1, d2], kernel_view([d1, d2], mode="explicit", local=local))
    assert [str(p) for p in pairs] == [
        "192.0.2.30 -> 198.51.100.1:80",
        "192.0.2.20 -> 198.51.100.1:80",
        "192.0.2.30 -> 198.51.100.2:80",
        "192.0.2.20 -> 198.51.100.2:80",
    ]
    assert all(p.kernel_source == S4 for p in pairs)
    # history: a failed explicit pair goes after its sibling; a destination whose best pair
    # failed goes after the other destination
    h = PairHistory()
    h.record_failure(pairs[0], "timeout", now=0.0)
    again = plan([d1, d2], kernel_view([d1, d2], mode="explicit", local=local), history=h, now=1.0)
    assert [str(p) for p in again[:2]] == [
        "192.0.2.20 -> 198.51.100.1:80",
        "192.0.2.30 -> 198.51.100.1:80",
    ]
    h.record_failure(pairs[1], "timeout", now=0.0)
    again = plan([d1, d2], kernel_view([d1, d2], mode="explicit", local=local), history=h, now=1.0)
    assert dest_ips(again) == ["198.51.100.2"] * 2 + ["198.51.100.1"] * 2


def test_unusable_destinations_and_sources_dropped() -> None:
    bare_ll = E("[fe80::1]:80")  # no zone
    ll1 = Endpoint(ip("fe80::1"), 80, 0, 1)
    dests = [bare_ll, ll1, E("198.51.100.1:80"), E("198.51.100.1:80")]
    local = [LocalAddress(ip("fe80::9"), scope_id=2), LocalAddress(ip("fe80::8"), scope_id=1)]
    pairs = plan(dests, kernel_view(dests, {"fe80::1": "fe80::8"}, mode="auto", local=local))
    assert pairs == [Pair(None, ll1, ip("fe80::8")), Pair(None, dests[2], S4)]
    assert plan([bare_ll], kernel_view([bare_ll])) == []
    explicit = kernel_view([bare_ll, ll1], mode="explicit", local=[LocalAddress(S4)])
    assert plan([bare_ll, ll1], explicit) == []


def test_bad_interleave() -> None:
    d = [E("198.51.100.1:80")]
    for bad in (-1, 1.5, True, "1"):
        with pytest.raises(InvalidArgument, match="interleave"):
            plan(d, kernel_view(d), interleave=bad)


# -- interleave ------------------------------------------------------------------------------


def test_interleave_unit() -> None:
    items = ["a6", "b6", "c6", "d6", "e4", "f4"]
    versions = [6, 6, 6, 6, 4, 4]
    assert _interleave(items, versions, 1) == ["a6", "e4", "b6", "f4", "c6", "d6"]
    assert _interleave(items, versions, 2) == ["a6", "b6", "e4", "c6", "f4", "d6"]
    assert _interleave(items, versions, 0) == items
    assert _interleave(items, versions, 9) == items
    assert _interleave(["x4", "y6", "z6"], [4, 6, 6], 1) == ["x4", "y6", "z6"]


def check_interleaved(versions: list[int], k: int) -> None:
    """First k of the first family (or all it has), then alternation while both remain."""
    if not versions or k == 0:
        return
    first = versions[0]
    n_first = versions.count(first)
    n_other = len(versions) - n_first
    head = min(k, n_first)
    assert versions[:head] == [first] * head
    rest = versions[head:]
    expected: list[int] = []
    a, b = n_first - head, n_other
    other = 10 - first
    while a or b:
        if b:
            expected.append(other)
            b -= 1
        if a:
            expected.append(first)
            a -= 1
    assert rest == expected


# -- properties ------------------------------------------------------------------------------

V6_POOL = [
    "2001:db8::1",
    "2001:db8::2",
    "2001:db8:1::3",
    "2002:c000:204::1",
    "fd00::1",
    "fe80::1",
    "::1",
    "2001:0:4136:e378::1",
    "fec0::1",
]
V4_POOL = ["198.51.100.1", "198.51.100.2", "192.0.2.3", "10.0.0.1", "127.0.0.1", "169.254.1.1"]
SRC_POOL = [
    "192.0.2.10",
    "192.0.2.20",
    "10.0.0.9",
    "127.0.0.1",
    "169.254.9.9",
    "2001:db8:1::10",
    "2001:db8:1::20",
    "fd00::9",
    "fe80::9",
    "::1",
    "2002:c000:204::9",
]

dest_st = st.builds(
    lambda a, port, zone: Endpoint(ip(a), port, 0, zone if ip(a).version == 6 else 0),
    st.sampled_from(V6_POOL + V4_POOL),
    st.sampled_from([80, 443]),
    st.sampled_from([0, 1, 2]),
)
local_st = st.builds(
    lambda a, zone, dep: LocalAddress(ip(a), zone if ip(a).version == 6 else 0, "", dep),
    st.sampled_from(SRC_POOL),
    st.sampled_from([0, 1, 2]),
    st.booleans(),
)


@st.composite
def scenario(draw: st.DrawFn) -> tuple[list[Endpoint], SourceView, PairHistory, int, bool]:
    dests = draw(st.lists(dest_st, min_size=0, max_size=12))
    local = draw(st.lists(local_st, max_size=6, unique=True))
    mode = draw(st.sampled_from(["kernel", "auto", "explicit"]))
    kc: dict[IPAddress, IPAddress | None] = {}
    for d in dests:
        same = [s.ip for s in local if s.ip.version == d.ip.version]
        kc[d.ip] = draw(st.sampled_from([None, *same])) if same else None
    h = PairHistory()
    for d in draw(st.lists(st.sampled_from(dests), max_size=6)) if dests else []:
        p = Pair(None, d, kc[d.ip])
        if draw(st.booleans()):
            h.record_success(p, draw(st.floats(0, 1)), now=0.0)
        else:
            h.record_failure(p, draw(st.sampled_from(["soft", "timeout", "refused"])), now=0.0)
    view = SourceView(mode, tuple(local), kc)
    return dests, view, h, draw(st.integers(0, 3)), draw(st.booleans())


def expected_pairs(dests: list[Endpoint], view: SourceView) -> list[Pair]:
    usable = explicit_source_usable if view.mode == "explicit" else source_usable
    out = []
    for d in dict.fromkeys(dests):
        if not destination_usable(d):
            continue
        ks = view.kernel_choice.get(d.ip)
        if view.mode != "explicit":
            out.append(Pair(None, d, ks))
        if view.mode != "kernel":
            out.extend(
                Pair(s, d, ks)
                for s in view.local
                if usable(s, d) and (view.mode == "explicit" or s.ip != ks)
            )
    return out


@settings(max_examples=300, deadline=None)
@given(scenario())
def test_plan_properties(case: tuple[list[Endpoint], SourceView, PairHistory, int, bool]) -> None:
    dests, view, h, k, sort = case
    pairs = plan_pairs(dests, view, history=h, now=1.0, interleave=k, sort=sort)
    # every usable pair exactly once, no other
    assert len(pairs) == len(set(pairs))
    assert set(pairs) == set(expected_pairs(dests, view))
    usable = explicit_source_usable if view.mode == "explicit" else source_usable
    assert all(p.source is None or usable(p.source, p.destination) for p in pairs)
    # deterministic
    assert plan_pairs(dests, view, history=h, now=1.0, interleave=k, sort=sort) == pairs
    if view.mode != "explicit":
        # kernel pairs first; but (sort=True) a kernel pair with failure evidence goes after
        # the alternates without any: healthy kernel, healthy alternates, failed kernel, failed
        failed = {p: sort and h.rank(p, 1.0) > 0 for p in pairs}
        has_alternates = any(p.source is not None for p in pairs)
        kernel_failed = has_alternates and any(failed[p] for p in pairs if p.source is None)
        phases = [(2 * failed[p] if kernel_failed else 0) + (p.source is not None) for p in pairs]
        assert phases == sorted(phases)
        kernel = [p for p in pairs if p.source is None]
        alternates = [p for p in pairs if p.source is not None]
        order = {p.destination: i for i, p in enumerate(kernel)}
        if not kernel_failed:
            assert [order[p.destination] for p in alternates] == sorted(
                order[p.destination] for p in alternates
            )
        if not sort:  # the caller's order, interleaved
            usable = [d for d in dict.fromkeys(dests) if destination_usable(d)]
            assert [p.destination for p in kernel] == _interleave(
                usable, [d.ip.version for d in usable], k
            )
            check_interleaved([p.destination.ip.version for p in kernel], k)
    else:  # destination-major
        seen: list[Endpoint] = []
        for p in pairs:
            if not seen or seen[-1] != p.destination:
                assert p.destination not in seen
                seen.append(p.destination)


@settings(max_examples=200, deadline=None)
@given(st.lists(dest_st, max_size=14), st.integers(0, 3))
def test_sorted_without_history_is_interleaved(dests: list[Endpoint], k: int) -> None:
    view = kernel_view(dests)  # every destination has a kernel source
    pairs = plan(dests, view, interleave=k)
    check_interleaved([p.destination.ip.version for p in pairs], k)
    assert len(pairs) == len([d for d in dict.fromkeys(dests) if destination_usable(d)])


# -- speed -----------------------------------------------------------------------------------


def _many(n: int) -> list[Endpoint]:
    out = []
    for i in range(n):
        if i % 2:
            out.append(Endpoint(ipaddress.IPv4Address(0x0A000000 + i), 443))
        else:
            out.append(Endpoint(ipaddress.IPv6Address((0x20010DB8 << 96) + i), 443))
    return out


def test_ten_thousand_pairs_fast() -> None:
    h = PairHistory(max_pairs=20000)
    dests = _many(2000)
    local = tuple(LocalAddress(ipaddress.IPv4Address(0x0A090000 + i)) for i in range(3)) + tuple(
        LocalAddress(ipaddress.IPv6Address((0x20010DB8 << 96) + (1 << 80) + i)) for i in range(3)
    )
    view = kernel_view(dests, mode="auto", local=local)
    for p in plan(dests, view)[::5]:
        h.record_success(p, 0.01, now=0.0)
    for p in plan(dests, view)[1::7]:
        h.record_failure(p, "soft", now=0.0)
    start = time.perf_counter()
    pairs = plan_pairs(dests, view, history=h, now=1.0)
    elapsed = time.perf_counter() - start
    print(f"\nplanned {len(pairs)} pairs in {elapsed * 1e3:.1f} ms")
    assert len(pairs) == 2000 + 2000 * 3
    assert elapsed < 1.0

    one = [E("198.51.100.1:443")]
    one_view = kernel_view(one)
    start = time.perf_counter()
    for _ in range(1000):
        plan_pairs(one, one_view, history=h, now=1.0)
    per_call = (time.perf_counter() - start) / 1000
    print(f"1 destination: {per_call * 1e6:.1f} us per plan")
    assert per_call < 200e-6  # generous: a few µs expected


def test_kernel_pair_with_failure_evidence_goes_after_healthy_alternates() -> None:
    """Multi-homed: the kernel's source black-holed towards D last time, another works."""
    dest = parse_address("198.51.100.7:443")
    kernel_source = ipaddress.IPv4Address("192.0.2.10")
    other = LocalAddress(ipaddress.IPv4Address("203.0.113.5"), interface="wlan0")
    view = SourceView("auto", (LocalAddress(kernel_source), other), {dest.ip: kernel_source})
    history = PairHistory()
    fresh = plan_pairs([dest], view, history=history, now=10.0)
    assert [p.source for p in fresh] == [None, other]  # no evidence: the kernel's choice first
    history.record_failure(fresh[0], "soft", 10.0)
    later = plan_pairs([dest], view, history=history, now=11.0)
    assert [p.source for p in later] == [other, None]
    expired = plan_pairs([dest], view, history=history, now=10.0 + history.failure_ttl + 1)
    assert [p.source for p in expired] == [None, other]  # evidence expired: retried first
