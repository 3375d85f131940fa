"""Local sources: enumeration, caches, the kernel's choice of source, pair suitability."""

from __future__ import annotations

import ipaddress
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from aioconnlist._core import pairs
from aioconnlist._core.addresses import Endpoint, IPAddress, parse_address
from aioconnlist._core.pairs import LocalAddress, destination_usable, source_usable
from aioconnlist._io import sources
from aioconnlist._io.sources import (
    IFA_F_DADFAILED,
    IFA_F_DEPRECATED,
    IFA_F_TENTATIVE,
    Inet6Entry,
    KernelSourceCache,
    LocalAddressCache,
    enumerate_local_addresses,
    gather_sources,
    kernel_source,
    parse_if_inet6,
    probe_kernel_source,
    select_local_addresses,
)
from tests.support import fd_count, has_ipv6_loopback, skip_or_fail

V4 = ipaddress.IPv4Address
V6 = ipaddress.IPv6Address
AF_INET, AF_INET6, AF_PACKET = 2, 10, 17
REPO = Path(__file__).resolve().parent.parent


def require_root() -> None:
    """Skip without root or `ip netns`; under AIOCONNLIST_REQUIRE_NETLAB=1 fail instead."""
    if os.geteuid() != 0:
        skip_or_fail("needs root to create a network namespace")
    if shutil.which("ip") is None:
        skip_or_fail("needs iproute2 (`ip`) to create a network namespace")


@pytest.fixture(autouse=True)
def fresh_caches() -> Iterator[None]:
    sources.invalidate()
    yield
    sources.invalidate()


def ep(text: str) -> Endpoint:
    return parse_address(text)


# --- enumeration --------------------------------------------------------------------------


def test_enumeration_has_loopback_and_only_up_interfaces() -> None:
    found = enumerate_local_addresses()
    assert LocalAddress(V4("127.0.0.1"), 0, "lo", False) in found
    up = {name for name, st in psutil.net_if_stats().items() if st.isup}
    for address in found:
        assert address.interface in up, address
        assert not address.ip.is_multicast
        assert not address.ip.is_unspecified
        assert address.ip.version == 4 or address.ip.ipv4_mapped is None
        if address.ip.version == 6 and address.ip.is_link_local:
            assert address.scope_id > 0, f"{address} has no zone"
    flags = [a.deprecated for a in found]
    assert flags == sorted(flags), "deprecated addresses must come last"


def test_enumeration_agrees_with_proc_if_inet6_flags() -> None:
    try:
        table = parse_if_inet6(Path("/proc/net/if_inet6").read_text())
    except OSError:
        pytest.skip("no /proc/net/if_inet6 (IPv6 disabled or not Linux)")
    found = {(a.ip, a.interface): a for a in enumerate_local_addresses()}
    up = {name for name, st in psutil.net_if_stats().items() if st.isup}
    for key, entry in table.items():
        if not entry.usable or entry.interface not in up:
            assert key not in found, f"{entry} is tentative, DAD-failed or down"
        elif entry.ip.ipv4_mapped is None and not entry.ip.is_multicast:
            assert key in found, f"{entry} is usable but was not enumerated"
            assert found[key].deprecated == entry.deprecated
    assert has_ipv6_loopback() == ((V6("::1"), "lo") in found)


def test_local_address_cache_hits_within_ttl_and_refreshes_after() -> None:
    calls = 0

    def counting_enumerate() -> tuple[LocalAddress, ...]:
        nonlocal calls
        calls += 1
        return enumerate_local_addresses()

    cache = LocalAddressCache(counting_enumerate, ttl=2.0)
    first = cache.get(now=100.0)
    assert calls == 1
    assert cache.get(now=101.999) is first
    assert calls == 1
    second = cache.get(now=102.0)  # TTL over: read again
    assert calls == 2
    assert second == first and second is not first
    cache.invalidate()
    third = cache.get(now=102.5)
    assert calls == 3
    assert third is not second


def test_machine_addresses_module_cache_and_invalidate() -> None:
    now = time.monotonic()
    first = sources.machine_addresses(now)
    assert sources.machine_addresses(now + 1) is first
    sources.invalidate()
    assert sources.machine_addresses(now + 1) is not first


# --- /proc/net/if_inet6 and selection (pure) ----------------------------------------------

