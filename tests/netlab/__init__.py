"""A real-network lab: Happy Eyeballs on slow, black-holed, unreachable and multi-homed paths.

Unit tests on loopback cannot show the interesting networks, so this package builds them on
the real kernel, in network namespaces it creates and always deletes. Nothing touches the
host's own network configuration; only documentation prefixes (192.0.2.0/24,
198.51.100.0/24, 2001:db8::/32) are used, and only inside the lab's namespaces.

Shape::

      client ns  aclab-<pid>-<tag>-cli                server ns  aclab-<pid>-<tag>-srv
    +-----------------------------------+          +------------------------------------+
    | c0 198.51.100.2   2001:db8:a::2   |==veth====| s0 198.51.100.1   2001:db8:a::1    |
    |    (main table: kernel's choice)  |          |                                    |
    | c1 198.51.100.18  2001:db8:b::2   |==veth====| s1 198.51.100.17  2001:db8:b::1    |
    |    ("from c1 lookup 101")         |          | lo: services 192.0.2.N, 2001:db8:f::N
    | routes: unreachable/prohibit .4/.5|          | iptables: DROP, REJECT, NFQUEUE    |
    | client.py per scenario            |          | agent.py: listeners + delay line   |
    +-----------------------------------+          +------------------------------------+

- The test process stays in the host namespace. `NetLab.build()` makes both namespaces, the
  veth pairs and the rules, and starts ``agent.py`` in the server namespace; each scenario is
  a subprocess ``ip netns exec CLI python client.py`` that reads JSON and prints JSON.
- **Service addresses** (server loopback): the last number says the behaviour, +10/+20 give
  more addresses of the same kind (``service_ip(role, family, variant)``):
  ``.1`` accepts, ``.2`` refuses (no listener), ``.3`` black hole (iptables DROP),
  ``.4`` client route ``unreachable`` (EHOSTUNREACH at once), ``.5`` client route
  ``prohibit`` (EACCES at once), ``.6`` accepts but drops SYNs from the kernel's source
  (c0; the multi-homed case: only a socket bound to c1's address gets through), ``.7`` gate
  (held until N SYNs arrive, then released together), ``.8`` lossy (every other SYN to the
  address and port is lost, starting with the first: a connection's first SYN is lost, the
  next one passes), ``.9`` ICMP host unreachable.
  The same numbers under 2001:db8:f:: for IPv6.
- **Delays**: tc/netem is not in this kernel. A SYN to port 10001-65535 of a service
  address goes to NFQUEUE; the agent (``netfilterqueue``) holds it ``port - 10000``
  milliseconds, then accepts it (or, for ``.9``, marks it and re-injects it so a REJECT rule
  answers ICMP unreachable). So ``192.0.2.1:10020`` accepts after 20 ms, ``192.0.2.2:10100``
  refuses after 100 ms, ``192.0.2.9:10050`` is unreachable after 50 ms. Port 9000: no delay.
  Only the SYN is delayed: connect time is the delay; data is not slowed.
- **Multi-homing**: c1's address is used only by sockets bound to it (policy routing), as on
  a host with two uplinks. The kernel picks c0's address for every service destination.
- **Server log**: the agent logs every accepted connection (local, peer, accept and close
  time, eof/reset) and echoes data, so tests see which sockets the client kept and closed.
- **Cleanup**: namespace names carry the pid; `NetLab.build()` is a context manager whose
  ``finally`` ends the agent (EOF on its stdin, then kill by pid) and deletes both namespaces
  (veths and rules go with them) and any ``/etc/netns/<name>`` hosts file; a later run deletes
  lab namespaces whose pid is gone (a killed run).
- **Names**: ``NetLab.build(hosts={...})`` writes ``/etc/netns/<client ns>/hosts``, which
  ``ip netns exec`` bind-mounts over /etc/hosts, so name-based peers (asyncio, trio) resolve
  a lab name to AAAA and A records. 2001:db8:: sorts before IPv4 by RFC 6724 (precedence 40
  against 35), as real global IPv6 does.

Other hosts (a VPN client, a host without policy rule, a link-local-only IPv6 host, an
IPv6-only host behind NAT64) are built by reshaping a lab of their own: `tests.netlab.hosts`.

Tests using the lab call `require_netlab()` and carry the ``netlab`` marker. Without root,
``ip netns``, iptables with NFQUEUE or ``netfilterqueue`` they skip with the reason; with
``AIOCONNLIST_REQUIRE_NETLAB=1`` (CI) the same reason is a failure. Debian packages:
iproute2, iptables, libnetfilter-queue-dev (+ gcc to build netfilterqueue), see
``.ci/netlab-deps.sh``.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys

REQUIRE_ENV = "AIOCONNLIST_REQUIRE_NETLAB"


@functools.cache
def netlab_problem() -> str | None:
    """Why the lab cannot run here, or ``None`` when it can (probed once per process)."""
    if sys.platform != "linux":
        return "the network lab needs Linux network namespaces"
    if os.geteuid() != 0:
        return "the network lab needs root (ip netns, iptables)"
    for tool in ("ip", "iptables", "ip6tables", "iptables-restore", "ip6tables-restore"):
        if shutil.which(tool) is None:
            return f"the network lab needs `{tool}` (Debian: iproute2 / iptables)"
    try:
        import netfilterqueue  # noqa: F401
    except ImportError as e:
        return f"the network lab needs the netfilterqueue package (pip) for its delay line: {e}"
    probe = f"aclab-{os.getpid()}-probe-cli"
    try:
        ns_exec = ["ip", "netns", "exec", probe]
        syn_to = ["-A", "INPUT", "-p", "tcp", "--syn", "-d"]
        steps = [
            ["ip", "netns", "add", probe],
            [*ns_exec, "iptables", *syn_to, "192.0.2.1", "-j", "NFQUEUE", "--queue-num", "7"],
            [*ns_exec, "ip6tables", *syn_to, "2001:db8:f::1", "-j", "DROP"],
        ]
        for step in steps:
            proc = subprocess.run(step, capture_output=True, text=True, timeout=20, check=False)
            if proc.returncode != 0:
                return f"`{' '.join(step)}` failed: {proc.stderr.strip()}"
    finally:
        subprocess.run(["ip", "netns", "del", probe], capture_output=True, timeout=20, check=False)
    return None


def require_netlab() -> None:
    """Skip the calling test when the lab cannot run; fail instead under REQUIRE_ENV=1."""
    import pytest

    problem = netlab_problem()
    if problem is None:
        return
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{REQUIRE_ENV}=1 but the network lab cannot run: {problem}")
    pytest.skip(problem)
