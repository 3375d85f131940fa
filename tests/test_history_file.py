"""History that outlives the process: the file, fresh processes, concurrent writers, bad files,
networks (partitions), and what the file holds."""

from __future__ import annotations

import json
import logging
import os
import shlex
import shutil
import socket
import stat
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

import aioconnlist
from aioconnlist._core.addresses import parse_address
from aioconnlist._core.history import STATE_VERSION, PairHistory
from aioconnlist._core.pairs import Pair
from aioconnlist._io import history_file, network
from tests.support import BlackHole, Listener

REPO = Path(__file__).resolve().parent.parent
WAIT = 60.0


def pair(dest: str) -> Pair:
    return Pair(None, parse_address(dest), None)


def run_python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if k != "AIOCONNLIST_HISTORY"}
    full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), full_env.get("PYTHONPATH")]))
    full_env.update(env)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=WAIT,
        env=full_env,
        cwd=REPO,
        check=False,
    )


@pytest.fixture(autouse=True)
def _logger_enabled() -> None:
    # a logging.config call elsewhere in the suite (import-linter's) disables existing loggers
    logging.getLogger("aioconnlist.history").disabled = False


@pytest.fixture
def path(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "history.json"
    for store in list(history_file._files):  # the histories this test opened stop writing
        if store.path.startswith(str(tmp_path)):
            store.close()
            history_file._files.remove(store)


def opened(path: Path) -> tuple[PairHistory, history_file.HistoryFile]:
    h = PairHistory.open(path)
    store = history_file.file_of(h)
    assert store is not None
    return h, store


# --- a fresh process learns from an earlier one ---------------------------------------------

RACE = """
    import asyncio, json, sys
    import aioconnlist
    addresses = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {addresses!r}
    events = []
    async def main():
        sock = await aioconnlist.connect_by_list(
            addresses, attempt_delay=0.1, timeout=10, on_event=events.append
        )
        sock.close()
    asyncio.run(main())
    started = [str(e.pair.destination) for e in events if e.kind == "started"]
    print(json.dumps(started))
"""


BLOCKING = """
    import json
    from aioconnlist.blocking import create_connection
    events = []
    create_connection({addresses!r}, timeout=10, attempt_delay=0.1, on_event=events.append).close()
    print(json.dumps([str(e.pair.destination) for e in events if e.kind == "started"]))
"""


def race_in_fresh_process(addresses: list[str], **env: str) -> list[str]:
    result = run_python(RACE.format(addresses=addresses), **env)
    assert result.returncode == 0, result.stderr
    started: list[str] = json.loads(result.stdout)
    return started


def test_fresh_process_starts_with_what_an_earlier_one_learned(path: Path) -> None:
    hole, ok = BlackHole("127.0.0.1"), Listener("127.0.0.1")
    try:
        addresses = [f"{hole.address[0]}:{hole.address[1]}", f"{ok.address[0]}:{ok.address[1]}"]
        first = race_in_fresh_process(addresses, AIOCONNLIST_HISTORY=str(path))
        assert first == addresses  # nothing known: the given order, the black hole first
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        key = Path(f"{path}.key")
        assert stat.S_IMODE(key.stat().st_mode) == 0o600 and len(key.read_bytes()) == 32
        second = race_in_fresh_process(addresses, AIOCONNLIST_HISTORY=str(path))
        assert second == [addresses[1]]  # the working one first: the race ends at once
        blocking = run_python(BLOCKING.format(addresses=addresses), AIOCONNLIST_HISTORY=str(path))
        assert blocking.returncode == 0, blocking.stderr
        assert json.loads(blocking.stdout) == [addresses[1]]  # the blocking facade too
        # without the variable a fresh process knows nothing (memory only)
        assert race_in_fresh_process(addresses) == addresses
        # the file names no destination in clear text: pairs are keyed hashes, no port stored
        state = json.loads(path.read_text())
        (net,) = state["networks"].values()
        assert len(net["pairs"]) == 2
        for row in net["pairs"]:
            assert len(row[0]) == 16 and int(row[0], 16) >= 0
            assert hole.address[1] not in row and ok.address[1] not in row
        for source, _family, _success, holes in net["paths"]:
            assert source == "127.0.0.1"  # the machine's own address (the source here)
            assert all(len(token) == 16 for token, _ in holes)
    finally:
        hole.close()
        ok.close()


def test_concurrent_writers_lose_nothing(path: Path) -> None:
    writer = """
        import sys, time
        from aioconnlist import PairHistory
        from aioconnlist._core.addresses import parse_address
        from aioconnlist._core.pairs import Pair
        from aioconnlist._io import history_file
        n = int(sys.argv[1])
        h = PairHistory.open(sys.argv[2])
        store = history_file.file_of(h)
        for i in range(25):
            dest = parse_address(f"[2001:db8:{n}::{i + 1}]:443")
            h.record_failure(Pair(None, dest, None), "timeout", time.monotonic())
            store.flush()  # a write per record: the processes interleave their writes
    """
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(writer), str(n), str(path)],
            env={**os.environ, "PYTHONPATH": str(REPO)},
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(1, 5)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=WAIT)
        assert proc.returncode == 0, err
    h, _ = opened(path)
    now = _now()
    for n in range(1, 5):
        for i in range(25):
            assert h.rank(pair(f"[2001:db8:{n}::{i + 1}]:443"), now) > 0, (n, i)
    assert h.rank(pair("[2001:db8:9::1]:443"), now) == 0


