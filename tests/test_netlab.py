"""Happy Eyeballs on a real kernel: slow, black-holed, unreachable and multi-homed networks.

Every test here runs in the network lab of `tests.netlab` (two namespaces, veth pairs,
iptables, an NFQUEUE delay line). Without root they skip with the reason; under
AIOCONNLIST_REQUIRE_NETLAB=1 (CI) they fail instead. Timings are checked against the
virtual-time expectations of test_race.py with a tolerance: never more than EARLY before,
never more than SLACK after (AIOCONNLIST_NETLAB_SLACK overrides SLACK on a slow machine).
"""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from tests import netlab
from tests.netlab import require_netlab
from tests.netlab.lab import (
    C0_V4,
    C0_V6,
    C1_V4,
    C1_V6,
    NetLab,
    list_namespaces,
    service_ip,
)

pytestmark = pytest.mark.netlab

EARLY = 0.005  # asyncio may run a timer up to its clock resolution early
SLACK = float(os.environ.get("AIOCONNLIST_NETLAB_SLACK", "0.05"))
DEADLINE_SLACK = 0.01 + SLACK / 2  # SPEC: ETIMEDOUT within 10 ms of the deadline (+ jitter)


@pytest.fixture(scope="module")
def lab() -> Iterator[NetLab]:
    require_netlab()
    with NetLab.build("tests") as built:
        yield built


def near(actual: float, expected: float, what: str = "time") -> None:
    assert expected - EARLY <= actual <= expected + SLACK, (
        f"{what}: {actual:.4f} s, expected {expected:.3f} s (-{EARLY}/+{SLACK})"
    )


def starts(call: dict[str, Any]) -> list[float]:
    return [e["time"] for e in call["events"] if e["kind"] == "started"]


def started_destinations(call: dict[str, Any]) -> list[str]:
    return [e["destination"] for e in call["events"] if e["kind"] == "started"]


def winner(call: dict[str, Any]) -> str | None:
    won = [e["destination"] for e in call["events"] if e["kind"] == "won"]
    assert len(won) <= 1, call["events"]
    return won[0] if won else None


def target(address: str) -> list[Any]:
    host, port = address.rsplit(":", 1)
    return [host.strip("[]"), int(port)]


# ------------------------------------------------------------------ the lab itself


def test_require_netlab_skips_or_fails_by_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(netlab, "netlab_problem", lambda: "no namespaces here")
    monkeypatch.delenv(netlab.REQUIRE_ENV, raising=False)
    with pytest.raises(pytest.skip.Exception, match="no namespaces here"):
        require_netlab()
    monkeypatch.setenv(netlab.REQUIRE_ENV, "1")
    with pytest.raises(pytest.fail.Exception, match="AIOCONNLIST_REQUIRE_NETLAB=1 but"):
        require_netlab()


def test_lab_behaviours_with_plain_sockets(lab: NetLab) -> None:
    """Each behaviour, seen by a blocking socket.connect: the lab works before the library."""
    cases = [
        # (address, source, ok, errno name, expected seconds)
        (lab.endpoint("ok"), None, True, None, 0.0),
        (lab.endpoint("ok", delay=0.08), None, True, None, 0.08),
        (lab.endpoint("ok", family=6, delay=0.15), None, True, None, 0.15),
        (lab.endpoint("refused"), None, False, "ECONNREFUSED", 0.0),
        (lab.endpoint("refused", family=6, delay=0.1), None, False, "ECONNREFUSED", 0.1),
        (lab.endpoint("drop"), None, False, "ETIMEDOUT", 0.3),  # probe timeout 0.3 s
        (lab.endpoint("drop", family=6), None, False, "ETIMEDOUT", 0.3),
        (lab.endpoint("unreachable-route"), None, False, "EHOSTUNREACH", 0.0),
        (lab.endpoint("unreachable-route", family=6), None, False, "EHOSTUNREACH", 0.0),
        (lab.endpoint("prohibit-route"), None, False, "EACCES", 0.0),
        (lab.endpoint("prohibit-route", family=6), None, False, "EACCES", 0.0),
        (lab.endpoint("unreachable", delay=0.05), None, False, "EHOSTUNREACH", 0.05),
        (lab.endpoint("unreachable", family=6, delay=0.05), None, False, "EHOSTUNREACH", 0.05),
        # the multi-homed destination: dropped from the kernel's source, fine from c1's
        (lab.endpoint("kernel-source-broken", delay=0.02), None, False, "ETIMEDOUT", 0.3),
        (lab.endpoint("kernel-source-broken", delay=0.02), C1_V4, True, None, 0.02),
        (lab.endpoint("kernel-source-broken", family=6, delay=0.02), None, False, "ETIMEDOUT", 0.3),
        (lab.endpoint("kernel-source-broken", family=6, delay=0.02), C1_V6, True, None, 0.02),
    ]
    probes = [{"target": target(a), "source": s, "timeout": 0.3} for a, s, *_ in cases]
    result = lab.run_client({"probes": probes})
    for (address, source, ok, errname, seconds), got in zip(cases, result["probes"], strict=True):
        what = f"{address} from {source or 'kernel'}: {got}"
        assert got["ok"] is ok, what
        assert got.get("errno_name") == errname, what
        near(got["elapsed"], seconds, what)
        if ok:  # the kernel's source is c0's; a bound socket keeps its own
            expected_source = source or (C0_V6 if address.startswith("[") else C0_V4)
            assert got["sockname"][0] == expected_source, what


