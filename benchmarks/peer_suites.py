"""Run the peers' own test suites against our drop-ins, the way their maintainers would.

For each suite the PyPI sdist of the pinned version is downloaded (and cached), its tests are
run unchanged against the installed wheels, once stock and once with our drop-in swapped in,
inside a loopback-only network namespace (``unshare --net``: the suites' mocked addresses,
such as 107.6.106.82 or dead:beef::, must never reach a real network when our real sockets
try them). It prints, per suite, how many pass stock and with ours, and every test that passes
stock but fails with ours and is not in `INTERNALS_ONLY` (the reviewed list of tests that can
only pass with the peer's own internals). Exit status 1 when there is any such test.

Suites (``--suite``):

- ``aiohappyeyeballs``: aiohappyeyeballs' tests, ``aiohappyeyeballs.start_connection``
  replaced by `aioconnlist.compat.start_connection`;
- ``aiohttp``: aiohttp's ``tests/test_connector.py`` and ``tests/test_client_functional.py``
  (``--aiohttp-tests`` for others), ``aiohttp.TCPConnector`` replaced by
  `aioconnlist.aiohttp.ConnListConnector`;
- ``aiohttp-compat``: the same aiohttp tests with the stock connector and
  ``aiohappyeyeballs.start_connection`` replaced by ours.

Needs root (or unprivileged user namespaces) for the namespace, and the peers' test
dependencies installed in the running environment: the ``peers`` extra
(``pip install -e '.[test,peers]'``), which pins the wheels to the sdists' versions.

    python benchmarks/peer_suites.py                      # every suite
    python benchmarks/peer_suites.py --suite aiohappyeyeballs -v
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

AIOHAPPYEYEBALLS = "2.7.1"
AIOHTTP = "3.14.5"
AIOHTTP_TESTS = ("tests/test_connector.py", "tests/test_client_functional.py")
PIP_DOWNLOAD = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:"]
CACHE = Path(os.environ.get("AIOCONNLIST_PEER_CACHE", Path.home() / ".cache/aioconnlist/peers"))

_LOOPBACK_TO_GLOBAL = (
    "binds loopback local_addr_infos (127.0.0.1, ::1) towards global addresses, which only the "
    "suite's fake sockets accept: a real kernel refuses such a pair (IPv4: EINVAL at connect) or "
    "would send a packet with a loopback source (IPv6); we refuse it before any socket is made "
    "(InvalidArgument, 'no usable pair'), so the fakes the test then checks are never called"
)

#: Tests that pass only with the peer's own internals or its fake sockets, with the reason.
#: Reviewed one by one; the run fails on any other test that passes stock and not with ours.
INTERNALS_ONLY: dict[str, str] = {
    **dict.fromkeys(
        (
            "tests.test_impl::test_all_same_exception_and_same_errno",
            "tests.test_impl::test_all_same_exception_and_with_different_errno",
            "tests.test_impl::test_cancellation_is_not_swallowed",
            "tests.test_impl::test_handling_system_exit",
            "tests.test_impl::test_ipv64_laddr_bind_fails_all_eyeballs_interleave_first__ipv6_fails",
            "tests.test_impl::test_ipv64_laddr_bind_fails_eyeballs_first_ipv6_fails",
            "tests.test_impl::test_ipv64_laddr_bind_fails_eyeballs_interleave_first__ipv6_fails",
            "tests.test_impl::test_ipv64_laddr_both__eyeballs_first_ipv6_fails",
            "tests.test_impl::test_ipv64_laddr_eyeballs_interleave_2_first_ipv6_fails",
            "tests.test_impl::test_ipv64_laddr_eyeballs_ipv4_only_tried",
            "tests.test_impl::test_ipv64_laddr_socket_blocking_fails",
            "tests.test_impl::test_ipv64_laddr_socket_fails",
            "tests.test_impl::test_uvloop_different_runtime_error",
            "tests.test_impl::test_uvloop_mixing_os_and_runtime_error",
            "tests.test_impl::test_uvloop_runtime_error",
        ),
        _LOOPBACK_TO_GLOBAL,
    ),
    **dict.fromkeys(
        (
            f"tests.test_connector::{name}"
            for name in (
                "test_multiple_dns_resolution_requests_first_cancelled",
                "test_multiple_dns_resolution_requests_first_fails_second_successful",
                "test_multiple_dns_resolution_requests_success",
                "test_tcp_connector_certificate_error",
                "test_tcp_connector_interleave",
                "test_tcp_connector_multiple_hosts_errors",
                "test_tcp_connector_multiple_hosts_one_timeout",
                "test_tcp_connector_server_hostname_default",
                "test_tcp_connector_server_hostname_override",
                "test_tcp_connector_socket_factory",
                "test_tcp_connector_ssl_shutdown_timeout_nonzero_passed",
                "test_tcp_connector_ssl_shutdown_timeout_passed_to_create_connection",
                "test_tcp_connector_ssl_shutdown_timeout_zero_not_passed",
            )
        ),
        "replaces aiohappyeyeballs.start_connection, the stock connector's connect, with a fake; "
        "ConnListConnector connects with its own race instead, so the fake is never called and a "
        "real connect to the test's address is made",
    ),
    **dict.fromkeys(
        (
            "tests.test_connector::test_tcp_connector_family_is_respected",
            "tests.test_connector::test_tcp_connector_happy_eyeballs",
        ),
        "replaces loop.sock_connect with a fake and feeds addresses that are no IPs "
        "('dead::beef::'); our driver connects plain sockets itself (a non-blocking connect "
        "and a writer callback), not through loop.sock_connect",
    ),
    **dict.fromkeys(
        (
            f"tests.test_connector::{name}"
            for name in (
                "test_tcp_connector_dns_cache_forever",
                "test_tcp_connector_dns_cache_not_expired",
                "test_tcp_connector_dns_throttle_requests",
                "test_tcp_connector_dns_throttle_requests_exception_spread",
                "test_tcp_connector_dns_tracing_cache_disabled",
                "test_tcp_connector_use_dns_cache_disabled",
            )
        ),
        "by design: ConnListConnector asks the resolver once per family (AAAA and A, RFC 8305 "
        "§3, so the race can start on the first answer), where the test's fake resolver "
        "expects one call per host",
    ),
}

# The swap, as a pytest plugin loaded before the test modules import the peer's names.
SWAP_PLUGIN = """
import os

