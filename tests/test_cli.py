"""The command line, driven as a subprocess (``python -m aioconnlist``, the console script).

Real loopback endpoints only; name resolution only from a private /etc/hosts in a mount
namespace (never DNS).
"""

from __future__ import annotations

import errno
import io
import itertools
import json
import os
import pty
import re
import select
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from pathlib import Path

import psutil
import pytest

from aioconnlist._cli.demo import BLACK_HOLE, WORKING, Run, explain, run_demo, summary
from aioconnlist._core.addresses import parse_address
from aioconnlist._core.errors import ConnectError
from aioconnlist._core.events import Attempt
from aioconnlist._core.pairs import Pair
from tests.support import BlackHole, Listener, fd_count, has_ipv6_loopback, refused_address

REPO = Path(__file__).resolve().parent.parent
COMMAND = [sys.executable, "-m", "aioconnlist"]
WAIT = 20.0  # the bound on any one CLI run (they take well under a second)


_STATE = tempfile.TemporaryDirectory(prefix="aioconnlist-cli-state-")
_STATE_RUNS = itertools.count()


def cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "COLUMNS")}
    env.pop("AIOCONNLIST_HISTORY", None)
    # each run its own state directory: one run's history must not steer another's test
    env["XDG_STATE_HOME"] = os.path.join(_STATE.name, str(next(_STATE_RUNS)))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


def run_cli(
    *args: str, command: list[str] = COMMAND, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*command, *args],
        capture_output=True,
        text=True,
        timeout=WAIT,
        env=cli_env(**env),
        cwd=REPO,
    )


