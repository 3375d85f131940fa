"""Real networks, the sans-I/O and pure parts: backup attempts in virtual time, the kernel's
routes of alternate pairs (rtnetlink codecs, route classes, the planner's use of them)."""

from __future__ import annotations

import errno
import ipaddress
import math
import socket
import struct

import pytest

from aioconnlist._core.addresses import parse_address
from aioconnlist._core.events import RaceEvent
from aioconnlist._core.history import PairHistory
from aioconnlist._core.options import make_options
from aioconnlist._core.pairs import (
    ROUTE_NEVER,
    ROUTE_OTHER,
    ROUTE_OWN,
    LocalAddress,
    SourceView,
)
from aioconnlist._core.planner import plan_pairs
from aioconnlist._core.race import Race
from aioconnlist._io import rtnetlink
from aioconnlist._io.sources import route_class
from tests.simulation import kernel_pairs, simulate
from tests.support import BlackHole, fd_count

A, B = "192.0.2.1:80", "192.0.2.2:80"


# ---------------------------------------------------------------- backup attempts


def test_backup_of_a_lone_silent_pair_starts_after_the_delay() -> None:
    r = simulate(kernel_pairs(A), {A: ("drop",)}, timeout=0.6)
    assert r.starts == [0.0, 0.25]  # one backup, once
    assert [a.backup for a in r.race.attempts] == [False, True]
    assert [e.backup for e in r.events if e.kind == "started"] == [False, True]
    assert r.race.error().errno == errno.ETIMEDOUT


def test_backup_wins_when_the_first_syn_was_lost() -> None:
    # the backup's SYN gets through: connected one RTT after the attempt delay
    race = Race(kernel_pairs(A), now=0.0, attempt_delay=0.25, min_attempt_delay=0.1)
    first = race.start_due(0.0)
    assert first is not None and race.start_due(0.2) is None
    assert race.wake_at() == 0.25
    backup = race.start_due(0.25)
    assert backup is not None and backup.backup and backup.pair == first.pair
    assert race.start_due(10.0) is None  # once per pair
    assert race.connected(backup, 0.27)
    assert first.outcome == "cancelled"


def test_backups_go_newest_first_once_per_pair() -> None:
    r = simulate(kernel_pairs(A, B), {A: ("drop",), B: ("drop",)}, timeout=1.1)
    assert r.starts == [0.0, 0.25, 0.5, 0.75]
    assert [(str(a.pair.destination), a.backup) for a in r.race.attempts] == [
        (A, False),
        (B, False),
        (B, True),
        (A, True),
    ]


def test_no_backup_with_infinite_delay_or_when_off() -> None:
    r = simulate(kernel_pairs(A), {A: ("ok", 2.0)}, attempt_delay=math.inf)
    assert r.starts == [0.0] and r.end == 2.0
    race = Race(
        kernel_pairs(A), now=0.0, attempt_delay=0.25, min_attempt_delay=0.1, backup_attempts=False
    )
    assert race.start_due(0.0) is not None
    assert race.wake_at() is None and race.start_due(5.0) is None


def test_no_backup_while_more_pairs_may_come() -> None:
    race = Race(
        kernel_pairs(A), now=0.0, attempt_delay=0.25, min_attempt_delay=0.1, more_pairs_coming=True
    )
    assert race.start_due(0.0) is not None
    assert race.start_due(1.0) is None and race.wake_at() is None


def test_backup_delay_follows_the_known_rtt() -> None:
    history = PairHistory()
    [pair] = kernel_pairs(A)
    history.record_success(pair, 0.02, 990.0)  # rto 0.06 -> floor 0.1
    r = simulate([pair], {A: ("drop",)}, history=history, timeout=0.3)
    assert r.starts == [0.0, 0.1]


def test_a_backup_win_is_no_evidence_against_its_own_pair() -> None:
    history = PairHistory()
    [pair] = kernel_pairs(A)
    race = Race([pair], now=0.0, attempt_delay=0.25, min_attempt_delay=0.1, history=history)
    first = race.start_due(0.0)
    backup = race.start_due(0.25)
    assert first is not None and backup is not None
    assert race.connected(backup, 0.3)
    assert history.rank(pair, 0.3) <= 0  # a success, no soft failure of the first attempt


def test_backup_after_a_failed_newer_attempt_waits_for_the_silent_ones_delay() -> None:
    script = {A: ("drop",), B: ("refused", 0.01)}
    r = simulate(kernel_pairs(A, B), script, timeout=0.6)
    # B starts at 0.25 and fails at 0.26: A has been silent 0.26 s >= 0.25 -> its backup now
    assert r.starts == [0.0, 0.25, 0.26]
    assert r.race.attempts[2].backup and str(r.race.attempts[2].pair.destination) == A