def test_lab_namespaces_and_files_are_removed(lab: NetLab) -> None:
    with NetLab.build("cleanup", hosts={"probe.lab": ["192.0.2.1"]}) as other:
        names = (other.client_ns, other.server_ns)
        assert set(names) <= set(list_namespaces())
        assert other.hosts_dir is not None
        hosts_file = other.hosts_dir / "hosts"
        assert "192.0.2.1 probe.lab" in hosts_file.read_text()
        agent = other.agent
        assert agent is not None and agent.poll() is None
    assert not set(names) & set(list_namespaces())
    assert not hosts_file.exists()
    assert agent.poll() is not None  # the agent ended with its lab
    assert lab.client_ns in list_namespaces()  # the other lab is untouched


def test_lab_ignores_the_host_network(lab: NetLab) -> None:
    """The lab's addresses exist only inside its namespaces."""
    host_addrs = subprocess.run(
        ["ip", "-o", "addr"], capture_output=True, text=True, check=True
    ).stdout
    for ip in (C0_V4, C1_V4, service_ip("ok"), C0_V6):
        assert f" {ip}/" not in host_addrs
    assert f" {C0_V4}/" in lab.ns_run(lab.client_ns, "ip", "-o", "addr")


# ------------------------------------------------------------------ the virtual-time table again