def _now() -> float:
    import time

    return time.monotonic()


# --- bad files --------------------------------------------------------------------------------


def _valid_file(path: Path) -> None:
    h, store = opened(path)
    h.record_failure(pair("192.0.2.7:80"), "timeout", _now())
    store.close()
    history_file._files.remove(store)


BAD_CONTENT = {
    "empty": b"",
    "garbage": b"\x00\xff not json at all",
    "json-list": b"[1, 2, 3]",
    "foreign-format": json.dumps({"format": "something else", "version": 1}).encode(),
    "bad-record": None,  # filled from a valid file, one record mangled
    "truncated": None,  # a valid file cut in half
    "foreign-version": None,  # a valid file from a future version
}


@pytest.mark.parametrize("kind", sorted(BAD_CONTENT))
def test_bad_file_is_one_warning_and_rebuilt(
    path: Path, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    _valid_file(path)
    content = BAD_CONTENT[kind]
    if content is None:
        state = json.loads(path.read_bytes())
        if kind == "truncated":
            content = path.read_bytes()[: len(path.read_bytes()) // 2]
        elif kind == "foreign-version":
            state["version"] = STATE_VERSION + 1
            content = json.dumps(state).encode()
        else:
            network_state = next(iter(state["networks"].values()))
            network_state["pairs"][0][6] = "lost"  # no such failure kind
            content = json.dumps(state).encode()
    path.write_bytes(content)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="aioconnlist.history"):
        h, store = opened(path)
        ok = Listener("127.0.0.1")
        try:
            sock = socket.create_connection(ok.address)  # the file has no say over this one
            sock.close()
            hist_sock = _connect_with(h, ok.address)
            hist_sock.close()
        finally:
            ok.close()
        store.flush()
    warnings = [r for r in caplog.records if r.name == "aioconnlist.history"]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert str(path) in warnings[0].getMessage()
    assert h.rank(pair("192.0.2.7:80"), _now()) == 0  # the bad file's evidence is not used
    rebuilt = json.loads(path.read_bytes())  # rebuilt: a valid file with this run's evidence
    assert rebuilt["version"] == STATE_VERSION and rebuilt["networks"]


def _connect_with(h: PairHistory, address: tuple[str, int]) -> socket.socket:
    import asyncio

    async def main() -> socket.socket:
        return await aioconnlist.connect_by_list([address], history=h, timeout=10)

    return asyncio.run(main())


def test_missing_file_is_one_warning_then_created(
    path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="aioconnlist.history"):
        h, store = opened(path)
        h.record_failure(pair("192.0.2.7:80"), "timeout", _now())
        store.flush()
        h.record_failure(pair("192.0.2.8:80"), "timeout", _now())
        store.flush()
    warnings = [r for r in caplog.records if r.name == "aioconnlist.history"]
    assert len(warnings) == 1 and "does not exist" in warnings[0].getMessage()
    assert path.exists() and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(Path(f"{path}.lock").stat().st_mode) == 0o600


def test_unreadable_file(path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path.mkdir()  # open() of a directory fails, as an unreadable file does (root reads all)
    with caplog.at_level(logging.WARNING, logger="aioconnlist.history"):
        h, store = opened(path)
        h.record_failure(pair("192.0.2.7:80"), "timeout", _now())
        store.flush()  # cannot write either: still the one warning
        h.record_failure(pair("192.0.2.8:80"), "timeout", _now())
        store.flush()
    warnings = [r for r in caplog.records if r.name == "aioconnlist.history"]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert h.rank(pair("192.0.2.7:80"), _now()) > 0  # in memory it works as ever


def test_read_only_directory(tmp_path: Path) -> None:
    """A history in a directory nothing may be written to (a read-only mount: modes do not
    bind root): connects work, the file's evidence is used, one warning, nothing written."""
    directory = tmp_path / "ro"
    directory.mkdir()
    target = directory / "history.json"
    _valid_file(target)
    Path(f"{target}.lock").unlink()
    before = sorted(p.name for p in directory.iterdir())
    ok = Listener("127.0.0.1")
    code = f"""
        import asyncio, logging, time
        logging.basicConfig(level=logging.WARNING, format="%(name)s %(message)s")
        import aioconnlist
        from aioconnlist._core.addresses import parse_address
        from aioconnlist._core.pairs import Pair
        known = Pair(None, parse_address("192.0.2.7:80"), None)
        print("known", aioconnlist.DEFAULT_HISTORY.rank(known, time.monotonic()) > 0)
        async def main():
            sock = await aioconnlist.connect_by_list([{ok.address!r}], timeout=10)
            print("connected")
            sock.close()
        asyncio.run(main())
        asyncio.run(main())
    """
    program = [sys.executable, "-c", textwrap.dedent(code)]
    if os.geteuid() == 0:
        if shutil.which("unshare") is None:
            pytest.skip("needs unshare(1) for a read-only mount")
        d = shlex.quote(str(directory))
        inner = f"mount --bind -o ro {d} {d} && exec {shlex.join(program)}"
        program = ["unshare", "-m", "--propagation", "private", "sh", "-c", inner]
    else:
        directory.chmod(0o555)
    try:
        result = subprocess.run(
            program,
            capture_output=True,
            text=True,
            timeout=WAIT,
            env={**os.environ, "PYTHONPATH": str(REPO), "AIOCONNLIST_HISTORY": str(target)},
            check=False,
        )
    finally:
        ok.close()
        directory.chmod(0o755)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["known", "True", "connected", "connected"]
    warnings = [x for x in result.stderr.splitlines() if x.startswith("aioconnlist.history")]
    assert len(warnings) == 1, result.stderr
    assert sorted(p.name for p in directory.iterdir()) == before


def test_file_from_another_key_is_not_used(path: Path, caplog: pytest.LogCaptureFixture) -> None:
    _valid_file(path)
    Path(f"{path}.key").write_bytes(os.urandom(32))
    with caplog.at_level(logging.WARNING, logger="aioconnlist.history"):
        h, _ = opened(path)
    assert h.rank(pair("192.0.2.7:80"), _now()) == 0
    assert any("another key" in r.getMessage() for r in caplog.records)


# --- networks ---------------------------------------------------------------------------------


def test_file_from_another_network_is_not_used(path: Path) -> None:
    """Evidence filed under another network stays there: not current here, back over there."""
    h, store = opened(path)
    here = h.network
    assert here is not None
    assert h.set_network("a network elsewhere")
    h.record_failure(pair("192.0.2.7:80"), "timeout", _now())
    h.record_success(pair("192.0.2.8:80"), 0.02, _now())
    store.flush()
    history_file._files.remove(store)
    again = run_python(
        f"""
        import time
        from aioconnlist import PairHistory
        from aioconnlist._core.addresses import parse_address
        from aioconnlist._core.pairs import Pair
        h = PairHistory.open({str(path)!r})
        p = Pair(None, parse_address("192.0.2.7:80"), None)
        now = time.monotonic()
        print(h.rank(p, now))
        h.set_network("a network elsewhere")
        print(h.rank(p, now))
        """
    )
    assert again.returncode == 0, again.stderr
    here_rank, there_rank = (int(x) for x in again.stdout.split())
    assert here_rank == 0 and there_rank > 0


def test_partitions_switch_and_come_back() -> None:
    h = PairHistory()
    a = pair("[2001:db8::1]:443")
    h.set_network("home")
    h.record_failure(a, "timeout", 0.0)
    assert h.set_network("cafe")
    assert h.rank(a, 1.0) == 0 and len(h) == 0  # a new network starts empty
    h.record_success(a, 0.03, 2.0)
    assert h.set_network("home")
    assert h.rank(a, 3.0) > 0  # home's evidence is back
    assert h.set_network("cafe")
    assert h.rank(a, 3.0) < 0
    assert not h.set_network("cafe")


def test_network_identity_of_this_host() -> None:
    identity = network.identify()
    assert identity == network.identify()  # computed, not sampled: stable
    assert network.current() is not None
    assert aioconnlist.DEFAULT_HISTORY.network is not None


def test_state_is_bounded_and_pure_round_trip() -> None:
    h = PairHistory(max_pairs=50)
    h.set_network("n")
    for i in range(200):
        h.record_failure(pair(f"192.0.2.{i % 250}:{1000 + i}"), "timeout", float(i))
    state = h.export_state(200.0, 1000.0)
    assert sum(len(n["pairs"]) for n in state["networks"].values()) == 50
    other = PairHistory()
    other.set_network("n")
    other.merge_state(json.loads(json.dumps(state)), 200.0, 1000.0)
    assert other.rank(pair("192.0.2.199:1199"), 201.0) > 0
    assert other.rank(pair("192.0.2.100:1100"), 201.0) == 0  # evicted before export
    with pytest.raises(ValueError, match="version"):
        other.merge_state({**state, "version": 99}, 200.0, 1000.0)


def test_cli_keeps_its_history_in_the_state_directory(tmp_path: Path) -> None:
    ok = Listener("127.0.0.1")
    target = f"{ok.address[0]}:{ok.address[1]}"
    try:
        state = tmp_path / "state"
        plain = run_python(
            "from aioconnlist._cli.main import main; raise SystemExit(main())",
            XDG_STATE_HOME=str(state),
        )
        assert plain.returncode == 2  # no command: usage error, nothing written
        assert not (state / "aioconnlist").exists()
        for args in (["connect", "--no-history", target], ["connect", target]):
            result = subprocess.run(
                [sys.executable, "-m", "aioconnlist", *args],
                capture_output=True,
                text=True,
                timeout=WAIT,
                env={**os.environ, "PYTHONPATH": str(REPO), "XDG_STATE_HOME": str(state)},
                check=False,
            )
            assert result.returncode == 0, result.stderr
            assert result.stderr == ""  # a first run has no file yet: that is no warning
            written = state / "aioconnlist" / "history.json"
            assert written.exists() == ("--no-history" not in args)
    finally:
        ok.close()
    assert stat.S_IMODE((state / "aioconnlist").stat().st_mode) == 0o700
    assert stat.S_IMODE(written.stat().st_mode) == 0o600
    assert json.loads(written.read_text())["networks"]


def test_merging_own_state_back_keeps_one_record_per_pair() -> None:
    """A save re-reads the file it wrote: a pair in memory and in the file is one record."""
    h = PairHistory()
    h.set_network("n")
    h.record_success(pair("192.0.2.1:80"), 0.02, 10.0)
    h.record_failure(pair("192.0.2.2:80"), "timeout", 10.0)
    state = h.export_state(11.0, 0.0)
    h.merge_state(state, 11.0, 0.0)
    h.record_success(pair("192.0.2.1:80"), 0.03, 12.0)
    again = h.export_state(12.0, 0.0)
    rows = again["networks"][h.network]["pairs"]
    assert len(rows) == 2 and len({row[0] for row in rows}) == 2
    assert len(h) == 2


def test_forked_child_keeps_writing(path: Path) -> None:
    """A child forked while the parent's write was pending writes its own evidence."""
    code = f"""
        import os, time
        from aioconnlist import PairHistory
        from aioconnlist._core.addresses import parse_address
        from aioconnlist._core.pairs import Pair
        from aioconnlist._io import history_file, network
        h = PairHistory.open({str(path)!r})
        store = history_file.file_of(h)
        store.coalesce = 0.05
        p7, p8 = (Pair(None, parse_address(f"192.0.2.{{n}}:80"), None) for n in (7, 8))
        h.record_failure(p7, "timeout", time.monotonic())
        pid = os.fork()  # the parent's timer is pending now
        if pid == 0:
            h.record_failure(p8, "timeout", time.monotonic())
            timer = store._timer  # the child's own (None: the parent's ghost blocked it)
            if timer is not None:
                timer.join(10.0)
            os._exit(0 if store.writes and network.current() is not None else 1)
        _, status = os.waitpid(pid, 0)
        print(os.waitstatus_to_exitcode(status))
    """
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-1] == "0", result.stderr
    h, _ = opened(path)
    assert h.rank(pair("192.0.2.8:80"), _now()) > 0