def test_backup_attempts_option() -> None:
    assert make_options().backup_attempts is True
    assert make_options(backup_attempts=False).backups_possible is False
    assert make_options(attempt_delay=math.inf).backups_possible is False
    with pytest.raises(ValueError, match="backup_attempts"):
        make_options(backup_attempts=1)  # type: ignore[arg-type]


# ---------------------------------------------------------------- rtnetlink codecs


def test_route_request_encodes_destination_source_and_oif() -> None:
    dst, src = ipaddress.ip_address("192.0.2.1"), ipaddress.ip_address("198.51.100.2")
    msg = rtnetlink.encode_route_request(dst, src, oif=3, sequence=7)
    length, kind, flags, seq, _ = struct.unpack_from("=IHHII", msg)
    assert (length, kind, flags, seq) == (len(msg), rtnetlink.RTM_GETROUTE, 1, 7)
    family, dst_len, src_len = msg[16], msg[17], msg[18]
    assert (family, dst_len, src_len) == (socket.AF_INET, 32, 32)
    attrs = msg[28:]
    assert attrs[:8] == struct.pack("=HH", 8, rtnetlink.RTA_DST) + dst.packed
    assert attrs[8:16] == struct.pack("=HH", 8, rtnetlink.RTA_SRC) + src.packed
    assert attrs[16:24] == struct.pack("=HHI", 8, rtnetlink.RTA_OIF, 3)
    with pytest.raises(ValueError):
        rtnetlink.encode_route_request(dst, ipaddress.ip_address("2001:db8::1"))


def _reply(attrs: bytes, family: int = socket.AF_INET, sequence: int = 1) -> bytes:
    body = struct.pack("=BBBBBBBBI", family, 32, 0, 0, 254, 0, 0, 1, 0) + attrs
    return struct.pack("=IHHII", 16 + len(body), rtnetlink.RTM_NEWROUTE, 0, sequence, 0) + body


def test_route_reply_parses_oif_gateway_and_source() -> None:
    gw, src = ipaddress.ip_address("198.51.100.1"), ipaddress.ip_address("198.51.100.2")
    attrs = (
        struct.pack("=HHI", 8, rtnetlink.RTA_OIF, 5)
        + struct.pack("=HH", 8, rtnetlink.RTA_GATEWAY)
        + gw.packed
        + struct.pack("=HH", 8, rtnetlink.RTA_PREFSRC)
        + src.packed
    )
    route = rtnetlink.parse_route_reply(_reply(attrs, sequence=3), sequence=3)
    assert route == rtnetlink.Route(5, gw, src, 254)
    with pytest.raises(OSError):  # a reply to another request is not this one's
        rtnetlink.parse_route_reply(_reply(attrs, sequence=2), sequence=3)


def test_route_reply_error_is_the_kernels_errno() -> None:
    error = (
        struct.pack("=IHHII", 36, rtnetlink.NLMSG_ERROR, 0, 9, 0)
        + struct.pack("=i", -errno.ENETUNREACH)
        + b"\0" * 16
    )
    with pytest.raises(OSError) as info:
        rtnetlink.parse_route_reply(error, sequence=9)
    assert info.value.errno == errno.ENETUNREACH


@pytest.mark.skipif(not rtnetlink.available(), reason="rtnetlink is Linux's")
def test_route_get_asks_the_real_kernel() -> None:
    route = rtnetlink.route_get(ipaddress.ip_address("127.0.0.1"))
    assert route.oif == socket.if_nametoindex("lo")
    assert route.prefsrc == ipaddress.ip_address("127.0.0.1")
    assert rtnetlink.interface_kind(route.oif) == "link"


def test_interface_classes() -> None:
    classify = rtnetlink.classify_interface
    assert classify(1, 0x1003, None, False) == "link"  # ethernet
    assert classify(65534, 0x1091, 0x1001, False) == "tunnel"  # TUN / WireGuard
    assert classify(1, 0x1003, 0x1002, False) == "virtual"  # TAP
    assert classify(1, 0x1003, None, True) == "virtual"  # bridge
    assert classify(512, 0x1091, None, False) == "tunnel"  # PPP
    assert classify(1, 0x1013, None, False) == "tunnel"  # IFF_POINTOPOINT
    assert rtnetlink.interface_kind_by_name("../etc") == "link"


# ---------------------------------------------------------------- route classes