def _table(lab: NetLab) -> dict[str, dict[str, Any]]:
    e = lab.endpoint
    return {
        # test_fall_through_three_slow_addresses_third_wins
        "fall_through": {
            "addresses": [e("ok", delay=2.0), e("ok", delay=2.0, variant=1), e("ok", delay=0.1)],
            "starts": [0.0, 0.25, 0.5],
            "winner": 2,
            "end": 0.6,
        },
        # test_early_success_starts_nothing_more
        "early_success": {
            "addresses": [
                e("ok", delay=0.1),
                e("ok", delay=0.01, variant=1),
                e("ok", delay=0.01, variant=2),
            ],
            "starts": [0.0],
            "winner": 0,
            "end": 0.1,
        },
        # test_success_just_before_the_delay_wins_alone (0.2 s: 0.249 is below a real tick)
        "before_the_delay": {
            "addresses": [e("ok", delay=0.2), e("ok", delay=0.001, variant=1)],
            "starts": [0.0],
            "winner": 0,
            "end": 0.2,
        },
        # test_custom_attempt_delay
        "custom_attempt_delay": {
            "addresses": [e("drop"), e("drop", variant=1), e("ok", delay=0.05)],
            "options": {"attempt_delay": 0.1},
            "starts": [0.0, 0.1, 0.2],
            "winner": 2,
            "end": 0.25,
        },
        # test_failure_of_the_newest_attempt_starts_the_next_at_once
        "newest_failure_hurries": {
            "addresses": [
                e("refused", delay=0.05),
                e("unreachable", delay=0.02),
                e("ok", delay=0.1),
            ],
            "starts": [0.0, 0.05, 0.07],
            "winner": 2,
            "end": 0.17,
        },
        # test_failure_of_an_older_attempt_does_not_hurry_the_next
        "older_failure_does_not_hurry": {
            "addresses": [e("refused", delay=0.3), e("drop"), e("ok", delay=0.01)],
            "starts": [0.0, 0.25, 0.5],
            "winner": 2,
            "end": 0.51,
        },
        # test_all_fail_reports_the_last_errno_and_every_attempt
        "all_fail_last_errno": {
            "addresses": [
                e("refused", delay=0.4),
                e("refused", delay=0.05, variant=1),
                e("unreachable", delay=0.2),
            ],
            "starts": [0.0, 0.25, 0.3],
            "errno": "EHOSTUNREACH",
            "ended": [0.4, 0.3, 0.5],
            "attempt_errnos": ["ECONNREFUSED", "ECONNREFUSED", "EHOSTUNREACH"],
            "end": 0.5,
        },
        # test_deadline_cancels_everything_and_reports_etimedout
        "deadline": {
            "addresses": [
                e("drop"),
                e("drop", variant=1),
                e("drop", variant=2),
                e("drop", port=9001),
            ],
            "options": {"timeout": 0.6},
            "starts": [0.0, 0.25, 0.5],
            "errno": "ETIMEDOUT",
            "message": "1 pair(s) not tried",
            "end": 0.6,
        },
        # test_infinite_delay_is_strictly_one_at_a_time (times scaled down)
        "infinite_delay": {
            "addresses": [
                e("refused", delay=0.1),
                e("refused", delay=0.3, variant=1),
                e("ok", delay=0.05),
            ],
            "options": {"attempt_delay": "inf"},
            "starts": [0.0, 0.1, 0.4],
            "winner": 2,
            "end": 0.45,
        },
        # test_family_interleave_orders_the_starts
        "interleave": {
            "addresses": [
                e("drop", family=6),
                e("drop", family=6, variant=1),
                e("drop"),
                e("drop", variant=1),
            ],
            "options": {"interleave": 1, "timeout": 0.8},
            "order": [0, 2, 1, 3],
            "starts": [0.0, 0.25, 0.5, 0.75],
            "errno": "ETIMEDOUT",
            "end": 0.8,
        },
        # unreachable and prohibited routes fail at once: the next pair starts at once
        "unreachable_fall_through": {
            "addresses": [
                e("unreachable-route", family=6),
                e("prohibit-route"),
                e("unreachable"),
                e("ok", family=6),
            ],
            "starts": [0.0, 0.0, 0.0, 0.0],
            "winner": 3,
            "attempt_errnos": ["EHOSTUNREACH", "EACCES", "EHOSTUNREACH", None],
            "end": 0.0,
        },
        # every address refuses: ECONNREFUSED, after the slowest refusal only
        "all_refused": {
            "addresses": [e("refused", family=6), e("refused", delay=0.05)],
            "starts": [0.0, 0.0],
            "errno": "ECONNREFUSED",
            "attempt_errnos": ["ECONNREFUSED", "ECONNREFUSED"],
            "end": 0.05,
        },
    }


TABLE_ROWS = [
    "fall_through",
    "early_success",
    "before_the_delay",
    "custom_attempt_delay",
    "newest_failure_hurries",
    "older_failure_does_not_hurry",
    "all_fail_last_errno",
    "deadline",
    "infinite_delay",
    "interleave",
    "unreachable_fall_through",
    "all_refused",
]


@pytest.mark.parametrize("row", TABLE_ROWS)
def test_timing_table_on_a_real_kernel(lab: NetLab, row: str) -> None:
    case = _table(lab)[row]
    addresses = case["addresses"]
    # kernel sources only, caller's order, no history: the exact conditions of test_race.py
    options = {"local_addresses": None, "sort": False, "interleave": 0, "history": None}
    options.update(case.get("options", {}))
    result = lab.run_client(
        {"history": "none", "calls": [{"addresses": addresses, "options": options}]}
    )
    [call] = result.calls
    detail = f"{row}: {call}"
    order = case.get("order", list(range(len(case["starts"]))))
    assert started_destinations(call) == [addresses[i] for i in order], detail
    for i, (got, expected) in enumerate(zip(starts(call), case["starts"], strict=True)):
        near(got, expected, f"{row}: start of attempt {i}")
    near(call["elapsed"], case["end"], f"{row}: end")
    if "winner" in case:
        assert call["ok"], detail
        assert winner(call) == addresses[case["winner"]], detail
        assert call["peername"] == target(addresses[case["winner"]]), detail
    else:
        assert not call["ok"], detail
        assert call["errno_name"] == case["errno"], detail
        assert "ConnectError" in call["error_mro"] and "OSError" in call["error_mro"], detail
        for address in addresses[: len(case["starts"])]:
            assert address in call["error"], detail
        if "message" in case:
            assert case["message"] in call["error"], detail
        if "ended" in case:
            for attempt, end in zip(call["attempts"], case["ended"], strict=True):
                near(attempt["ended"], end, f"{row}: end of {attempt['pair']}")
        if case["errno"] == "ETIMEDOUT":
            assert "TimeoutError" in call["error_mro"], detail
            assert call["elapsed"] - options["timeout"] <= DEADLINE_SLACK, detail
    if "attempt_errnos" in case:
        failed = {
            e["destination"]: e["errno_name"] for e in call["events"] if e["kind"] == "failed"
        }
        got_errnos = [failed.get(a) for a in addresses]
        assert got_errnos == case["attempt_errnos"], detail