def _swap() -> None:
    suite = os.environ["AIOCONNLIST_SWAP"]
    if suite in ("aiohappyeyeballs", "aiohttp-compat"):
        import aiohappyeyeballs
        import aiohappyeyeballs.impl
        import aioconnlist.compat

        # the peer's order exactly (no history, no RFC 6724 sort): the tests check it
        ours = aioconnlist.compat.make_start_connection(history=None, sort=False)
        aiohappyeyeballs.start_connection = ours
        aiohappyeyeballs.impl.start_connection = ours
        if suite == "aiohappyeyeballs":
            # The suite mocks the socket module aiohappyeyeballs makes its sockets with
            # (``aiohappyeyeballs.impl.socket``): our drop-in makes its sockets through that
            # same name here, so the tests' fake sockets (and their ``loop.sock_connect``
            # fakes, which our driver calls for any socket that is not a plain socket.socket)
            # reach our code and the tests check our behaviour, not a real network's.
            import aioconnlist._drivers.addrinfo as made_here

            class ViaAiohappyeyeballs:
                def __getattr__(self, name: str) -> object:
                    return getattr(aiohappyeyeballs.impl.socket, name)

            made_here.socket = ViaAiohappyeyeballs()
    elif suite == "aiohttp":
        import aiohttp
        import aiohttp.client
        import aiohttp.connector
        from aioconnlist.aiohttp import ConnListConnector

        aiohttp.TCPConnector = ConnListConnector
        aiohttp.connector.TCPConnector = ConnListConnector
        aiohttp.client.TCPConnector = ConnListConnector