IF_INET6_SAMPLE = """\
fd000000000000000000000000000002 04 40 00 82     eth0
fe8000000000000000fc00fffe000001 04 40 20 80     eth0
00000000000000000000000000000001 01 80 10 80       lo
20010db8000000000000000000000010 04 40 00 40     eth0
20010db8000000000000000000000011 04 40 00 48     eth0
20010db8000000000000000000000012 04 40 00 20     eth0
20010db8000000000000000000000013 04 40 00 01     eth0
fe800000000000000000000000000099 07 40 20 c0     wlan0
not a line
20010db800000000000000000000001 04 40 00 00     eth0
20010db8000000000000000000000014 zz 40 00 00     eth0
"""


def test_parse_if_inet6_sample() -> None:
    table = parse_if_inet6(IF_INET6_SAMPLE)
    assert len(table) == 8  # the three malformed lines are skipped
    ula = table[V6("fd00::2"), "eth0"]
    assert ula == Inet6Entry(V6("fd00::2"), 4, 64, 0x00, 0x82, "eth0")
    assert ula.usable and not ula.deprecated
    link = table[V6("fe80::fc:ff:fe00:1"), "eth0"]
    assert (link.ifindex, link.scope, link.usable) == (4, 0x20, True)
    loopback = table[V6("::1"), "lo"]
    assert (loopback.ifindex, loopback.prefix_len, loopback.scope) == (1, 128, 0x10)
    tentative = table[V6("2001:db8::10"), "eth0"]
    assert tentative.flags == IFA_F_TENTATIVE and not tentative.usable
    dad_failed = table[V6("2001:db8::11"), "eth0"]
    assert dad_failed.flags == IFA_F_TENTATIVE | IFA_F_DADFAILED and not dad_failed.usable
    deprecated = table[V6("2001:db8::12"), "eth0"]
    assert deprecated.usable and deprecated.deprecated and deprecated.flags == IFA_F_DEPRECATED
    temporary = table[V6("2001:db8::13"), "eth0"]
    assert temporary.usable and not temporary.deprecated
    assert not table[V6("fe80::99"), "wlan0"].usable  # permanent but tentative


def test_parse_if_inet6_empty() -> None:
    assert parse_if_inet6("") == {}


def test_select_local_addresses_filters_and_orders() -> None:
    interface_addresses = {
        "lo": [(AF_INET, "127.0.0.1"), (AF_INET6, "::1"), (AF_PACKET, "00:00:00:00:00:00")],
        "eth0": [
            (AF_INET, "192.0.2.2"),
            (AF_INET6, "2001:db8::12"),  # deprecated: last
            (AF_INET6, "fd00::2"),
            (AF_INET6, "fe80::fc:ff:fe00:1%eth0"),
            (AF_INET6, "2001:db8::10"),  # tentative: skipped
            (AF_INET6, "2001:db8::11"),  # DAD failed: skipped
            (AF_INET6, "::ffff:192.0.2.9"),  # IPv4-mapped: skipped
            (AF_INET6, "ff02::1"),  # multicast: skipped
            (AF_INET, "0.0.0.0"),  # unspecified: skipped
            (AF_INET, "not-an-ip"),
        ],
        "eth0:1": [(AF_INET, "192.0.2.3")],  # IPv4 alias label: eth0's link state
        "eth1": [(AF_INET, "198.51.100.1"), (AF_INET6, "fe80::5")],  # down
        "wlan0": [(AF_INET6, "fe80::99")],  # tentative
        "tun0": [(AF_INET6, "fe80::7%tun0"), (AF_INET, "169.254.1.1")],  # not in /proc table
    }
    up = {"lo", "eth0", "wlan0", "tun0"}
    got = select_local_addresses(
        interface_addresses, up, parse_if_inet6(IF_INET6_SAMPLE), {"tun0": 9, "eth0": 4}
    )
    assert got == (
        LocalAddress(V4("127.0.0.1"), 0, "lo"),
        LocalAddress(V6("::1"), 0, "lo"),
        LocalAddress(V4("192.0.2.2"), 0, "eth0"),
        LocalAddress(V6("fd00::2"), 0, "eth0"),
        LocalAddress(V6("fe80::fc:ff:fe00:1"), 4, "eth0"),
        LocalAddress(V4("192.0.2.3"), 0, "eth0"),
        LocalAddress(V6("fe80::7"), 9, "tun0"),  # zone from the index map
        LocalAddress(V4("169.254.1.1"), 0, "tun0"),
        LocalAddress(V6("2001:db8::12"), 0, "eth0", deprecated=True),
    )