# ------------------------------------------------------------------ the acceptance criteria


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_broken_ipv6_first_call_pays_the_delay_later_calls_one_rtt(lab: NetLab, loop: str) -> None:
    """SPEC acceptance: black-holed IPv6 + IPv4 20 ms away, the default history, all defaults.

    First call: about attempt delay + 20 ms. Every following call: <= 50 ms, and within
    1.5 x the oracle (a plain connect over the working path) + 10 ms.
    """
    broken6 = lab.endpoint("drop", family=6, port=10020)
    ipv4 = lab.endpoint("ok", delay=0.02)
    calls = [{"addresses": [broken6, ipv4], "echo": True} for _ in range(5)]
    probes = [{"target": target(ipv4), "timeout": 1.0}] * 3
    result = lab.run_client({"history": "default", "loop": loop, "probes": probes, "calls": calls})
    oracle = min(p["elapsed"] for p in result["probes"])
    near(oracle, 0.02, "oracle")
    first, *later = result.calls
    assert first["ok"] and first["peername"] == target(ipv4), first
    assert started_destinations(first) == [broken6, ipv4], first  # IPv6 first: RFC 6724
    near(first["elapsed"], 0.25 + 0.02, "first call")
    for n, call in enumerate(later, 2):
        assert call["ok"] and call["echo"] == "ping", call
        assert call["peername"] == target(ipv4) and call["sockname"][0] == C0_V4, call
        assert call["elapsed"] <= 0.05, f"call {n}: {call['elapsed']:.4f} s > 50 ms"
        assert call["elapsed"] <= 1.5 * oracle + 0.01, (
            f"call {n}: {call['elapsed']:.4f} s > 1.5 x oracle {oracle:.4f} + 10 ms"
        )
        assert started_destinations(call)[0] == ipv4, call


def test_network_wide_broken_ipv6_makes_a_new_host_cost_one_rtt(lab: NetLab) -> None:
    """SPEC §2.7 path-level history: after IPv6 black-holed towards two different hosts while
    IPv4 worked, a first connection to a third host starts with IPv4 (one RTT)."""
    hosts = [
        [
            lab.endpoint("drop", family=6, variant=v, port=10020),
            lab.endpoint("ok", delay=0.02, variant=v),
        ]
        for v in range(3)
    ]
    calls = [{"addresses": addresses} for addresses in hosts]
    first, second, new_host = lab.run_client({"history": "fresh", "calls": calls}).calls
    for n, call in enumerate((first, second), 1):
        assert call["ok"], call
        near(call["elapsed"], 0.25 + 0.02, f"host {n}: IPv6 first, IPv4 after the delay")
    assert new_host["ok"] and new_host["peername"] == target(hosts[2][1]), new_host
    assert started_destinations(new_host)[0] == hosts[2][1], new_host
    assert new_host["elapsed"] <= 0.05, new_host


