"""A process's first races to one address (`quick_plan`): no UDP probe of the kernel's source
and no plan, the connected socket naming the source; the same pair, history, errors and
cleanup as a planned race when the attempt fails or is slow. Each case runs in a fresh
process (the quick path is for the races before the first look at the network), with that
look put off so that nothing depends on timing."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys
import textwrap

ROOT = pathlib.Path(__file__).resolve().parent.parent

_PRELUDE = """
import asyncio, ipaddress, json, socket, sys
from aioconnlist._core.addresses import int128s, parse_address
from aioconnlist._core.history import PairHistory
from aioconnlist._core.options import make_options
from aioconnlist._core.rfc6724 import as_int128
from aioconnlist._drivers import planning
from aioconnlist._drivers.asyncio import race
from aioconnlist._io import sources
from tests.support import BlackHole, Listener, fd_count, refused_address

planning.FOLLOW_DELAY = 3600.0  # the first look at the network: not in this process
probes = []
_probe = sources._kernel_cache._probe
def counted(destination):
    probes.append(str(destination))
    return _probe(destination)
sources._kernel_cache._probe = counted
LOOPBACK = as_int128(ipaddress.ip_address("127.0.0.1"))
history = PairHistory()  # each case's own (no file, no other race's evidence)
options = make_options(history=history)
def evidence(history, address):
    found = history.evidence_sources(int128s([parse_address(address)]))
    return None if found is None else sorted(found)
"""


def _fresh(body: str) -> dict[str, object]:
    """Run ``body`` after the prelude in a new process; its last line prints a JSON object."""
    code = _PRELUDE + textwrap.dedent(body)
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        cwd=ROOT,
    ).stdout
    result: dict[str, object] = json.loads(out.splitlines()[-1])
    return result


def test_a_first_connect_probes_nothing_and_learns_the_source_from_its_socket() -> None:
    result = _fresh(
        """
        async def main():
            listener = Listener()
            before = fd_count()
            pairs = []
            for _ in range(2):
                sock, pair = await race([parse_address(listener.address)], options)
                sock.close()
                pairs.append(str(pair))
            cached = sources.cached_kernel_source(parse_address(listener.address), 0.0)
            print(json.dumps({
                "probes": probes, "pairs": pairs, "plans": len(planning._PLAN_CACHE),
                "evidence": evidence(history, listener.address) == [LOOPBACK],
                "cached": None if cached is None else str(cached),
                "fds": fd_count() - before,
            }))
        asyncio.run(main())
        """
    )
    assert result["probes"] == []
    assert result["plans"] == 0  # (a planned race keeps its plan)
    [first, second] = result["pairs"]  # type: ignore[misc]
    assert first == second and first.startswith("kernel(127.0.0.1) -> 127.0.0.1:")
    assert result["evidence"] is True  # the success is filed under the source the socket named
    assert result["cached"] == "127.0.0.1"  # and the next plans need no probe for it
    assert result["fds"] == 0


def test_a_refused_first_connect_fails_as_a_planned_race_does() -> None:
    """The failure is filed under the probed source and the error is the one the planned race
    (the process's next, with that failure in history) raises for the same address."""
    result = _fresh(
        """
        async def main():
            address = refused_address()
            before = fd_count()
            messages, kinds, sources_ = [], [], []
            for _ in range(2):
                try:
                    await race([parse_address(address)], options)
                except OSError as e:
                    messages.append(str(e))
                    kinds.append(isinstance(e, ConnectionRefusedError))
                    sources_.append([str(a.pair.kernel_source) for a in e.attempts])
            print(json.dumps({
                "probes": probes, "messages": messages, "kinds": kinds,
                "sources": sources_, "evidence": evidence(history, address),
                "fds": fd_count() - before,
            }))
        asyncio.run(main())
        """
    )
    first, second = result["messages"]  # type: ignore[misc]
    assert first == second and "refused" in first.lower()
    assert result["kinds"] == [True, True]
    assert result["sources"] == [["127.0.0.1"], ["127.0.0.1"]]
    assert result["probes"]  # once the first attempt failed: its pair is planned in full
    assert result["evidence"] is None  # the failure is in history
    assert result["fds"] == 0


def test_a_silent_first_connect_hands_over_to_the_full_race_at_its_delay() -> None:
    """A black-holed address: at the attempt delay the race is planned in full (the kernel's
    source probed once) and goes on with the attempt in it, a backup attempt beside it;
    cancelled, it leaves no descriptor, and with no listener left nothing connects."""
    result = _fresh(
        """
        async def main():
            hole = BlackHole()
            quick = options.replace(attempt_delay=0.05)
            before = fd_count()
            loop = asyncio.get_running_loop()
            started = loop.time()
            try:
                await asyncio.wait_for(race([parse_address(hole.address)], quick), 0.5)
            except asyncio.TimeoutError:
                outcome = "timed out"
            else:
                outcome = "connected"
            took = loop.time() - started
            await asyncio.sleep(0)
            fds = fd_count() - before
            hole.close()
            print(json.dumps({"outcome": outcome, "probes": len(probes), "fds": fds,
                              "took": took}))
        asyncio.run(main())
        """
    )
    assert result["outcome"] == "timed out"
    assert result["probes"] == 1
    assert result["fds"] == 0
    assert 0.5 <= result["took"] < 5.0  # type: ignore[operator]
