"""Reshape the lab's client namespace into the hosts of real networks (see `tests.netlab`).

Each function takes a freshly built `NetLab` and changes only its client namespace, so a test
that uses one builds a lab of its own (``NetLab.build(tag)``) and the shared lab of
tests/test_netlab.py keeps its shape.

- `vpn_host`: a full-tunnel VPN client. A real TUN device ``tun0`` (point-to-point, no process
  behind it: a black-holed tunnel) carries the service networks, while a ``from LAN-address``
  policy rule (as VPN clients install so that the LAN stays reachable) would still send
  LAN-sourced packets out of the LAN interface ``c0``; c1 keeps its own rule. A bridge ``br0``
  (as Docker's or libvirt's) has an address of its own.
- `no_policy_rule`: c1's address loses its ``from C1 lookup 101`` rule: a two-interface host
  under the weak host model, where packets from c1's address leave through c0.
- `link_local_ipv6_only`: the host's IPv6 is link-local (and a ULA without route) only.
- `ipv6_only_with_nat64`: the host is IPv6-only behind a real NAT64 (Debian's tayga in the
  server namespace) with a DNS64 answer for ``ipv4only.arpa``.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .lab import (
    C0_V4,
    C0_V6,
    C1_V4,
    C1_V6,
    NETNS_EXEC,
    REPO,
    S0_V4,
    S0_V6,
    SERVICE_V4,
    SERVICE_V6,
    NetLab,
)

TUN = "tun0"
TUN_V4, TUN_V6 = "203.0.113.2", "2001:db8:7::2"
BRIDGE = "br0"
BRIDGE_V4, BRIDGE_V6 = "198.51.100.100", "2001:db8:c::1"
ULA = "fd00:db8::2"


def vpn_host(lab: NetLab) -> None:
    """Make the client a VPN host whose tunnel (the kernel's route to every service) is dead."""
    lab.client_batch(
        [
            f"tuntap add mode tun name {TUN}",
            f"addr add {TUN_V4}/24 dev {TUN}",
            f"addr add {TUN_V6}/64 dev {TUN} nodad",
            f"link set {TUN} up",
            f"route replace {SERVICE_V4} dev {TUN}",
            f"route replace {SERVICE_V6} dev {TUN}",
            f"route add {SERVICE_V4} via {S0_V4} dev c0 table 102",
            f"route add {SERVICE_V6} via {S0_V6} dev c0 table 102",
            f"rule add from {C0_V4} lookup 102 priority 90",
            f"link add {BRIDGE} type bridge",
            f"addr add {BRIDGE_V4}/28 dev {BRIDGE}",
            f"addr add {BRIDGE_V6}/64 dev {BRIDGE} nodad",
            f"link set {BRIDGE} up",
        ]
    )
    lab.client_batch([f"rule add from {C0_V6} lookup 102 priority 90"], family=6)


def no_policy_rule(lab: NetLab) -> None:
    """Remove c1's policy rules: its address is then routed out of c0 (weak host model)."""
    lab.client_batch([f"rule del from {C1_V4} lookup 101 priority 100"])
    lab.client_batch([f"rule del from {C1_V6} lookup 101 priority 100"], family=6)


def link_local_ipv6_only(lab: NetLab) -> None:
    """Take every global IPv6 address and route away; keep link-local and a route-less ULA."""
    lab.client_batch(
        [
            f"addr del {C0_V6}/64 dev c0",
            f"addr del {C1_V6}/64 dev c1",
            f"route del {SERVICE_V6}",
            f"addr add {ULA}/128 dev c0 nodad",
        ],
        family=6,
    )


# ---------------------------------------------------------------- NAT64

NAT64_PREFIX = "2001:db8:64::/96"  # network-specific: tayga refuses 64:ff9b::/96 for TEST-NETs
NAT64_POOL = "198.51.100.224/27"  # the IPv4 addresses tayga maps IPv6 clients to
NAT64_V4 = "198.51.100.254"
DNS64_ANSWERS = ["2001:db8:64::c000:aa", "2001:db8:64::c000:ab"]  # ipv4only.arpa's AAAA


def nat64_synthesize(ipv4: str) -> str:
    """The address of ``ipv4`` behind the lab's NAT64 (a /96: the IPv4 in the last 32 bits)."""
    import ipaddress

    prefix = ipaddress.IPv6Network(NAT64_PREFIX)
    return str(prefix.network_address + int(ipaddress.IPv4Address(ipv4)))


_DNS_SERVER = """
import asyncio, sys
sys.path.insert(0, {repo!r})
from tests.dnsserver import DelayedDNSServer

async def main():
    records, delays = {records!r}, {delays!r}
    async with DelayedDNSServer(records, delays, host={host!r}, bind_port=53):
        print("ready", flush=True)
        await asyncio.get_running_loop().connect_read_pipe(asyncio.Protocol, sys.stdin)
        while sys.stdin.readable():
            await asyncio.sleep(3600)  # ends when the test closes stdin (EOF kills the loop)

asyncio.run(main())
"""


@contextlib.contextmanager
def ipv6_only_with_nat64(lab: NetLab) -> Iterator[None]:
    """The client loses its IPv4 addresses (IPv6-only); the server namespace becomes a NAT64
    router (tayga, prefix `NAT64_PREFIX`); a DNS64 server on the client's ::1:53 answers
    ``ipv4only.arpa`` (the system resolver asks it: /etc/netns/CLI/resolv.conf)."""
    if shutil.which("tayga") is None:
        raise RuntimeError("the NAT64 lab needs Debian's tayga (.ci/netlab-deps.sh installs it)")
    work = Path(tempfile.mkdtemp(prefix="aclab-nat64-"))
    conf = work / "tayga.conf"
    conf.write_text(
        f"tun-device nat64\nipv4-addr {NAT64_V4}\nprefix {NAT64_PREFIX}\n"
        f"dynamic-pool {NAT64_POOL}\ndata-dir {work}\n"
    )
    srv = lab.server_ns
    lab.ns_run(srv, "tayga", "-c", str(conf), "--mktun")
    for step in (
        "link set nat64 up",
        f"route add {NAT64_POOL} dev nat64",
        f"-6 route add {NAT64_PREFIX} dev nat64",
    ):
        lab.ns_run(srv, "ip", *step.split())
    lab.ns_run(
        srv,
        "sh",
        "-c",
        "echo 1 > /proc/sys/net/ipv4/ip_forward; echo 1 > /proc/sys/net/ipv6/conf/all/forwarding",
    )
    lab.client_batch([f"addr del {C0_V4}/28 dev c0", f"addr del {C1_V4}/28 dev c1"])
    lab.client_batch([f"route add {NAT64_PREFIX} via {S0_V6} dev c0"], family=6)
    tayga = subprocess.Popen(
        [*NETNS_EXEC, srv, "tayga", "-c", str(conf), "-n"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        with dns_server(lab, {"ipv4only.arpa": {"AAAA": DNS64_ANSWERS}}, host="::1"):
            yield
    finally:
        tayga.kill()  # our own child, by its pid
        tayga.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)


@contextlib.contextmanager
def dns_server(
    lab: NetLab,
    records: dict[str, dict[str, list[str]]],
    delays: dict[str, float] | None = None,
    host: str = "127.0.0.1",
) -> Iterator[None]:
    """A DNS server on the client's loopback port 53 (`tests.dnsserver.DelayedDNSServer`:
    each record type answered after its delay), the client's system resolver pointed at it
    (/etc/netns/CLI/resolv.conf, bind-mounted by ``ip netns exec``)."""
    netns_dir = Path("/etc/netns") / lab.client_ns
    netns_dir.mkdir(parents=True, exist_ok=True)
    (netns_dir / "resolv.conf").write_text(f"nameserver {host}\noptions timeout:2 attempts:1\n")
    if lab.hosts_dir is None:
        lab.hosts_dir = netns_dir  # removed by the lab's teardown
    program = _DNS_SERVER.format(repo=str(REPO), records=records, delays=delays or {}, host=host)
    dns = subprocess.Popen(
        [*NETNS_EXEC, lab.client_ns, sys.executable, "-c", program],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert dns.stdout is not None
        if dns.stdout.readline().strip() != "ready":
            raise RuntimeError("the lab's DNS server did not start")
        yield
    finally:
        dns.kill()  # our own child, by its pid
        dns.wait(timeout=10)
        if dns.stdin is not None:
            dns.stdin.close()
        if dns.stdout is not None:
            dns.stdout.close()