@pytest.mark.parametrize("family", [4, 6])
@pytest.mark.parametrize("sources", ["auto", "list"])
def test_multi_homed_broken_kernel_source(lab: NetLab, family: int, sources: str) -> None:
    """SPEC acceptance: the kernel's source is black-holed towards the destination; another
    interface's address works. "auto" (and the same sources as a list) connects through it in
    < 1 s and getsockname() shows it; with the kernel's source only, the deadline hits."""
    good, bad = (C1_V4, C0_V4) if family == 4 else (C1_V6, C0_V6)
    destination = lab.endpoint("kernel-source-broken", family=family, delay=0.02)
    local: Any = "auto" if sources == "auto" else [bad, good]
    calls = [
        {"addresses": [destination], "options": {"local_addresses": local}, "echo": True},
        {"addresses": [destination], "options": {"local_addresses": local}, "echo": True},
        {"addresses": [destination], "options": {"local_addresses": None, "timeout": 0.4}},
    ]
    first, second, kernel_only = lab.run_client({"history": "fresh", "calls": calls}).calls
    assert first["ok"] and first["echo"] == "ping", first
    assert first["sockname"][0] == good, first
    assert first["elapsed"] < 1.0, first
    tried = [(e["source"], e["destination"]) for e in first["events"] if e["kind"] == "started"]
    if sources == "auto":  # the kernel's choice (unbound) first, then c1's address, bound
        assert tried == [(None, destination), (good, destination)], first
        near(first["elapsed"], 0.25 + 0.02, "first call via the second interface")
    else:  # exactly the given sources, both bound
        assert {s for s, _ in tried} <= {bad, good} and tried[-1] == (good, destination), first
    assert second["ok"] and second["sockname"][0] == good, second
    assert second["elapsed"] < 1.0, second
    # history: the black-holed pair (with "auto", the kernel's own choice) goes last next
    # time, so the second call goes through the working interface at once
    second_tried = [e["source"] for e in second["events"] if e["kind"] == "started"]
    assert second_tried == [good], second
    assert second["elapsed"] <= 0.05, second
    assert not kernel_only["ok"] and kernel_only["errno_name"] == "ETIMEDOUT", kernel_only


@pytest.mark.parametrize("family", [4, 6])
def test_multi_homed_first_race_of_a_fresh_process(lab: NetLab, family: int) -> None:
    """A process's first race plans the kernel's choice alone (the machine's addresses are not
    read yet: no interface enumeration on its path) but still reaches the second interface:
    when the kernel's pair stays silent for the attempt delay, the race asks for the full plan,
    alternates and all, as a long list's head asks for its tail."""
    good = C1_V4 if family == 4 else C1_V6
    destination = lab.endpoint("kernel-source-broken", family=family, delay=0.02)
    calls = [{"addresses": [destination], "options": {"local_addresses": "auto"}, "echo": True}]
    [first] = lab.run_client({"history": "fresh", "follow_first": False, "calls": calls}).calls
    assert first["ok"] and first["echo"] == "ping", first
    assert first["sockname"][0] == good, first
    tried = [(e["source"], e["destination"]) for e in first["events"] if e["kind"] == "started"]
    assert tried == [(None, destination), (good, destination)], first
    near(first["elapsed"], 0.25 + 0.02, "the first race of the process, via the second interface")


@pytest.mark.parametrize("family", [4, 6])
def test_blocking_facade_on_a_multi_homed_host(lab: NetLab, family: int) -> None:
    """The blocking facade where the kernel's source is black-holed: the caller's own socket
    makes the kernel-choice attempt and hangs; the second interface's pair wins after the
    attempt delay on a fresh socket, which takes the caller's descriptor. The next call starts
    on the working interface at once. With the kernel's source only, the deadline hits and the
    caller's socket is as it was; on a healthy path the caller's socket itself connects."""
    good = C1_V4 if family == 4 else C1_V6
    unbound = "0.0.0.0" if family == 4 else "::"
    broken = lab.endpoint("kernel-source-broken", family=family, delay=0.02)
    healthy = lab.endpoint("ok", family=family, delay=0.02)
    auto = {"api": "blocking", "addresses": [broken], "options": {}, "echo": True}
    kernel_only = {"local_addresses": None, "timeout": 0.4}
    calls = [
        auto,
        auto,
        {"api": "blocking", "addresses": [broken], "options": kernel_only},
        {"api": "blocking", "addresses": [healthy], "options": {"local_addresses": None}},
    ]
    first, second, timed_out, direct = lab.run_client({"history": "fresh", "calls": calls}).calls
    assert first["ok"] and first["echo"] == "ping", first
    assert first["sockname"][0] == good and not first["same_file"], first
    tried = [(e["source"], e["destination"]) for e in first["events"] if e["kind"] == "started"]
    assert tried == [(None, broken), (good, broken)], first
    near(first["elapsed"], 0.25 + 0.02, "first call via the second interface")
    assert second["ok"] and second["sockname"][0] == good, second
    assert [e["source"] for e in second["events"] if e["kind"] == "started"] == [good], second
    assert second["elapsed"] <= 0.05, second
    assert not timed_out["ok"] and timed_out["errno_name"] == "ETIMEDOUT", timed_out
    assert 0.4 - EARLY <= timed_out["elapsed"] <= 0.4 + DEADLINE_SLACK, timed_out["elapsed"]
    assert timed_out["caller"] == {"same_fd": True, "sockname": [unbound, 0], "connected": False}
    assert direct["ok"] and direct["same_file"], direct
    near(direct["elapsed"], 0.02, "a healthy path, one RTT")