if os.environ.get("AIOCONNLIST_SWAP"):
    _swap()
    # The process follows the network from its first race on: a watcher thread kept for the
    # process's life. Started before the tests (as our own conftest does), so that a suite's
    # per-test check for leftover threads counts the test's own.
    from aioconnlist._drivers import planning

    planning._start()
    planning.wait_followed(30.0)  # its socket opened, its first identity read
"""

AIOHAPPYEYEBALLS_INI = """[pytest]
asyncio_mode = auto
asyncio_default_fixture_loop_scope = function
"""

# aiohttp's own pytest.ini, less what needs its checkout (coverage config, doctests of its
# source tree, xdist): markers, warnings-as-errors and timeouts as they are.
AIOHTTP_INI = """[pytest]
addopts = -ra --strict-markers -m "not dev_mode and not autobahn and not internal"
empty_parameter_set_mark = xfail
faulthandler_timeout = 30
filterwarnings =
  error
  ignore:Unclosed client session <aiohttp.client.ClientSession object at 0x:ResourceWarning
  ignore:aiohttp.pytest_plugin will be removed in v4:DeprecationWarning
  ignore:'asyncio.AbstractEventLoopPolicy' is deprecated:DeprecationWarning:uvloop
markers =
  autobahn: Autobahn testsuite.
  dev_mode: mark test to run in dev mode.
  internal: tests which may cause issues for packagers.
  skip_blockbuster: mark test to skip the blockbuster fixture.