def test_select_local_addresses_without_proc_table() -> None:
    got = select_local_addresses({"lo": [(AF_INET6, "fe80::1%lo")]}, {"lo"}, {}, {})
    assert got == (LocalAddress(V6("fe80::1"), 0, "lo"),)  # zone unknown rather than wrong


def test_select_drops_duplicate_addresses() -> None:
    got = select_local_addresses(
        {"a": [(AF_INET, "10.0.0.1")], "b": [(AF_INET, "10.0.0.1")]}, {"a", "b"}, {}, {}
    )
    assert got == (LocalAddress(V4("10.0.0.1"), 0, "a"),)


# --- kernel's choice of source ------------------------------------------------------------


def test_kernel_source_ipv4_loopback() -> None:
    assert kernel_source(ep("127.0.0.1:80")) == V4("127.0.0.1")


def test_kernel_source_v4_mapped_destination_probed_as_ipv4() -> None:
    assert kernel_source(ep("[::ffff:127.0.0.1]:80")) == V4("127.0.0.1")


@pytest.mark.skipif(not has_ipv6_loopback(), reason="IPv6 loopback ::1 is not configured")
def test_kernel_source_ipv6_loopback() -> None:
    assert kernel_source(ep("[::1]:80")) == V6("::1")


def test_kernel_source_link_local_without_zone_is_none_without_probing() -> None:
    probes: list[Endpoint] = []

    def probe(destination: Endpoint) -> IPAddress:
        probes.append(destination)
        return probe_kernel_source(destination)

    cache = KernelSourceCache(probe)
    assert cache.get(ep("[fe80::1]:80"), now=0.0) is None
    assert probes == []
    assert cache.get(ep("127.0.0.1:80"), now=0.0) == V4("127.0.0.1")
    assert len(probes) == 1


def test_kernel_source_cache_per_ip_ttl_and_invalidate() -> None:
    probes: list[Endpoint] = []

    def probe(destination: Endpoint) -> IPAddress:
        probes.append(destination)
        return probe_kernel_source(destination)

    cache = KernelSourceCache(probe, ttl=2.0)
    assert cache.get(ep("127.0.0.1:80"), now=10.0) == V4("127.0.0.1")
    assert cache.get(ep("127.0.0.1:443"), now=11.9) == V4("127.0.0.1")  # other port: same IP
    assert len(probes) == 1
    assert cache.get(ep("127.0.0.2:80"), now=11.9) is not None
    assert len(probes) == 2
    assert cache.get(ep("127.0.0.1:80"), now=12.0) == V4("127.0.0.1")  # expired
    assert len(probes) == 3
    cache.invalidate()
    assert len(cache) == 0
    cache.get(ep("127.0.0.1:80"), now=12.1)
    assert len(probes) == 4


def test_kernel_source_cache_is_bounded() -> None:
    cache = KernelSourceCache(ttl=100.0, max_entries=8)
    for i in range(1, 40):
        cache.get(ep(f"127.0.0.{i}:80"), now=1.0)
        assert len(cache) <= 8
    # expired entries are dropped first, keeping live ones
    cache.invalidate()
    for i in range(1, 5):
        cache.get(ep(f"127.0.0.{i}:80"), now=1.0)
    for i in range(5, 9):
        cache.get(ep(f"127.0.0.{i}:80"), now=200.0)
    cache.get(ep("127.0.0.9:80"), now=200.0)
    assert len(cache) == 5


def test_kernel_source_probes_leak_no_fd() -> None:
    cache = KernelSourceCache()
    before = fd_count()
    for i in range(1, 200):
        assert cache.get(ep(f"127.0.{i}.1:80"), now=1.0) is not None
    assert fd_count() == before