def addr(address: tuple[str, int]) -> str:
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def assert_no_traceback(result: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in result.stdout + result.stderr, result.stderr


def error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert_no_traceback(result)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.fixture
def refused() -> str:
    return addr(refused_address("127.0.0.1"))


# -- connect: success ---------------------------------------------------------------------------


def test_connect_prints_the_winning_pair_and_the_waterfall(
    listener: Listener, refused: str
) -> None:
    result = run_cli("connect", refused, addr(listener.address))
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    first, *chart = result.stdout.splitlines()
    match = re.fullmatch(
        rf"connected from 127\.0\.0\.1:(\d+) to 127\.0\.0\.1:{listener.port} in [\d.]+ ms "
        r"\(attempt 2 of 2\)",
        first,
    )
    assert match, first
    # the local address printed is the one the listener saw connect
    accepted = listener.accept_all()
    try:
        assert [s.getpeername()[1] for s in accepted] == [int(match.group(1))]
    finally:
        for s in accepted:
            s.close()
    assert chart[0].startswith("#  destination")
    assert re.match(rf"1  {re.escape(refused)} +\|.*x *\|  refused ", chart[1]), chart[1]
    assert re.match(rf"2  127\.0\.0\.1:{listener.port} +\|.*\* *\|  won ", chart[2]), chart[2]
    assert chart[3].split() == ["=", "in", "flight", "*", "won", "x", "refused"]
    assert "\x1b[" not in result.stdout  # not a terminal: no colour


def test_console_script(listener: Listener) -> None:
    script = Path(sysconfig.get_path("scripts")) / "aioconnlist"
    if not script.exists():
        pytest.skip(f"the console script is not installed at {script} (pip install -e .)")
    result = run_cli("connect", addr(listener.address), command=[str(script)])
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("connected from 127.0.0.1:")
    assert f"to 127.0.0.1:{listener.port} " in result.stdout


def test_host_port_form_with_an_ip_literal(listener: Listener) -> None:
    result = run_cli("connect", "127.0.0.1", str(listener.port))
    assert result.returncode == 0, result.stderr
    assert f"to 127.0.0.1:{listener.port} in " in result.stdout


def test_local_source_is_bound(listener: Listener) -> None:
    result = run_cli("connect", "--local", "127.0.0.3", addr(listener.address))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("connected from 127.0.0.3:")
    # a bound source gets its own column in the waterfall
    assert result.stdout.splitlines()[1].split()[:3] == ["#", "destination", "source"]
    assert " 127.0.0.3 " in result.stdout.splitlines()[2]


@pytest.mark.parametrize("local", ["none", "auto"])
def test_local_none_and_auto(listener: Listener, local: str) -> None:
    result = run_cli("connect", "--local", local, "--no-history", addr(listener.address))
    assert result.returncode == 0, result.stderr
    assert f"to 127.0.0.1:{listener.port} in " in result.stdout


@pytest.mark.skipif(not has_ipv6_loopback(), reason="no IPv6 loopback")
def test_no_sort_keeps_the_order_given(refused: str) -> None:
    six = Listener("::1")
    try:
        # sorted (RFC 6724: ::1 before IPv4) the IPv6 listener goes first and wins alone;
        # --no-sort tries the refused IPv4 address first
        sorted_run = run_cli("connect", refused, addr(six.address))
        kept_run = run_cli("connect", "--no-sort", refused, addr(six.address))
    finally:
        six.close()
    assert sorted_run.returncode == 0 and kept_run.returncode == 0
    assert "(attempt 1 of 2)" in sorted_run.stdout  # two given; the first won alone
    assert "(attempt 2 of 2)" in kept_run.stdout
    assert re.search(r"^1  127\.0\.0\.1:\d+ .*refused", kept_run.stdout, re.M)


# -- connect: failures ----------------------------------------------------------------------------


def test_refused_exits_1_with_the_errno_name(refused: str) -> None:
    result = run_cli("connect", refused)
    assert result.returncode == 1
    line = error_line(result)
    assert line.startswith("aioconnlist: ECONNREFUSED: ")
    assert refused in line
    assert re.search(rf"^1  {re.escape(refused)} .*refused ", result.stdout, re.M)


def test_deadline_against_a_black_hole(black_hole: BlackHole) -> None:
    started = time.monotonic()
    result = run_cli("connect", "--timeout", "0.3", addr(black_hole.address))
    took = time.monotonic() - started
    assert result.returncode == 1
    assert error_line(result).startswith("aioconnlist: ETIMEDOUT: ")
    assert re.search(r"^1  127\.0\.0\.2:\d+ .*T\|  timed out ", result.stdout, re.M)
    assert 0.3 <= took < 3.0


# -- usage errors: one line, exit 2, never a traceback ------------------------------------------


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ([], "a command is required"),
        (["frob"], "invalid choice: 'frob'"),
        (["--bogus"], "unrecognized arguments: --bogus"),
        (["connect"], "the following arguments are required: ADDRESS"),
        (["connect", "--bogus", "127.0.0.1:80"], "unrecognized arguments: --bogus"),
        (["demo", "extra"], "unrecognized arguments: extra"),
        (["connect", "127.0.0.1"], "has no port"),
        (["connect", "300.1.2.3:80"], "bad address"),
        (["connect", "127.0.0.1:0"], "out of range"),
        (["connect", "127.0.0.1:70000"], "out of range"),
        (["connect", "127.0.0.1:http"], "not an integer"),
        (["connect", "::1:80"], "needs brackets"),
        (["connect", "example.com:80"], "use: aioconnlist connect example.com 80"),
        (["connect", "127.0.0.1", "99999"], "bad port 99999"),
        (["connect", "localhost", "http"], "bad port 'http'"),
        (["connect", "no such host", "80"], "bad host 'no such host'"),
        (["connect", "--timeout", "soon", "127.0.0.1:80"], "'soon' is not a number of seconds"),
        (["connect", "--timeout", "-1", "127.0.0.1:80"], "--timeout must not be negative"),
        (["connect", "--attempt-delay", "0.001", "127.0.0.1:80"], "below the RFC 8305 floor"),
        (["connect", "--attempt-delay", "nan", "127.0.0.1:80"], "NaN"),
        (["connect", "--local", "nope", "127.0.0.1:80"], "bad --local 'nope'"),
        (["connect", "--local", "auto", "--local", "127.0.0.1", "127.0.0.1:80"], "combined"),
    ],
)
def test_usage_errors_are_one_line(args: list[str], expected: str) -> None:
    result = run_cli(*args)
    assert result.returncode == 2
    line = error_line(result)
    assert line.startswith("aioconnlist: error: ")
    assert expected in line
    assert result.stdout == ""


def test_help() -> None:
    top = run_cli("--help")
    sub = run_cli("connect", "--help")
    assert top.returncode == 0 and sub.returncode == 0
    assert "connect" in top.stdout and "demo" in top.stdout
    for option in ("--timeout", "--attempt-delay", "--local", "--no-history", "--json"):
        assert option in sub.stdout


# -- --json ---------------------------------------------------------------------------------------


def test_json_success(listener: Listener, refused: str) -> None:
    result = run_cli("connect", "--json", refused, addr(listener.address))
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["connected"] is True
    assert record["remote"] == addr(listener.address)
    assert re.fullmatch(r"127\.0\.0\.1:\d+", record["local"])
    attempts = record["attempts"]
    assert [(a["index"], a["destination"], a["result"]) for a in attempts] == [
        (0, refused, "refused"),
        (1, addr(listener.address), "won"),
    ]
    assert attempts[0]["errno_name"] == "ECONNREFUSED"
    for a in attempts:
        assert 0 <= a["started"] <= a["ended"] <= record["elapsed"]
    assert attempts[0]["ended"] <= attempts[1]["started"]  # refused, then the next at once