timeout = 120
xfail_strict = true
"""


@dataclass
class Outcomes:
    passed: set[str] = field(default_factory=set)
    failed: dict[str, str] = field(default_factory=dict)  # test id -> first line of the error
    skipped: set[str] = field(default_factory=set)


def sdist(name: str, version: str) -> Path:
    """The cached sdist of ``name==version``, downloaded from PyPI on first use."""
    CACHE.mkdir(parents=True, exist_ok=True)
    found = sorted(CACHE.glob(f"{name}-{version}.tar.gz"))
    if not found:
        subprocess.run(
            [*PIP_DOWNLOAD, f"{name}=={version}", "-d", str(CACHE)],
            check=True,
        )
        found = sorted(CACHE.glob(f"{name}-{version}.tar.gz"))
    return found[0]


def unpack_tests(archive: Path, into: Path) -> Path:
    """The sdist's ``tests/`` folder copied to ``into`` (the package source stays out, so the
    tests import the installed wheel)."""
    with tarfile.open(archive) as tar:
        top = archive.name.removesuffix(".tar.gz")
        members = [m for m in tar.getmembers() if m.name.startswith(f"{top}/tests/")]
        tar.extractall(into, members=members, filter="data")
    return into / top


def check_versions() -> None:
    for name, wanted in (("aiohappyeyeballs", AIOHAPPYEYEBALLS), ("aiohttp", AIOHTTP)):
        have = metadata.version(name)
        if have != wanted:
            sys.exit(
                f"{name} {have} is installed; the suites are {wanted}'s: pip install -e '.[peers]'"
            )


def isolated(command: list[str]) -> list[str]:
    """``command`` inside a new network namespace that has only loopback."""
    if shutil.which("unshare") is None:
        sys.exit("unshare (util-linux) is needed for the loopback-only namespace")
    inner = "ip link set lo up && exec " + " ".join(f"'{c}'" for c in command)
    net = (
        ["unshare", "--net"]
        if os.geteuid() == 0
        else ["unshare", "--user", "--map-root-user", "--net"]
    )
    return [*net, "sh", "-c", inner]


def run_pytest(
    root: Path, tests: list[str], swap: str | None, verbose: bool, extra: list[str]
) -> Outcomes:
    report = root / f"report-{swap or 'stock'}.xml"
    env = dict(os.environ, PYTHONPATH=str(root / "_swap"))
    env.pop("AIOCONNLIST_SWAP", None)
    if swap:
        env["AIOCONNLIST_SWAP"] = swap
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "swap"]
    command += [*extra, "--junitxml", str(report), *tests]
    done = subprocess.run(
        isolated(command), cwd=root, env=env, capture_output=not verbose, text=True, check=False
    )
    if not report.exists():
        sys.exit(f"pytest did not run ({done.returncode}): {done.stdout}{done.stderr}"[-4000:])
    return parse_junit(report)


def parse_junit(report: Path) -> Outcomes:
    outcomes = Outcomes()
    for case in ET.parse(report).getroot().iter("testcase"):
        test_id = f"{case.get('classname')}::{case.get('name')}"
        problem = case.find("failure")
        if problem is None:
            problem = case.find("error")
        if problem is not None:
            outcomes.failed[test_id] = (problem.get("message") or "").splitlines()[0][:160]
        elif case.find("skipped") is not None:
            outcomes.skipped.add(test_id)
        else:
            outcomes.passed.add(test_id)
    return outcomes


def run_suite(suite: str, aiohttp_tests: list[str], verbose: bool, workers: int) -> list[str]:
    """Run one suite stock and with ours; print the comparison; return the unexpected failures."""
    with tempfile.TemporaryDirectory(prefix=f"aioconnlist-{suite}-") as tmp:
        if suite == "aiohappyeyeballs":
            root = unpack_tests(sdist("aiohappyeyeballs", AIOHAPPYEYEBALLS), Path(tmp))
            (root / "pytest.ini").write_text(AIOHAPPYEYEBALLS_INI)
            tests, extra = ["tests"], []
        else:
            root = unpack_tests(sdist("aiohttp", AIOHTTP), Path(tmp))
            (root / "pytest.ini").write_text(AIOHTTP_INI)
            # aiohttp's tests run on its own pytest plugin, not pytest-asyncio's; in parallel
            # as aiohttp runs them (pytest-xdist)
            tests, extra = aiohttp_tests, ["-p", "no:asyncio", "--numprocesses", str(workers)]
        (root / "_swap").mkdir()
        (root / "_swap" / "swap.py").write_text(SWAP_PLUGIN)
        stock = run_pytest(root, tests, None, verbose, extra)
        ours = run_pytest(root, tests, suite, verbose, extra)
    regressions = sorted(t for t in stock.passed if t not in ours.passed)
    unexpected = [t for t in regressions if t.partition("[")[0] not in INTERNALS_ONLY]
    print(
        f"{suite}: stock {len(stock.passed)} passed, {len(stock.failed)} failed; "
        f"with ours {len(ours.passed)} passed, {len(ours.failed)} failed; "
        f"{len(regressions) - len(unexpected)} internals-only, {len(unexpected)} unexpected"
    )
    for test in unexpected:
        print(f"  FAIL {test}: {ours.failed.get(test, 'not passed')}")
    return unexpected


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--suite",
        choices=("aiohappyeyeballs", "aiohttp", "aiohttp-compat", "all"),
        default="all",
    )
    parser.add_argument("--aiohttp-tests", nargs="+", default=list(AIOHTTP_TESTS))
    parser.add_argument("-v", "--verbose", action="store_true", help="show pytest's output")
    parser.add_argument(
        "--workers", type=int, default=os.cpu_count() or 1, help="pytest-xdist workers (aiohttp)"
    )
    args = parser.parse_args(argv)
    check_versions()
    suites = (
        ["aiohappyeyeballs", "aiohttp", "aiohttp-compat"] if args.suite == "all" else [args.suite]
    )
    unexpected = [
        t for s in suites for t in run_suite(s, args.aiohttp_tests, args.verbose, args.workers)
    ]
    return 1 if unexpected else 0


if __name__ == "__main__":
    raise SystemExit(main())
