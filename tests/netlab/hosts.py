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
"""

from __future__ import annotations

from .lab import C0_V4, C0_V6, C1_V4, C1_V6, S0_V4, S0_V6, SERVICE_V4, SERVICE_V6, NetLab

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