def test_json_failure(refused: str) -> None:
    result = run_cli("connect", "--json", refused)
    assert result.returncode == 1
    record = json.loads(result.stdout)
    assert record["connected"] is False
    assert (record["errno"], record["errno_name"]) == (111, "ECONNREFUSED")
    assert [a["result"] for a in record["attempts"]] == ["refused"]
    assert error_line(result).startswith("aioconnlist: ECONNREFUSED: ")


# -- host names: a private /etc/hosts in a mount namespace, so nothing asks DNS ----------------


@pytest.fixture
def private_hosts(tmp_path: Path) -> list[str]:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare(1) for a private /etc/hosts")
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 cli-test.invalid\n::1 cli-test.invalid\n")
    nsswitch = tmp_path / "nsswitch.conf"
    nsswitch.write_text("hosts: files\n")
    script = (
        f"mount --bind {hosts} /etc/hosts && mount --bind {nsswitch} /etc/nsswitch.conf "
        '&& exec "$@"'
    )
    return ["unshare", "--mount", "sh", "-c", script, "sh", *COMMAND]


def test_host_port_resolves_the_name(private_hosts: list[str], listener: Listener) -> None:
    result = run_cli("connect", "cli-test.invalid", str(listener.port), command=private_hosts)
    assert result.returncode == 0, result.stderr
    assert f"to 127.0.0.1:{listener.port} in " in result.stdout


def test_unknown_name(private_hosts: list[str]) -> None:
    result = run_cli("connect", "nothing.invalid", "80", command=private_hosts)
    assert result.returncode == 1
    assert error_line(result).startswith("aioconnlist: EAI_NONAME: ")


# -- terminals, pipes, signals ------------------------------------------------------------------


def run_on_terminal(*args: str, status: int = 0, **env: str) -> str:
    """Run the CLI with stdout on a pseudo-terminal; return what it printed there."""
    controller, terminal = pty.openpty()
    try:
        process = subprocess.Popen(
            [*COMMAND, *args], stdout=terminal, stderr=subprocess.PIPE, env=cli_env(**env)
        )
        os.close(terminal)
        terminal = -1
        chunks = []
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            ready, _, _ = select.select([controller], [], [], deadline - time.monotonic())
            if not ready:
                break
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        assert process.wait(timeout=WAIT) == status
        assert process.stderr is not None
        process.stderr.close()
    finally:
        os.close(controller)
        if terminal >= 0:
            os.close(terminal)
    return b"".join(chunks).decode()


def test_colour_on_a_terminal_only(listener: Listener) -> None:
    target = addr(listener.address)
    coloured = run_on_terminal("connect", target)
    assert "connected from" in coloured
    assert re.search(r"\x1b\[1;32m=*\*\x1b\[0m", coloured), coloured  # the winner green
    assert "\x1b[" not in run_on_terminal("connect", "--no-color", target)
    assert "\x1b[" not in run_on_terminal("connect", target, NO_COLOR="1")


def test_closed_stdout_is_not_a_traceback(listener: Listener) -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)  # every write to stdout fails with EPIPE
    try:
        result = subprocess.run(
            [*COMMAND, "connect", addr(listener.address)],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=WAIT,
            env=cli_env(),
        )
    finally:
        os.close(write_end)
    assert result.returncode == 1
    assert result.stderr == ""


def test_interrupt_is_one_line(black_hole: BlackHole) -> None:
    process = subprocess.Popen(
        [*COMMAND, "connect", addr(black_hole.address)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(),
    )
    try:
        # wait (bounded) until its connect is in flight: a SYN_SENT socket of its own
        child = psutil.Process(process.pid)
        deadline = time.monotonic() + WAIT
        while not any(c.status == psutil.CONN_SYN_SENT for c in child.net_connections("tcp")):
            assert time.monotonic() < deadline, "the connect never started"
            assert process.poll() is None, process.communicate()
            time.sleep(0.01)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=WAIT)
    finally:
        process.kill()
        process.wait()
    assert process.returncode == 130
    assert err == "aioconnlist: interrupted\n"
    # what the race had done is shown: the black hole's attempt, cancelled by the interrupt
    assert re.match(r"interrupted after [\d.]+ ms\n", out), out
    assert re.search(rf"^1  {re.escape(addr(black_hole.address))} .*\|  cancelled ", out, re.M), out