def test_loser_that_connected_in_the_same_tick_is_closed(lab: NetLab) -> None:
    """Both SYNs are held by a gate and released together, so both handshakes complete at
    once. The winner works (echo); the server sees the other connection closed at once."""
    port = 9107
    lab.agent_call("gate", port=port, count=2)
    a6 = lab.endpoint("gate", family=6, port=port)
    a4 = lab.endpoint("gate", port=port)
    options = {"attempt_delay": 0.05, "sort": False, "local_addresses": None}
    call_spec = {"addresses": [a6, a4], "options": options, "echo": True}
    result = lab.run_client({"history": "none", "calls": [call_spec]}, on_agent_cpu=True)
    [call] = result.calls
    assert call["ok"] and call["echo"] == "ping", call
    near(call["elapsed"], 0.05, "gate release")
    log = lab.server_log()
    seen = [c for c in log["connections"] if c["local"][1] == port]
    assert len(seen) == 2, f"the server should have accepted both handshakes: {seen}"
    [won] = [c for c in seen if c["peer"] == call["sockname"]]
    [lost] = [c for c in seen if c is not won]
    assert won["bytes"] == 4  # the echo went over the winner
    assert lost["bytes"] == 0 and lost["closed"] is not None, lost
    assert lost["how"] in ("eof", "reset"), lost
    # closed by the client before connect_by_list returned (+ the time to see it)
    assert lost["closed"] <= call["t_end"] + SLACK, (lost, call["t_end"])
    assert won["closed"] is not None and won["closed"] >= call["t_echo"], won
    outcomes = {e["destination"]: e["kind"] for e in call["events"] if e["kind"] != "started"}
    assert sorted(outcomes.values()) == ["cancelled", "won"], call["events"]


def test_deadline_closes_a_socket_whose_syn_is_answered_late(lab: NetLab) -> None:
    """timeout=0.3 against an address that answers after 0.5 s: ETIMEDOUT within the slack of
    the deadline. When the SYN-ACK comes (the client process still alive, busy with a probe
    refused after 0.4 s), no socket is there: the server never accepts a connection."""
    slow = lab.endpoint("ok", delay=0.5)
    port = target(slow)[1]
    scenario = {
        "history": "fresh",
        "calls": [
            {
                "addresses": [slow],
                # one attempt, no backup (its SYN would be released after the client's probe)
                "options": {"timeout": 0.3, "local_addresses": None, "backup_attempts": False},
            }
        ],
        "after": [{"target": target(lab.endpoint("refused", delay=0.4)), "timeout": 1.0}],
    }
    [call] = lab.run_client(scenario).calls
    assert not call["ok"] and call["errno_name"] == "ETIMEDOUT", call
    assert 0.3 - EARLY <= call["elapsed"] <= 0.3 + DEADLINE_SLACK, call["elapsed"]
    log = lab.server_log()
    [syn] = [s for s in log["syns"] if s["dport"] == port]  # one attempt, one SYN
    assert syn["released"] < call["t_start"] + 0.3 + 0.4, syn  # released while the client lived
    accepted = [c for c in log["connections"] if c["local"][1] == port]
    assert accepted == [], f"the timed-out attempt completed a handshake: {accepted}"


def test_thousand_races_without_fd_growth(lab: NetLab) -> None:
    """1,000 races (20 at a time), each: refused at once, a black hole, then a success 10 ms
    later. Every race wins; the client's fd count and task count end where they began."""
    addresses = [lab.endpoint("refused"), lab.endpoint("drop"), lab.endpoint("ok")]
    options = {"attempt_delay": 0.01, "sort": False, "local_addresses": None}
    spec = {"count": 1000, "concurrency": 20, "addresses": addresses, "options": options}
    result = lab.run_client({"history": "none", "races": spec}, timeout=90)
    races = result["races"]
    assert races["ok"] == 1000 and races["failed"] == 0, races
    assert races["fds_after"] == races["fds_before"], races
    assert races["tasks"] == 0, races


def test_errors_keep_their_errno_across_the_namespace(lab: NetLab) -> None:
    """A prohibited route alone: EACCES is the race's errno (not a generic failure)."""
    calls = [{"addresses": [lab.endpoint("prohibit-route")], "options": {"local_addresses": None}}]
    [call] = lab.run_client({"history": "none", "calls": calls}).calls
    assert not call["ok"] and call["errno"] == errno.EACCES, call