def _run_python(code: str, *prefix: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run(
        [*prefix, sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


def test_resource_errors_are_not_cached() -> None:
    """Out of fds (real EMFILE, in a child process): None now, but not remembered."""
    code = """
        import os, resource
        from aioconnlist._io.sources import KernelSourceCache
        from aioconnlist._core.addresses import parse_address
        cache = KernelSourceCache()
        destination = parse_address("127.0.0.1:80")
        lowest_free = os.open("/dev/null", os.O_RDONLY); os.close(lowest_free)
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (lowest_free, hard))
        starved = cache.get(destination, now=1.0)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        print(starved, len(cache), cache.get(destination, now=1.0))
    """
    result = _run_python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["None", "0", "127.0.0.1"]


def test_probe_raises_on_no_route_in_fresh_namespace() -> None:
    """In a namespace of our own (lo up, no other route): no route -> None, and cached."""
    require_root()
    namespace = f"aioconnlist-src-{os.getpid()}"
    created = subprocess.run(["ip", "netns", "add", namespace], capture_output=True, text=True)
    if created.returncode != 0:
        skip_or_fail(f"`ip netns add` failed: {created.stderr.strip()}")
    try:
        in_ns = ("ip", "netns", "exec", namespace)
        subprocess.run([*in_ns, "ip", "link", "set", "lo", "up"], check=True, timeout=10)
        subprocess.run(
            [*in_ns, "ip", "route", "add", "unreachable", "198.51.100.0/24"],
            check=True,
            timeout=10,
        )
        code = """
            import errno
            from aioconnlist._io.sources import KernelSourceCache, probe_kernel_source
            from aioconnlist._core.addresses import parse_address
            cache = KernelSourceCache()
            for text in ("127.0.0.1:80", "192.0.2.1:80", "198.51.100.1:80", "[2001:db8::1]:80"):
                try:
                    probe_kernel_source(parse_address(text))
                    error = "-"
                except OSError as e:
                    error = errno.errorcode[e.errno]
                print(text, cache.get(parse_address(text), now=1.0), error)
            print("cached", len(cache))
        """
        result = _run_python(code, *in_ns)
    finally:
        subprocess.run(["ip", "netns", "del", namespace], check=False, timeout=10)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "127.0.0.1:80 127.0.0.1 -"  # the control: loopback still works
    assert lines[1] == "192.0.2.1:80 None ENETUNREACH"  # no route at all
    assert lines[2] == "198.51.100.1:80 None EHOSTUNREACH"  # an unreachable route
    assert lines[3].startswith("[2001:db8::1]:80 None E")
    assert lines[4] == "cached 4"  # "no route" is an answer worth caching


# --- gather_sources -----------------------------------------------------------------------


def test_gather_kernel_mode_does_not_enumerate() -> None:
    destinations = [ep("127.0.0.1:80"), ep("127.0.0.2:80"), ep("127.0.0.1:81")]
    view = gather_sources(destinations, None)
    assert view.mode == "kernel"
    assert view.local == ()
    assert dict(view.kernel_choice) == {
        V4("127.0.0.1"): V4("127.0.0.1"),
        V4("127.0.0.2"): kernel_source(ep("127.0.0.2:80")),
    }
    assert sources._local_cache._cached is None, "kernel mode must not enumerate interfaces"


def test_gather_auto_mode() -> None:
    now = time.monotonic()
    view = gather_sources([ep("127.0.0.1:80")], "auto", now=now)
    assert view.mode == "auto"
    assert view.local is sources.machine_addresses(now)
    assert LocalAddress(V4("127.0.0.1"), 0, "lo") in view.local
    assert view.kernel_choice[V4("127.0.0.1")] == V4("127.0.0.1")


def test_gather_explicit_mode_keeps_exactly_the_given_sources() -> None:
    given = (LocalAddress(V4("127.0.0.3")), LocalAddress(V6("2001:db8::1")))
    view = gather_sources([ep("127.0.0.1:80"), ep("[fe80::1]:80")], given)
    assert view.mode == "explicit"
    assert view.local == given
    assert dict(view.kernel_choice) == {V4("127.0.0.1"): V4("127.0.0.1"), V6("fe80::1"): None}
    assert sources._local_cache._cached is None


def test_gather_with_cached_results_is_cheap() -> None:
    destinations = [Endpoint(V4("127.0.0.1") + i, 80) for i in range(1000)]
    now = time.monotonic()
    gather_sources(destinations, "auto", now=now)  # fill the caches
    started = time.perf_counter()
    view = gather_sources(destinations, "auto", now=now)
    elapsed = time.perf_counter() - started
    assert len(view.kernel_choice) == 1000
    assert elapsed < 0.05, f"{elapsed * 1e6 / 1000:.1f} µs per destination with warm caches"


# --- suitability of pairs (SPEC §2.1) -----------------------------------------------------

LO = 1
ETH = 4
USABILITY_CASES = [
    # (source ip, source zone, destination, usable)
    ("192.0.2.2", 0, "198.51.100.1:80", True),
    ("192.0.2.2", 0, "[2001:db8::1]:80", False),  # family
    ("2001:db8::2", 0, "198.51.100.1:80", False),  # family
    ("2001:db8::2", 0, "[2001:db8::1]:80", True),
    ("fd00::2", 0, "[2001:db8::1]:80", True),  # ULA to global: routing decides
    ("127.0.0.1", 0, "198.51.100.1:80", False),  # loopback source to a global destination
    ("127.0.0.1", 0, "127.0.0.1:80", True),
    ("127.0.0.1", 0, "127.0.0.2:80", True),  # all of 127/8 is loopback
    ("127.0.0.5", 0, "127.0.0.1:80", True),
    ("192.0.2.2", 0, "127.0.0.1:80", False),  # loopback destination takes loopback sources
    ("::1", 0, "[::1]:80", True),
    ("::1", 0, "[2001:db8::1]:80", False),
    ("2001:db8::2", 0, "[::1]:80", False),
    ("::1", 0, "127.0.0.1:80", False),  # family
    ("169.254.1.1", 0, "169.254.9.9:80", True),  # IPv4 link-local has no zone
    ("169.254.1.1", 0, "198.51.100.1:80", False),
    ("192.0.2.2", 0, "169.254.9.9:80", False),
    ("169.254.1.1", 0, "127.0.0.1:80", False),
    ("fe80::2", ETH, f"[fe80::1%{ETH}]:80", True),
    ("fe80::2", ETH, f"[fe80::1%{LO}]:80", False),  # other zone
    ("fe80::2", 0, f"[fe80::1%{ETH}]:80", True),  # source zone unknown: not excluded
    ("fe80::2", ETH, "[fe80::1]:80", False),  # destination without zone: never usable
    ("fe80::2", 0, "[fe80::1]:80", False),
    ("fe80::2", ETH, "[2001:db8::1]:80", False),  # link-local source to a global destination
    ("fe80::2", ETH, "[::1]:80", False),
    ("2001:db8::2", 0, f"[fe80::1%{ETH}]:80", False),  # global source to a link-local one
    ("febf::2", ETH, f"[febf::1%{ETH}]:80", True),  # febf:: is still fe80::/10
    ("fec0::2", 0, "[fec0::1]:80", True),  # site-local is not link-local
    ("fec0::2", 0, f"[fe80::1%{ETH}]:80", False),
]


@pytest.mark.parametrize(("source", "zone", "destination", "usable"), USABILITY_CASES)
def test_source_usable(source: str, zone: int, destination: str, usable: bool) -> None:
    local = LocalAddress(ipaddress.ip_address(source), zone)
    assert source_usable(local, ep(destination)) is usable


@pytest.mark.parametrize(
    ("destination", "usable"),
    [
        ("198.51.100.1:80", True),
        ("127.0.0.1:80", True),
        ("169.254.1.1:80", True),
        ("[2001:db8::1]:80", True),
        ("[::1]:80", True),
        (f"[fe80::1%{ETH}]:80", True),
        ("[fe80::1]:80", False),
        ("[febf:ffff::1]:80", False),
        ("[fec0::1]:80", True),
        ("[::ffff:169.254.1.1]:80", True),
    ],
)
def test_destination_usable(destination: str, usable: bool) -> None:
    assert destination_usable(ep(destination)) is usable


def test_source_usable_matches_ipaddress_classification() -> None:
    """The integer shortcuts agree with `ipaddress` over a spread of addresses."""
    samples = [
        *(V4(n) for n in range(0, 2**32, 2**32 // 997)),
        *(V6(n << 100) for n in range(0, 2**28, 2**28 // 997)),
        V4("127.255.255.255"),
        V4("169.254.0.0"),
        V4("169.253.255.255"),
        V4("169.255.0.0"),
        V4("128.0.0.0"),
        V6("::1"),
        V6("::2"),
        V6("fe80::"),
        V6("febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
        V6("fec0::"),
        V6("fe7f:ffff::"),
    ]
    for ip in samples:
        kind = pairs.locality(ip)
        expected = 0 if ip.is_loopback else 1 if ip.is_link_local else 2
        assert kind == expected, ip


def test_the_network_is_followed_from_the_first_plan_not_from_import() -> None:
    """Importing starts no thread and opens no socket; the first plan starts the watcher, which
    reads the network's identity, the kernel's TCP metrics and the machine's addresses in its
    own thread (no netlink dump in the planning thread, in kernel mode nor in the default
    "auto", which plans the kernel's choice alone until then) and applies them: the
    history's partition is named, the sources are cached for the next plans, and with change
    notifications (Linux) they are kept past `CACHE_TTL` and across failed races."""
    code = textwrap.dedent(
        """
        import os, sys, threading
        fds = lambda: len(os.listdir("/proc/self/fd"))
        before = (fds(), threading.active_count())
        import aioconnlist, aioconnlist.blocking
        from aioconnlist._io import netlink, network, sources
        imported = (fds(), threading.active_count())
        print(imported == before, network.current() is None, "psutil" in sys.modules,
              "asyncio" in sys.modules)
        dumps = []
        real_dump = netlink._dump
        def dump(*args):
            dumps.append(threading.get_ident())
            return real_dump(*args)
        netlink._dump = dump
        from aioconnlist._drivers.planning import plan_race
        from aioconnlist._core.addresses import parse_address
        from aioconnlist._core.history import DEFAULT_HISTORY
        from aioconnlist._core.options import make_options
        plan_race([parse_address("127.0.0.1:9")], make_options(local_addresses=None), 0.0)
        # "auto", as the drivers plan (head first): the addresses not read yet
        plan_race([parse_address("127.0.0.1:9")], make_options(), 0.0, head=True)
        in_plan = [i for i in dumps if i == threading.main_thread().ident]
        from aioconnlist._drivers import planning
        print(planning.wait_followed(30.0), network.current() is not None,
              DEFAULT_HISTORY.network is not None, in_plan == [], len(dumps) > 0,
              sources._local_cache._cached is not None)
        network._watcher.registered.wait(30.0)  # the watcher runs (and is counted) by then
        print(threading.active_count() == imported[1] + 1,
              fds() == imported[0] + network.notifying(), network.notifying(),
              "psutil" in sys.modules)
        sources.after_failed_race()  # notified: the kernel choice stays
        print(len(sources._kernel_cache) == 1)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    ).stdout.split()
    assert out[:4] == ["True", "True", "False", "False"], out
    assert out[4:10] == ["True"] * 6, out  # identity and addresses read by the watcher only
    assert out[10:12] == ["True", "True"], out
    assert out[13] == "False", "kernel mode must not load psutil"
    if out[12] == "True":  # netlink notifications (Linux)
        assert out[14] == "True"


def test_without_notifications_a_failed_race_drops_the_caches() -> None:
    sources.kernel_source(ep("127.0.0.1:80"))
    assert len(sources._kernel_cache) == 1
    notified = sources._notified
    sources.set_change_notifications(lambda: False)
    try:
        sources.after_failed_race()
        assert len(sources._kernel_cache) == 0
        sources.kernel_source(ep("127.0.0.1:80"))
        sources.set_change_notifications(lambda: True)
        sources.after_failed_race()
        assert len(sources._kernel_cache) == 1
    finally:
        sources.set_change_notifications(notified)


def test_a_full_kernel_cache_keeps_its_newest_half() -> None:
    probed: list[Endpoint] = []

    def probe(destination: Endpoint) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
        probed.append(destination)
        return V4("127.0.0.1")

    cache = sources.KernelSourceCache(probe, ttl=100.0, max_entries=8)
    dests = [ep(f"127.0.0.{i}:80") for i in range(1, 10)]
    for d in dests:
        cache.get(d, now=1.0)
    assert len(probed) == 9 and len(cache) == 5  # 8 full: the oldest 4 went, then the 9th
    for d in dests[4:]:
        cache.get(d, now=2.0)
    assert len(probed) == 9  # the newest are all still there
    cache.get(dests[0], now=2.0)
    assert len(probed) == 10


_SAME_AS_PSUTIL = """
    from aioconnlist._io import sources
    addrs, up, index = sources._interfaces_psutil()
    inet6 = sources.parse_if_inet6(sources._read_if_inet6())
    via_psutil = sources.select_local_addresses(addrs, up, inet6, index)
    via_netlink = sources.enumerate_local_addresses()
    print(via_netlink == via_psutil, len(via_netlink))
    print(via_psutil)
    print(via_netlink)
"""


def test_netlink_enumeration_is_psutils_on_this_host() -> None:
    """The enumeration reads netlink (no psutil import on the first connect): the same
    addresses, interfaces and order as psutil's getifaddrs and interface flags give."""
    if not hasattr(socket, "AF_NETLINK"):
        pytest.skip("netlink is Linux's")
    result = _run_python(_SAME_AS_PSUTIL)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[0] == "True", result.stdout


def test_netlink_enumeration_is_psutils_with_aliases_down_links_and_flags() -> None:
    """In a namespace of our own: an IPv4 alias label, an interface down, one up without
    carrier, deprecated and (most likely still) tentative IPv6 addresses, link-local zones."""
    require_root()
    namespace = f"aioconnlist-enum-{os.getpid()}"
    created = subprocess.run(["ip", "netns", "add", namespace], capture_output=True, text=True)
    if created.returncode != 0:
        skip_or_fail(f"`ip netns add` failed: {created.stderr.strip()}")
    try:
        in_ns = ("ip", "netns", "exec", namespace)
        for command in (
            "ip link set lo up",
            "ip link add v0 type veth peer name v1",
            "ip link set v1 up",
            "ip link set v0 up",
            "ip addr add 198.51.100.2/24 dev v0",
            "ip addr add 198.51.100.3/24 dev v0 label v0:1",
            "ip addr add 2001:db8:1::2/64 dev v0 preferred_lft 0",
            "ip addr add 2001:db8:1::3/64 dev v0 nodad",
            "ip addr add 2001:db8:1::4/64 dev v0",
            "ip link add d0 type veth peer name d0p",
            "ip link set d0 up",
            "ip addr add 203.0.113.2/24 dev d0",
            "ip link add d1 type veth peer name d1p",
            "ip addr add 192.0.2.9/24 dev d1",
        ):
            subprocess.run([*in_ns, *command.split()], check=True, timeout=10)
        result = _run_python(_SAME_AS_PSUTIL, *in_ns)
    finally:
        subprocess.run(["ip", "netns", "del", namespace], check=False, timeout=10)
    assert result.returncode == 0, result.stderr
    first = result.stdout.split()
    assert first[0] == "True", result.stdout
    assert int(first[1]) >= 4, result.stdout  # lo's two, d0's, the alias: something to compare


def test_auto_plans_take_alternates_once_the_watcher_read_the_addresses() -> None:
    """Before the watcher's first go at the network an "auto" plan is the kernel-mode plan (no
    enumeration) as the head of the full plan (the race asks for that when it needs more, see
    `test_multi_homed_first_race_of_a_fresh_process`); afterwards it is planned from the
    addresses the watcher read (the same view `gather_sources` gives), still without a netlink
    dump in the planning thread."""
    code = textwrap.dedent(
        """
        import ipaddress, threading
        from aioconnlist._io import netlink, network, sources
        from aioconnlist._drivers import planning
        from aioconnlist._core.addresses import parse_address
        from aioconnlist._core.options import make_options
        from aioconnlist._core.planner import plan_pairs
        dumps = []
        real_dump = netlink._dump
        def dump(*args):
            dumps.append(threading.get_ident())
            return real_dump(*args)
        netlink._dump = dump
        dests = [parse_address("127.0.0.1:9"), parse_address("[::1]:9")]
        first = planning.plan_race(dests, make_options(), 0.0, head=True)  # as the drivers do
        kernel = planning.plan_race(dests, make_options(local_addresses=None), 0.0)
        print(first == kernel and first.more == 0, planning._before_addresses())
        print(planning.wait_followed(30.0), planning._before_addresses())
        later = planning.plan_race(dests, make_options(), 0.0)
        view = sources.gather_sources(dests, "auto")
        print(view.mode == "auto", later == plan_pairs(dests, view, history=None, now=0.0),
              threading.main_thread().ident not in dumps)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    ).stdout.split()
    assert out == ["True", "True", "True", "False", "True", "True", "True"], out


def test_a_process_s_next_races_after_a_success_still_plan_the_kernel_s_choice_alone() -> None:
    """Before the watcher's first go at the network, a destination the history knows only
    successes of, through the kernel's choice, is planned as before: the kernel-mode plan as
    the head of the full plan, no enumeration (a fresh process's second connect paid two
    netlink dumps for a plan with the same first pair). Evidence that could put an alternate
    first gets the full plan at once: a failure, or a success through another source."""
    code = textwrap.dedent(
        """
        import ipaddress
        from aioconnlist._io import sources
        from aioconnlist._drivers import planning
        from aioconnlist._core.addresses import parse_address
        from aioconnlist._core.history import PairHistory
        from aioconnlist._core.options import make_options
        from aioconnlist._core.pairs import LocalAddress, Pair
        def plans(record):
            history = PairHistory()
            dests = [parse_address("127.0.0.1:9"), parse_address("127.0.0.2:9")]
            kernel_mode = make_options(local_addresses=None, history=history)
            kernel = planning.plan_race(dests, kernel_mode, 0.0)
            record(history, kernel)
            first = planning.plan_race(dests, make_options(history=history), 1.0, head=True)
            kernel = planning.plan_race(dests, kernel_mode, 1.0)  # (history may reorder it)
            return type(first).__name__ == "PlanHead" and first.more == 0 and first == kernel
        def succeeded(history, kernel):
            history.record_success(kernel[1], 0.001, 0.5)
        def failed(history, kernel):
            history.record_failure(kernel[1], "refused", 0.5)
        def elsewhere(history, kernel):
            other = LocalAddress(ipaddress.ip_address("127.0.0.3"))
            history.record_success(Pair(other, kernel[1].destination), 0.001, 0.5)
        print(plans(lambda history, kernel: None), plans(succeeded), sources.local_addresses_read())
        print(plans(elsewhere), planning._before_addresses())  # (the addresses read for it)
        planning._addresses_known = False  # (and forgotten: the same for a failure)
        sources.invalidate()
        print(plans(failed))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    ).stdout.split()
    assert out == ["True", "True", "False", "False", "False", "False"], out


def test_the_async_api_loads_only_what_a_first_connect_runs() -> None:
    """The drivers' import (what ``aioconnlist.connect_by_list`` loads) creates no dataclass and
    loads neither the history file's machinery (json, hashlib's OpenSSL bindings) nor the
    network's (the identity, the watcher): the thread that follows the network after the first
    plan imports those. The by-name path (resolvers) is loaded by its first call."""
    code = textwrap.dedent(
        """
        import asyncio, sys
        import aioconnlist
        aioconnlist.connect_by_list
        absent = ["dataclasses", "json", "hashlib", "difflib", "aioconnlist._io.history_file",
                  "aioconnlist._io.network", "aioconnlist._io.resolve",
                  "aioconnlist._drivers.by_name"]
        print([m for m in absent if m in sys.modules])
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    ).stdout.strip()
    assert out == "[]", out


def test_on_an_event_loop_the_first_plan_leaves_the_thread_to_a_timer() -> None:
    """A plan on an event loop starts no thread: the loop's timer starts the one that follows
    the network `FOLLOW_DELAY` later, which then names the history's partition and reads the
    machine's addresses (off the first connect altogether)."""
    code = textwrap.dedent(
        """
        import asyncio, os
        from aioconnlist._core.addresses import parse_address
        from aioconnlist._core.history import DEFAULT_HISTORY
        from aioconnlist._core.options import make_options
        from aioconnlist._drivers import planning
        from aioconnlist._io import sources
        tasks = lambda: len(os.listdir("/proc/self/task"))
        async def main():
            loop = asyncio.get_running_loop()
            before = tasks()
            planning.plan_race([parse_address("127.0.0.1:9")], make_options(), loop.time())
            print(tasks() == before, planning._started, planning._scheduled_on is loop)
            followed = await loop.run_in_executor(None, planning._followed.wait, 30.0)
            from aioconnlist._io import network
            print(followed, network.current() is not None, DEFAULT_HISTORY.network is not None,
                  sources.local_addresses_read())
        asyncio.run(main())
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    ).stdout.split()
    assert out == ["True", "False", "True", "True", "True", "True", "True"], out