def test_the_live_line_shows_the_attempts_in_flight_on_a_terminal(black_hole: BlackHole) -> None:
    target = addr(black_hole.address)
    shown = run_on_terminal("connect", "--timeout", "0.5", target, status=1, COLUMNS="120")
    # redrawn in place (carriage return, erase line) while the attempt is in flight...
    assert re.search(r"\r\x1b\[Kracing: 1 in flight, 0 failed, 0\.\d s of 0\.5 s", shown), shown
    assert f"newest #1 {target}" in shown
    # ...and erased before the waterfall is printed
    before, waterfall = shown.rsplit("\r\x1b[K", 1)
    assert "racing:" in before and "racing:" not in waterfall
    assert "timed out" in waterfall
    piped = run_cli("connect", "--timeout", "0.5", target)
    assert "racing" not in piped.stdout and "\r" not in piped.stdout


def test_the_default_timeout_ends_a_black_hole() -> None:
    from aioconnlist._cli.main import DEFAULT_TIMEOUT, build_parser, race_options

    args = build_parser().parse_args(["connect", "127.0.0.1:80"])
    assert race_options(args)["timeout"] == DEFAULT_TIMEOUT == 10.0
    args = build_parser().parse_args(["connect", "--timeout", "none", "127.0.0.1:80"])
    assert race_options(args)["timeout"] is None
    assert "default: 10" in run_cli("connect", "--help").stdout


def test_version() -> None:
    from importlib.metadata import version

    result = run_cli("--version")
    assert result.returncode == 0
    assert result.stdout == f"aioconnlist {version('aioconnlist')}\n"


# -- demo -----------------------------------------------------------------------------------------


def check_demo_output(text: str) -> None:
    too_wide = [line for line in text.splitlines() if len(line) > 80]
    assert not too_wide, "the demo fits 80 columns"
    intro = text.split("\nRun 1: ")[0]
    assert "Happy Eyeballs (RFC 8305) is how a client connects fast" in intro
    assert "the next one starts while the first keeps trying" in intro
    assert "Shows the stagger" in text and "Shows the memory" in text
    assert "Shows a slow server" in text
    run1, rest = text.split("\nRun 1: ")[1].split("\nRun 2: ")
    run2, run3 = rest.split("\nRun 3: ")
    for word in ("black hole", "refused", "working", "slow", "local_addresses=None"):
        assert word in text
    assert "(attempt 3 of 3)" in run1
    assert re.search(r"^  1  127\.0\.0\.1:\d+ +\|=+/\|  cancelled ", run1, re.M), run1
    assert re.search(r"^  2  127\.0\.0\.1:\d+ +\| +=*x\|  refused ", run1, re.M), run1
    assert re.search(r"^  3  127\.0\.0\.1:\d+ +\| +\*\|  won ", run1, re.M), run1
    assert "#1 black hole: no answer;" in run1
    assert "#2 refused: refused in" in run1
    # the second run: history puts the working pair first, and it wins alone at once
    assert "(attempt 1 of 3)" in run2  # three given, the first tried won
    assert re.search(r"^  1  127\.0\.0\.1:\d+ +\|\* +\|  won ", run2, re.M), run2
    assert "#1 working: tried first" in run2
    assert "History tried run 1's winner first" in run3
    # the third run: the slow server first (history demoted the black hole), answered only on
    # the kernel's SYN retransmission about 1 s later; the black hole started as a backup
    assert "(attempt 1 of 2)" in run3
    assert re.search(r"^  1  127\.0\.0\.1:\d+ +\|=+\*\|  won ", run3, re.M), run3
    assert re.search(r"^  2  127\.0\.0\.1:\d+ +\| +=+/\|  cancelled ", run3, re.M), run3
    assert "#1 slow: first SYN dropped, the resent one answered" in run3
    took = float(re.search(r"connected from \S+ in ([\d.]+) ms", run3).group(1))
    assert 900 < took < 1600, run3  # Linux's initial SYN retransmission timeout is 1 s
    assert "history tried the black hole last" in run3


def test_demo() -> None:
    started = time.monotonic()
    result = run_cli("demo")
    took = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    check_demo_output(result.stdout)
    assert took < 5.0


def test_demo_closes_everything_it_opens() -> None:
    before_fds, before_threads = fd_count(), threading.active_count()
    out = io.StringIO()
    assert run_demo(out) == 0
    check_demo_output(out.getvalue())
    assert (fd_count(), threading.active_count()) == (before_fds, before_threads)