@pytest.mark.parametrize(
    ("kernel", "source", "pair_oif", "expected"),
    [
        (("link", 2), ("link", 3), 3, ROUTE_OWN),  # policy rule: out of its own interface
        (("link", 2), ("link", 3), 2, ROUTE_OTHER),  # weak host model: out of the default one
        (("link", 2), ("link", 3), None, ROUTE_OTHER),  # no route from that source
        (("tunnel", 9), ("link", 2), 2, ROUTE_NEVER),  # around the VPN
        (("tunnel", 9), ("link", 2), 9, ROUTE_NEVER),  # a LAN address into the tunnel
        (("tunnel", 9), ("tunnel", 9), 9, ROUTE_OWN),  # another address of the tunnel
        (("link", 2), ("virtual", 4), 2, ROUTE_NEVER),  # a bridge's address, outside it
        (("link", 2), ("virtual", 4), 4, ROUTE_OWN),  # a destination on the bridge
    ],
)
def test_route_class(
    kernel: tuple[rtnetlink.InterfaceKind, int],
    source: tuple[rtnetlink.InterfaceKind, int],
    pair_oif: int | None,
    expected: int,
) -> None:
    assert route_class(kernel[0], kernel[1], source[0], source[1], pair_oif) == expected


# ---------------------------------------------------------------- the planner and routes

LAN = LocalAddress(ipaddress.ip_address("198.51.100.2"), 0, "c0")
LAN2 = LocalAddress(ipaddress.ip_address("198.51.100.18"), 0, "c1")
LAN3 = LocalAddress(ipaddress.ip_address("198.51.100.34"), 0, "c2")


def _view(routes: dict[tuple[ipaddress.IPv4Address, ipaddress.IPv4Address], int]) -> SourceView:
    dest = parse_address(A).ip
    return SourceView("auto", (LAN, LAN2, LAN3), {dest: LAN.ip}, routes)  # type: ignore[arg-type]


def test_never_pairs_are_not_planned_other_pairs_come_last() -> None:
    dest = parse_address(A).ip
    view = _view({(LAN2.ip, dest): ROUTE_OTHER, (LAN3.ip, dest): ROUTE_NEVER})  # type: ignore[dict-item]
    pairs = plan_pairs([parse_address(A)], view, history=None, now=0.0)
    assert [p.source for p in pairs] == [None, LAN2]
    view = _view({(LAN2.ip, dest): ROUTE_OTHER})  # type: ignore[dict-item]
    pairs = plan_pairs([parse_address(A)], view, history=None, now=0.0)
    assert [p.source for p in pairs] == [None, LAN3, LAN2]


def test_failed_kernel_pair_never_falls_behind_a_misrouted_alternate() -> None:
    dest = parse_address(A)
    history = PairHistory()
    view = _view({(LAN2.ip, dest.ip): ROUTE_OTHER, (LAN3.ip, dest.ip): ROUTE_NEVER})  # type: ignore[dict-item]
    [kernel] = [p for p in plan_pairs([dest], view, history=None, now=0.0) if p.source is None]
    history.record_failure(kernel, "soft", 0.0)
    pairs = plan_pairs([dest], view, history=history, now=1.0)
    assert [p.source for p in pairs] == [None, LAN2]
    # a well-routed alternate still goes ahead of the failed kernel pair (multi-homing)
    view = _view({(LAN2.ip, dest.ip): ROUTE_OTHER})  # type: ignore[dict-item]
    pairs = plan_pairs([dest], view, history=history, now=1.0)
    assert [p.source for p in pairs] == [LAN3, None, LAN2]


# ---------------------------------------------------------------- connectivity per family


def _local(*texts: str) -> list[LocalAddress]:
    return [LocalAddress(ipaddress.ip_address(t)) for t in texts]


def test_family_connectivity_from_addresses() -> None:
    from aioconnlist._io.connectivity import family_connectivity

    def no_route() -> bool:
        return False

    def route() -> bool:
        return True

    v4, v6 = socket.AF_INET, socket.AF_INET6
    assert family_connectivity(_local("127.0.0.1", "::1", "198.51.100.2"), no_route) == {v4}
    assert family_connectivity(_local("fe80::1", "169.254.1.1", "198.51.100.2"), route) == {v4}
    assert family_connectivity(_local("fd00::2", "198.51.100.2"), no_route) == {v4}
    assert family_connectivity(_local("fd00::2", "198.51.100.2"), route) == {v4, v6}
    assert family_connectivity(_local("2001:db8::2"), no_route) == {v6}


async def test_resolution_does_not_wait_for_the_preferred_family_when_told() -> None:
    import asyncio

    from aioconnlist._io.resolve import FamilyLookups

    loop = asyncio.get_running_loop()
    never: asyncio.Future[list[str]] = loop.create_future()

    async def lookup(family: socket.AddressFamily) -> list[str]:
        if family == socket.AF_INET6:
            return await never  # an AAAA answer that never comes
        return ["a"]

    lookups: FamilyLookups[str] = FamilyLookups(lookup)
    start = loop.time()
    try:
        first = await lookups.first(30.0, None, prefer=socket.AF_INET)
    finally:
        await lookups.aclose()
    assert first == ["a"] and loop.time() - start < 5.0


# ---------------------------------------------------------------- NAT64


