"""Build and tear down the two-namespace lab; run client scenarios in it. See the package doc."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
AGENT = HERE / "agent.py"
CLIENT = HERE / "client.py"

PREFIX = "aclab"  # every namespace this lab makes is called aclab-<pid>-<tag>-{cli,srv}
QUEUE_NUM = 7
REJECT_MARK = 2  # the agent marks a SYN it wants answered with ICMP unreachable

# Client side: two interfaces. c0 is the kernel's choice (main table); c1 is used only by
# sockets bound to its address (policy routing: "from C1 lookup 101").
C0_V4, C0_V6 = "198.51.100.2", "2001:db8:a::2"
S0_V4, S0_V6 = "198.51.100.1", "2001:db8:a::1"
C1_V4, C1_V6 = "198.51.100.18", "2001:db8:b::2"
S1_V4, S1_V6 = "198.51.100.17", "2001:db8:b::1"
MAC = {"c0": "02:00:00:00:00:c0", "s0": "02:00:00:00:00:50", "c1": "02:00:00:00:00:c1",
       "s1": "02:00:00:00:00:51"}  # fmt: skip
SERVICE_V4 = "192.0.2.0/24"
SERVICE_V6 = "2001:db8:f::/64"

# A service address's last number says what it does (see ROLES); +10, +20 give more of a kind.
ROLES = {
    "ok": 1,  # accepts (after the port's delay)
    "refused": 2,  # no listener: refused (after the port's delay)
    "drop": 3,  # every packet silently dropped: a black hole
    "unreachable-route": 4,  # client route "unreachable": EHOSTUNREACH at once, nothing sent
    "prohibit-route": 5,  # client route "prohibit": EACCES at once
    "kernel-source-broken": 6,  # accepts, but SYNs from the kernel's source (c0) are dropped
    "gate": 7,  # accepts; SYNs held until `count` of them are held (agent "gate" op)
    "lossy": 8,  # accepts; every other SYN is lost: a connection's first, then the next passes
    "unreachable": 9,  # ICMP host unreachable (after the port's delay)
}
LISTENING_ROLES = ("ok", "kernel-source-broken", "gate", "lossy")
VARIANTS = (0, 10, 20)
ZEROED_SYSCTLS = (
    "ipv6/conf/all/accept_dad",
    "ipv6/conf/default/accept_dad",
    "ipv4/conf/all/rp_filter",
    "ipv4/conf/default/rp_filter",
)
PLAIN_PORT = 9000  # below 10001: no delay
# The timed processes run ahead of the rest of the machine, so that a busy CI box delays
# them less: the client at nice -10; the agent (the delay line) real-time (SCHED_FIFO) on CPU 0
# when allowed. A client pinned to CPU 0 then cannot run between two of the agent's verdicts:
# a gate's SYNs are all released before the client sees the first connection (same tick).
NICE = ["nice", "-n", "-10"]
NETNS_EXEC = ["ip", "netns", "exec"]
AGENT_CPU = 0


def agent_priority() -> list[str]:
    """``chrt -f 10 taskset -c 0`` when permitted here, else ``nice -n -10``."""
    fifo = ["chrt", "-f", "10", "taskset", "-c", str(AGENT_CPU)]
    if shutil.which("chrt") and shutil.which("taskset"):
        probe = subprocess.run([*fifo, "true"], capture_output=True, timeout=10, check=False)
        if probe.returncode == 0:
            return fifo
    return NICE


def service_ip(role: str, family: int = 4, variant: int = 0) -> str:
    number = ROLES[role] + VARIANTS[variant]
    return f"192.0.2.{number}" if family == 4 else f"2001:db8:f::{number}"


def delay_port(delay: float) -> int:
    """The port whose SYNs the delay line holds ``delay`` seconds (0: not queued)."""
    ms = round(delay * 1000)
    if not 0 <= ms <= 55535:
        raise ValueError(f"delay {delay} s out of range")
    return PLAIN_PORT if ms == 0 else 10000 + ms


def endpoint_text(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def _run(
    args: Sequence[str], *, stdin: str | None = None, check: bool = True, timeout: float = 30.0
) -> str:
    proc = subprocess.run(
        list(args), input=stdin, capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and proc.returncode != 0:
        raise RuntimeError(
            f"{' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip() or proc.stdout}"
        )
    return proc.stdout


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def list_namespaces() -> list[str]:
    out = _run(["ip", "netns", "list"], check=False)
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def remove_stale_namespaces() -> None:
    """Delete lab namespaces left by a lab process that no longer exists (killed -9)."""
    for name in list_namespaces():
        m = re.fullmatch(rf"{PREFIX}-(\d+)-[\w.]+-(cli|srv)", name)
        if m and not _pid_alive(int(m.group(1))):
            _run(["ip", "netns", "del", name], check=False)
            shutil.rmtree(f"/etc/netns/{name}", ignore_errors=True)


@dataclass
class ClientResult:
    """What ``client.py`` printed for one scenario."""

    data: dict[str, Any]
    stderr: str = ""

    @property
    def calls(self) -> list[dict[str, Any]]:
        return list(self.data.get("calls", []))

    def __getitem__(self, key: str) -> Any:
        return self.data[key]


@dataclass
class NetLab:
    """A client namespace and a server namespace joined by two veth pairs. Use `build()`."""

    tag: str = "lab"
    hosts: dict[str, list[str]] = field(default_factory=dict)
    client_ns: str = ""
    server_ns: str = ""
    agent: subprocess.Popen[str] | None = None
    agent_start: float = 0.0
    listening: set[tuple[str, int]] = field(default_factory=set)
    created: list[str] = field(default_factory=list)
    hosts_dir: Path | None = None
    agent_prio: list[str] = field(default_factory=list)
    agent_errors: IO[str] | None = None

    # ---------------------------------------------------------------- lifecycle
    @classmethod
    @contextlib.contextmanager
    def build(cls, tag: str = "lab", hosts: dict[str, list[str]] | None = None) -> Iterator[NetLab]:
        """Make the lab; always tear it down (namespaces, agent, /etc/netns files)."""
        lab = cls(tag=tag, hosts=dict(hosts or {}))
        try:
            lab._setup()
            yield lab
        finally:
            lab.teardown()

    def _setup(self) -> None:
        remove_stale_namespaces()
        base = f"{PREFIX}-{os.getpid()}-{self.tag}"
        self.client_ns, self.server_ns = f"{base}-cli", f"{base}-srv"
        for ns in (self.client_ns, self.server_ns):
            _run(["ip", "netns", "add", ns])
            self.created.append(ns)
            # New addresses usable at once (no DAD); no reverse-path filtering surprises.
            # (plain /proc/sys writes: no procps needed)
            settings = " ".join(f"echo 0 > /proc/sys/net/{key};" for key in ZEROED_SYSCTLS)
            self.ns_run(ns, "sh", "-c", settings)
        if self.hosts:
            self._write_hosts()
        cli, srv = self.client_ns, self.server_ns
        routed_away = ("unreachable-route", "prohibit-route")  # never on the server
        batch_cli = [
            "link set lo up",
            *(
                f"link add c{i} address {MAC[f'c{i}']} type veth"
                f" peer name s{i} address {MAC[f's{i}']} netns {srv}"
                for i in (0, 1)
            ),
            f"addr add {C0_V4}/28 dev c0",
            f"addr add {C0_V6}/64 dev c0 nodad",
            f"addr add {C1_V4}/28 dev c1",
            f"addr add {C1_V6}/64 dev c1 nodad",
            "link set c0 up",
            "link set c1 up",
            f"route add {SERVICE_V4} via {S0_V4} dev c0",
            f"route add {SERVICE_V6} via {S0_V6} dev c0",
            f"route add {SERVICE_V4} via {S1_V4} dev c1 table 101",
            f"route add {SERVICE_V6} via {S1_V6} dev c1 table 101",
            f"rule add from {C1_V4} lookup 101 priority 100",
            # Static neighbours: no ARP/ND on the timed path (a lost first NS costs 1 s).
            f"neigh add {S0_V4} lladdr {MAC['s0']} dev c0 nud permanent",
            f"neigh add {S0_V6} lladdr {MAC['s0']} dev c0 nud permanent",
            f"neigh add {S1_V4} lladdr {MAC['s1']} dev c1 nud permanent",
            f"neigh add {S1_V6} lladdr {MAC['s1']} dev c1 nud permanent",
        ]
        for variant in range(len(VARIANTS)):
            for table in ("main", "101"):
                for fam in (4, 6):
                    plen = 32 if fam == 4 else 128
                    un = service_ip("unreachable-route", fam, variant)
                    pr = service_ip("prohibit-route", fam, variant)
                    batch_cli.append(f"route add unreachable {un}/{plen} table {table}")
                    batch_cli.append(f"route add prohibit {pr}/{plen} table {table}")
        _run(["ip", "-n", cli, "-batch", "-"], stdin="\n".join(batch_cli) + "\n")
        _run(["ip", "-6", "-n", cli, *f"rule add from {C1_V6} lookup 101 priority 100".split()])
        batch_srv = [
            "link set lo up",
            f"addr add {S0_V4}/28 dev s0",
            f"addr add {S0_V6}/64 dev s0 nodad",
            f"addr add {S1_V4}/28 dev s1",
            f"addr add {S1_V6}/64 dev s1 nodad",
            "link set s0 up",
            "link set s1 up",
            f"neigh add {C0_V4} lladdr {MAC['c0']} dev s0 nud permanent",
            f"neigh add {C0_V6} lladdr {MAC['c0']} dev s0 nud permanent",
            f"neigh add {C1_V4} lladdr {MAC['c1']} dev s1 nud permanent",
            f"neigh add {C1_V6} lladdr {MAC['c1']} dev s1 nud permanent",
        ]
        for role in ROLES:
            if role in routed_away:
                continue
            for variant in range(len(VARIANTS)):
                batch_srv.append(f"addr add {service_ip(role, 4, variant)}/32 dev lo")
                batch_srv.append(f"addr add {service_ip(role, 6, variant)}/128 dev lo nodad")
        _run(["ip", "-n", srv, "-batch", "-"], stdin="\n".join(batch_srv) + "\n")
        self._install_rules()
        self._start_agent(
            unreachable=[service_ip("unreachable", f, v) for f in (4, 6) for v in range(3)],
            gates=[service_ip("gate", f, v) for f in (4, 6) for v in range(3)],
            lossy=[service_ip("lossy", f, v) for f in (4, 6) for v in range(3)],
        )

    def _install_rules(self) -> None:
        for fam in (4, 6):
            reject = "icmp-host-unreachable" if fam == 4 else "icmp6-addr-unreachable"
            service = SERVICE_V4 if fam == 4 else SERVICE_V6
            kernel_src = C0_V4 if fam == 4 else C0_V6
            rules = [
                "*filter",
                f"-A INPUT -p tcp -m mark --mark {REJECT_MARK} -j REJECT --reject-with {reject}",
            ]
            for v in range(len(VARIANTS)):
                rules.append(f"-A INPUT -d {service_ip('drop', fam, v)} -j DROP")
                broken = service_ip("kernel-source-broken", fam, v)
                rules.append(f"-A INPUT -s {kernel_src} -d {broken} -j DROP")
                unreach = service_ip("unreachable", fam, v)
                rules.append(
                    f"-A INPUT -d {unreach} -p tcp --syn -m tcp --dport 0:10000 "
                    f"-j REJECT --reject-with {reject}"
                )
                for queued in ("gate", "lossy"):
                    rules.append(
                        f"-A INPUT -d {service_ip(queued, fam, v)} -p tcp --syn "
                        f"-j NFQUEUE --queue-num {QUEUE_NUM}"
                    )
            rules.append(
                f"-A INPUT -d {service} -p tcp --syn -m tcp --dport 10001:65535 "
                f"-j NFQUEUE --queue-num {QUEUE_NUM}"
            )
            rules.append("COMMIT")
            tool = "iptables-restore" if fam == 4 else "ip6tables-restore"
            self.ns_run(self.server_ns, tool, "--noflush", stdin="\n".join(rules) + "\n")

    def _write_hosts(self) -> None:
        """/etc/netns/CLI/hosts: `ip netns exec` bind-mounts it over /etc/hosts for the client."""
        self.hosts_dir = Path("/etc/netns") / self.client_ns
        self.hosts_dir.mkdir(parents=True, exist_ok=True)
        lines = ["127.0.0.1 localhost", "::1 localhost ip6-localhost"]
        for name, ips in self.hosts.items():
            lines += [f"{ip} {name}" for ip in ips]
        (self.hosts_dir / "hosts").write_text("\n".join(lines) + "\n")

    def _start_agent(self, *, unreachable: list[str], gates: list[str], lossy: list[str]) -> None:
        config = json.dumps(
            {"queue": QUEUE_NUM, "unreachable": unreachable, "gates": gates, "lossy": lossy}
        )
        self.agent_prio = agent_priority()
        self.agent_errors = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - closed in teardown
        self.agent = subprocess.Popen(
            [*NETNS_EXEC, self.server_ns, *self.agent_prio, sys.executable, str(AGENT), config],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.agent_errors,  # a file, not a pipe: a chatty agent never blocks
            text=True,
        )
        ready = self._agent_reply()
        if not ready.get("ready"):
            raise RuntimeError(f"lab agent did not start: {ready}")

    def _agent_reply(self) -> dict[str, Any]:
        assert self.agent is not None and self.agent.stdout is not None
        line = self.agent.stdout.readline()
        if not line:
            self.agent.wait(timeout=5)
            err = ""
            if self.agent_errors is not None:
                self.agent_errors.seek(0)
                err = self.agent_errors.read()
            raise RuntimeError(f"lab agent exited: {err.strip()}")
        reply: dict[str, Any] = json.loads(line)
        return reply

    def teardown(self) -> None:
        if self.agent is not None:
            with contextlib.suppress(Exception):
                assert self.agent.stdin is not None
                self.agent.stdin.close()  # EOF: the agent exits by itself
            try:
                self.agent.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.agent.kill()  # our own child, by its pid
                self.agent.wait(timeout=5)
            if self.agent.stdout is not None:
                self.agent.stdout.close()
            self.agent = None
        if self.agent_errors is not None:
            self.agent_errors.close()
            self.agent_errors = None
        for ns in reversed(self.created):
            _run(["ip", "netns", "del", ns], check=False)
        self.created.clear()
        if self.hosts_dir is not None:
            shutil.rmtree(self.hosts_dir, ignore_errors=True)
            with contextlib.suppress(OSError):
                self.hosts_dir.parent.rmdir()  # /etc/netns, only if now empty
            self.hosts_dir = None

    # ---------------------------------------------------------------- helpers
    def client_batch(self, commands: Sequence[str], family: int = 0) -> None:
        """Run ``ip [-6] -batch`` commands in the client namespace (to reshape its network)."""
        fam = ["-6"] if family == 6 else []
        _run(["ip", *fam, "-n", self.client_ns, "-batch", "-"], stdin="\n".join(commands) + "\n")

    def ns_run(self, ns: str, *args: str, stdin: str | None = None, check: bool = True) -> str:
        return _run(["ip", "netns", "exec", ns, *args], stdin=stdin, check=check)

    def agent_call(self, op: str, **fields: Any) -> dict[str, Any]:
        assert self.agent is not None and self.agent.stdin is not None
        self.agent.stdin.write(json.dumps({"op": op, **fields}) + "\n")
        self.agent.stdin.flush()
        reply = self._agent_reply()
        if not reply.get("ok"):
            raise RuntimeError(f"agent {op}: {reply}")
        return reply

    def endpoint(
        self, role: str, *, family: int = 4, delay: float = 0.0, variant: int = 0, port: int = 0
    ) -> str:
        """An address text ("192.0.2.1:10020") behaving as ``role`` after ``delay`` seconds.

        Listening roles get their listener here. ``port`` overrides the port (for a delay-free
        endpoint on a port of its own).
        """
        ip = service_ip(role, family, variant)
        if port == 0:
            port = delay_port(delay)
        elif delay:
            raise ValueError("give either a delay or a port")
        if role in LISTENING_ROLES and (ip, port) not in self.listening:
            self.agent_call("listen", endpoints=[[ip, port]])
            self.listening.add((ip, port))
        return endpoint_text(ip, port)

    def server_log(self) -> dict[str, Any]:
        return self.agent_call("log")

    def run_client(
        self, scenario: dict[str, Any], *, timeout: float = 60.0, on_agent_cpu: bool = False
    ) -> ClientResult:
        """Run ``client.py`` in the client namespace with ``scenario``; return what it printed.

        ``on_agent_cpu``: pin the client to the agent's CPU (see NICE above): used where the
        agent must act twice before the client can react.
        """
        pin = ["taskset", "-c", str(AGENT_CPU)] if on_agent_cpu else []
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
        proc = subprocess.run(
            ["ip", "netns", "exec", self.client_ns, *NICE, *pin, sys.executable, str(CLIENT)],
            input=json.dumps(scenario),
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"client scenario failed ({proc.returncode}):\n{proc.stderr}")
        return ClientResult(json.loads(proc.stdout), proc.stderr)

    def client_python(self, code: str, *, timeout: float = 30.0) -> str:
        """Run a short Python program in the client namespace; return its stdout."""
        return _run(
            ["ip", "netns", "exec", self.client_ns, sys.executable, "-c", code], timeout=timeout
        )