# Start as root, import, then drop to nobody, which clears every capability, and run the demo.
# (Used when nobody cannot read this interpreter, e.g. one installed under /root.)
DROP_PRIVILEGES_AND_RUN_DEMO = """
import os, sys
import argparse, locale  # what argparse loads lazily (3.10), before the drop
import aioconnlist.api, aioconnlist._cli.main, aioconnlist._cli.demo
os.setgroups([]); os.setgid(65534); os.setuid(65534)
status = open("/proc/self/status").read()
assert os.getuid() == os.geteuid() == 65534 and "CapEff:\\t0000000000000000" in status
print("uid", os.geteuid(), file=sys.stderr)
sys.exit(aioconnlist._cli.main.main(["demo"]))
"""


def unprivileged_demo_command() -> list[str]:
    """A real unprivileged process when nobody can run this interpreter; else the drop."""
    setpriv = shutil.which("setpriv")
    if setpriv is not None:
        as_nobody = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"]
        probe = subprocess.run(
            [*as_nobody, sys.executable, "-c", "import aioconnlist._cli.demo, aioconnlist.api"],
            capture_output=True,
            timeout=WAIT,
            env=cli_env(),
            cwd="/",
        )
        if probe.returncode == 0:
            return [*as_nobody, *COMMAND, "demo"]
    return [sys.executable, "-c", DROP_PRIVILEGES_AND_RUN_DEMO]


def test_demo_as_an_unprivileged_user() -> None:
    if os.geteuid() != 0:
        pytest.skip("already unprivileged: test_demo ran the demo without root")
    command = unprivileged_demo_command()
    started = time.monotonic()
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=WAIT, env=cli_env(), cwd="/"
    )
    took = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert_no_traceback(result)
    if command[0] == sys.executable:  # the in-process drop reports who it became
        assert result.stderr == "uid 65534\n"
    check_demo_output(result.stdout)
    assert took < 5.0


# -- examples -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ("async_client.py", ["echoed: b'hello\\n'", "  refused ", "  won "]),
        ("streams_client.py", ["got b'HELLO\\n'", "got b'HAPPY EYEBALLS\\n'"]),
    ],
)
def test_examples_run_on_their_own(script: str, expected: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "examples" / script)],
        capture_output=True,
        text=True,
        timeout=WAIT,
        env=cli_env(),
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    for text in expected:
        assert text in result.stdout


# -- the demo's explanations for races that went otherwise ---------------------------------------


def demo_attempt(index: int, port: int, outcome: str, end: float, code: int = 0) -> Attempt:
    error = OSError(code, os.strerror(code)) if code else None
    endpoint = parse_address(f"127.0.0.1:{port}")
    return Attempt(index, Pair(None, endpoint), 0.0, end, outcome, error)  # type: ignore[arg-type]


def test_demo_explains_every_kind_of_attempt() -> None:
    refused_alone = Run([demo_attempt(0, 2, "failed", 0.001, errno.ECONNREFUSED)], 0.001)
    assert explain(refused_alone.attempts[0], "refused", refused_alone, BLACK_HOLE) == (
        "refused: refused in 1.0 ms; no pair was left to try"
    )
    late = Run([demo_attempt(0, 1, "timed out", 2.0)], 2.0)
    assert explain(late.attempts[0], "black hole", late, BLACK_HOLE) == (
        "black hole: no answer before the 2 s deadline"
    )
    denied = Run([demo_attempt(0, 3, "failed", 0.001, errno.EPERM)], 0.001)
    assert explain(denied.attempts[0], "working", denied, BLACK_HOLE) == (
        "working: failed: EPERM Operation not permitted"
    )
    alone = Run([demo_attempt(0, 3, "won", 0.002)], 0.002)
    assert explain(alone.attempts[0], BLACK_HOLE, alone, BLACK_HOLE) == (
        "black hole: connected in 2.0 ms"
    )


def test_demo_summary_tells_when_history_did_not_help() -> None:
    roles = {parse_address("127.0.0.1:1"): BLACK_HOLE, parse_address("127.0.0.1:3"): WORKING}
    first = Run([demo_attempt(0, 1, "cancelled", 0.25), demo_attempt(1, 3, "won", 0.25)], 0.25)
    same = Run([demo_attempt(0, 1, "cancelled", 0.25), demo_attempt(1, 3, "won", 0.25)], 0.25)
    assert summary(first, same, roles) == (
        "History did not reorder the pairs (run 2 began with black hole): 250.0 ms -> 250.0 ms."
    )
    failed = Run([], 2.0, error=ConnectError(errno.ETIMEDOUT, "timed out"))
    assert summary(first, failed, roles).startswith("A run failed")