@pytest.mark.parametrize("length", [32, 40, 48, 56, 64, 96])
def test_nat64_synthesis_round_trips_at_every_rfc6052_length(length: int) -> None:
    from aioconnlist._io import nat64

    prefix = ipaddress.IPv6Network(("2001:db8:6400::", length), strict=False)
    v4 = ipaddress.IPv4Address("192.0.2.33")
    v6 = nat64.synthesize(prefix, v4)
    assert v6 in prefix and v6.packed[8] == 0
    assert nat64.extract(prefix, v6) == v4
    wka = nat64.synthesize(prefix, nat64.WELL_KNOWN_IPV4[0])
    assert nat64.prefixes_from_answers([wka]) == (prefix,)


def test_nat64_examples_of_rfc6052() -> None:
    from aioconnlist._io import nat64

    v4 = ipaddress.IPv4Address("192.0.2.33")
    cases = {  # RFC 6052 §2.4's table
        "2001:db8::/32": "2001:db8:c000:221::",
        "2001:db8:100::/40": "2001:db8:1c0:2:21::",
        "2001:db8:122::/48": "2001:db8:122:c000:2:2100::",
        "2001:db8:122:300::/56": "2001:db8:122:3c0:0:221::",
        "2001:db8:122:344::/64": "2001:db8:122:344:c0:2:2100:0",
        "2001:db8:122:344::/96": "2001:db8:122:344::192.0.2.33",
        "64:ff9b::/96": "64:ff9b::192.0.2.33",
    }
    for prefix, expected in cases.items():
        assert nat64.synthesize(ipaddress.IPv6Network(prefix), v4) == ipaddress.ip_address(expected)


def test_nat64_discovery_ignores_answers_without_a_well_known_address() -> None:
    from aioconnlist._io import nat64

    answers = [ipaddress.IPv6Address("2001:db8::1"), ipaddress.IPv6Address("64:ff9b::c000:aa")]
    assert nat64.prefixes_from_answers(answers) == (ipaddress.IPv6Network("64:ff9b::/96"),)
    with pytest.raises(ValueError):
        nat64.synthesize(ipaddress.IPv6Network("2001:db8::/80"), ipaddress.IPv4Address("1.2.3.4"))


def test_synthesized_destinations_rank_as_the_ipv4_they_stand_for() -> None:
    v6 = parse_address("[2001:db8:f::1]:80")
    synthesized = parse_address("[2001:db8:64::c000:201]:80")
    other = parse_address("[2001:db8:f::2]:80")
    source = ipaddress.ip_address("2001:db8:a::2")
    kernel = {v6.ip: source, synthesized.ip: source, other.ip: source}
    nat = {synthesized.ip: ipaddress.ip_address("192.0.2.1")}
    view = SourceView("kernel", (), kernel, nat64=nat)  # type: ignore[arg-type]
    pairs = plan_pairs([synthesized, v6, other], view, history=None, now=0.0)
    # native IPv6 first (precedence 40 > 35), then the "IPv4" one interleaved as a family
    assert [p.destination for p in pairs] == [v6, synthesized, other]


# ---------------------------------------------------------------- backups on real sockets


@pytest.mark.both_loops
async def test_single_pair_backup_on_loopback_concurrent_races(black_hole: BlackHole) -> None:
    """Two concurrent single-pair races to a black hole, with different delays: each gets its
    backup (a second socket) after its own delay, then times out; nothing leaks."""
    import asyncio

    import aioconnlist

    before = fd_count()
    seen: dict[float, list[RaceEvent]] = {0.05: [], 0.12: []}

    async def one(delay: float) -> OSError:
        try:
            sock = await aioconnlist.connect_by_list(
                [black_hole.address],
                local_addresses=None,
                history=None,
                attempt_delay=delay,
                timeout=0.4,
                on_event=seen[delay].append,
            )
        except OSError as e:
            return e
        sock.close()
        raise AssertionError("a black hole connected")

    errors = await asyncio.gather(one(0.05), one(0.12))
    assert all(e.errno == errno.ETIMEDOUT for e in errors)
    for delay, events in seen.items():
        starts = [e for e in events if e.kind == "started"]
        assert [e.backup for e in starts] == [False, True], events
        assert starts[1].time >= delay - 0.005, (delay, starts[1].time)
    assert fd_count() == before


def test_blocking_single_pair_backup_on_loopback(black_hole: BlackHole) -> None:
    from aioconnlist import blocking

    before = fd_count()
    events: list[RaceEvent] = []
    with pytest.raises(TimeoutError):
        blocking.create_connection(
            [black_hole.address],
            timeout=0.3,
            local_addresses=None,
            history=None,
            attempt_delay=0.05,
            on_event=events.append,
        )
    assert [e.backup for e in events if e.kind == "started"] == [False, True], events
    assert fd_count() == before
