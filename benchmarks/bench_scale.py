"""aioconnlist against its peers at every scale: cold start, list sizes, idle, refused, dual-stack.

    python benchmarks/bench_scale.py [--quick] [--only CASE,...] [--rounds N]

aiohappyeyeballs is given ``happy_eyeballs_delay=0.25`` (as aiohttp passes it): a staggered race.

Cases (each contender measured in alternating rounds in one run; median of rounds, and the
spread min..max of the per-round ratios against the first contender):

  cold      a fresh process: interpreter start -> first connected socket, wall and CPU
            (user+sys of the child); aiohappyeyeballs, asyncio, aioconnlist (async),
            socket.create_connection and aioconnlist.blocking
  imports   what ``import aioconnlist`` / ``import aioconnlist.blocking`` load (psutil,
            asyncio), in a fresh process
  first     the first connect in a process (after the imports), defaults, wall + CPU
  list      a list of N addresses (127.0.0.1 first, then N-1 further loopback addresses of
            closed ports ... the first works), the same list each call and a fresh list each
            call; N in 1, 10, 100, 1000, 10000, 100000
  idle      a connect after more than 2 s idle
  refused   a connect right after one to a refused address (defaults)
  dual      a healthy dual-stack race (::1, 127.0.0.1)

  refusedinstr  callgrind instructions per refused-then-healthy pair (``refused``'s calls)
  instructions  the dual-stack race under valgrind's callgrind: instructions per connect
  coldinstr     callgrind instructions of the cold-start processes (``cold``'s programs; hash
                seed 0: the same count every run)
  listinstr     callgrind instructions per connect to a fresh list of 1,000, 10,000 and 100,000
                addresses (``list``'s contenders; not in the default set: minutes under valgrind)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import resource
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from benchmarks.callgrind import instructions  # noqa: E402


def start_server(host: str) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "loopback_server.py"), host],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    return proc, int(proc.stdout.readline())


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port: int = s.getsockname()[1]
    s.close()
    return port


# --- cold start: fresh processes ------------------------------------------------------------

COLD = {
    "aiohappyeyeballs": (
        "import asyncio, socket, aiohappyeyeballs\n"
        "async def m():\n"
        "    infos = [(socket.AF_INET, socket.SOCK_STREAM, 6, '', ('127.0.0.1', PORT))]\n"
        "    (await aiohappyeyeballs.start_connection(infos, happy_eyeballs_delay=0.25)).close()\n"
        "asyncio.run(m())\n"
    ),
    "asyncio open_connection": (
        "import asyncio\n"
        "async def m():\n"
        "    r, w = await asyncio.open_connection('127.0.0.1', PORT)\n"
        "    w.close()\n"
        "asyncio.run(m())\n"
    ),
    "aioconnlist": (
        "import asyncio, aioconnlist\n"
        "async def m():\n"
        "    (await aioconnlist.connect_by_list([('127.0.0.1', PORT)])).close()\n"
        "asyncio.run(m())\n"
    ),
    "socket.create_connection": (
        "import socket\nsocket.create_connection(('127.0.0.1', PORT)).close()\n"
    ),
    "aioconnlist.blocking": (
        "import aioconnlist.blocking as b\nb.create_connection(('127.0.0.1', PORT)).close()\n"
    ),
}


# Fresh processes read compiled bytecode, as an installed package's users do (the peers'
# wheels were compiled at install): PYTHONDONTWRITEBYTECODE would make every child compile
# aioconnlist's sources again.
CHILD_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def compile_package() -> None:
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(ROOT / "aioconnlist")],
        check=True,
        env=CHILD_ENV,
    )


def run_child(code: str) -> tuple[float, float]:
    """(wall, cpu) seconds of a fresh interpreter running ``code``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, env=CHILD_ENV)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def case_cold(rounds: int, port: int) -> None:
    print("\n== cold start: fresh process -> first connected socket (ms) ==")
    codes = {name: code.replace("PORT", str(port)) for name, code in COLD.items()}
    walls: dict[str, list[float]] = {n: [] for n in codes}
    cpus: dict[str, list[float]] = {n: [] for n in codes}
    for code in codes.values():  # warm the page cache and .pyc files
        run_child(code)
    for _ in range(rounds):
        for name, code in codes.items():
            wall, cpu = run_child(code)
            walls[name].append(wall)
            cpus[name].append(cpu)
    table(
        walls,
        cpus,
        base_of={
            "aioconnlist": "aiohappyeyeballs",
            "asyncio open_connection": "aiohappyeyeballs",
            "aioconnlist.blocking": "socket.create_connection",
        },
        unit=1e3,
    )


IMPORTS = (
    "import sys, time\n"
    "t = time.process_time()\n"
    "import {mod}\n"
    "t = time.process_time() - t\n"
    "m = sys.modules\n"
    "print(f'{{t * 1e3:.1f}}', 'psutil' in m, 'asyncio' in m, len(m))\n"
)


def case_imports(rounds: int) -> None:
    print("\n== imports in a fresh process: CPU ms, psutil loaded, asyncio loaded, modules ==")
    for mod in ("asyncio", "aiohappyeyeballs", "aioconnlist", "aioconnlist.blocking"):
        outs = [
            subprocess.run(
                [sys.executable, "-c", IMPORTS.format(mod=mod)],
                check=True,
                cwd=ROOT,
                capture_output=True,
                text=True,
                env=CHILD_ENV,
            ).stdout.split()
            for _ in range(rounds)
        ]
        cpu = statistics.median(float(o[0]) for o in outs)
        print(
            f"  import {mod:<22} {cpu:7.1f} ms  psutil={outs[0][1]:<5} asyncio={outs[0][2]:<5} "
            f"modules={outs[0][3]}"
        )


# --- in-process cases -----------------------------------------------------------------------

Connect = Callable[[], Awaitable[socket.socket]]


def table(
    walls: dict[str, list[float]],
    cpus: dict[str, list[float]] | None,
    base_of: dict[str, str],
    unit: float,
    label: str = "ms",
) -> None:
    for name, w in walls.items():
        line = f"  {name:<44} wall {statistics.median(w) * unit:9.3f} {label}"
        if cpus is not None:
            line += f"  cpu {statistics.median(cpus[name]) * unit:9.3f} {label}"
        base = base_of.get(name)
        if base is not None:
            ratios = [a / b for a, b in zip(w, walls[base], strict=True)]
            spread = f"{min(ratios):.2f}..{max(ratios):.2f}"
            line += f"  x{statistics.median(ratios):.2f} wall ({spread})"
            if cpus is not None:
                cr = [a / b for a, b in zip(cpus[name], cpus[base], strict=True) if b > 0]
                if cr:
                    line += f" x{statistics.median(cr):.2f} cpu"
            line += f" vs {base}"
        print(line, flush=True)


async def timed(connect: Connect, n: int) -> tuple[float, float]:
    c0 = time.process_time()
    t0 = time.perf_counter()
    for _ in range(n):
        (await connect()).close()
    return (time.perf_counter() - t0) / n, (time.process_time() - c0) / n


def infos_of(addresses: list[tuple[str, int]]) -> list[Any]:
    return [
        (socket.AF_INET6 if ":" in h else socket.AF_INET, socket.SOCK_STREAM, 6, "", (h, p))
        for h, p in addresses
    ]


async def versus(
    title: str,
    contenders: dict[str, Connect],
    rounds: int,
    n: int,
    unit: float,
    label: str,
    baselines: dict[str, str] | None = None,
) -> None:
    """Alternating rounds of ``n`` connects per contender; each row's ratio is against its
    entry in ``baselines`` (default: every contender against the first)."""
    print(f"\n== {title} ==", flush=True)
    walls: dict[str, list[float]] = {k: [] for k in contenders}
    cpus: dict[str, list[float]] = {k: [] for k in contenders}
    for connect in contenders.values():
        (await connect()).close()
    for _ in range(rounds):
        for name, connect in contenders.items():
            w, c = await timed(connect, n)
            walls[name].append(w)
            cpus[name].append(c)
    if baselines is None:
        first = next(iter(contenders))
        baselines = {k: first for k in contenders if k != first}
    table(walls, cpus, baselines, unit, label)


def list_of(size: int, port: int, salt: int) -> list[tuple[str, int]]:
    """127.0.0.1:port first, then ``size - 1`` distinct loopback addresses (never tried)."""
    rest = [
        (f"127.{(salt + i // 65536) % 200 + 2}.{(i // 256) % 256}.{i % 256 + 0}", port)
        for i in range(1, size)
    ]
    return [("127.0.0.1", port), *rest]


def list_contenders(size: int, port: int) -> dict[str, Connect]:
    """The same list each call and a fresh list each call (made in the timing, for both)."""
    import aiohappyeyeballs

    import aioconnlist

    same = list_of(size, port, 0)
    same_infos = infos_of(same)
    fresh_counter = iter(range(1, 10**9))

    def fresh() -> list[tuple[str, int]]:
        return list_of(size, port, next(fresh_counter))

    return {
        "aiohappyeyeballs same list": lambda: aiohappyeyeballs.start_connection(
            same_infos, happy_eyeballs_delay=0.25
        ),
        "aioconnlist same list": lambda: aioconnlist.connect_by_list(same),
        "aioconnlist same list, local_addresses=None": lambda: aioconnlist.connect_by_list(
            same, local_addresses=None
        ),
        "aiohappyeyeballs fresh list": lambda: aiohappyeyeballs.start_connection(
            infos_of(fresh()), happy_eyeballs_delay=0.25
        ),
        "aioconnlist fresh list": lambda: aioconnlist.connect_by_list(fresh()),
    }


async def case_list(rounds: int, port: int, sizes: list[int]) -> None:
    for size in sizes:
        await versus(
            f"list of {size:,} addresses, first works: µs per connect",
            list_contenders(size, port),
            rounds,
            max(1, min(200, 20000 // size)),
            1e6,
            "µs",
            {
                "aioconnlist same list": "aiohappyeyeballs same list",
                "aioconnlist same list, local_addresses=None": "aiohappyeyeballs same list",
                "aioconnlist fresh list": "aiohappyeyeballs fresh list",
            },
        )


async def case_first(port: int) -> None:
    """The first connect in a process, after the imports (a fresh process per contender)."""
    code = (
        "import asyncio, socket, time, aiohappyeyeballs, aioconnlist\n"
        "aioconnlist.connect_by_list  # the lazy import, outside the timing\n"
        "async def m(which):\n"
        "    infos = [(socket.AF_INET, socket.SOCK_STREAM, 6, '', ('127.0.0.1', PORT))]\n"
        "    c, t = time.process_time(), time.perf_counter()\n"
        "    if which == 'aiohappyeyeballs':\n"
        "        s = await aiohappyeyeballs.start_connection(infos, happy_eyeballs_delay=0.25)\n"
        "    else:\n"
        "        s = await aioconnlist.connect_by_list([('127.0.0.1', PORT)])\n"
        "    print(time.perf_counter() - t, time.process_time() - c)\n"
        "    s.close()\n"
        "import sys\n"
        "asyncio.run(m(sys.argv[1]))\n"
    ).replace("PORT", str(port))
    walls: dict[str, list[float]] = {"aiohappyeyeballs": [], "aioconnlist": []}
    cpus: dict[str, list[float]] = {"aiohappyeyeballs": [], "aioconnlist": []}
    for _ in range(9):
        for which in walls:
            out = subprocess.run(
                [sys.executable, "-c", code, which],
                check=True,
                capture_output=True,
                text=True,
                cwd=ROOT,
                env=CHILD_ENV,
            ).stdout.split()
            walls[which].append(float(out[0]))
            cpus[which].append(float(out[1]))
    print("\n== the first connect in a process (after imports): µs ==")
    table(walls, cpus, {"aioconnlist": "aiohappyeyeballs"}, 1e6, "µs")


async def case_idle(port: int, rounds: int) -> None:
    import aiohappyeyeballs

    import aioconnlist

    infos = infos_of([("127.0.0.1", port)])
    walls: dict[str, list[float]] = {"aiohappyeyeballs": [], "aioconnlist": []}
    cpus: dict[str, list[float]] = {"aiohappyeyeballs": [], "aioconnlist": []}
    connects: dict[str, Connect] = {
        "aiohappyeyeballs": lambda: aiohappyeyeballs.start_connection(
            infos, happy_eyeballs_delay=0.25
        ),
        "aioconnlist": lambda: aioconnlist.connect_by_list([("127.0.0.1", port)]),
    }
    for connect in connects.values():
        (await connect()).close()
    for _ in range(rounds):
        await asyncio.sleep(2.2)  # benchmark pacing (idle time is what is measured)
        for name, connect in connects.items():
            w, c = await timed(connect, 1)
            walls[name].append(w)
            cpus[name].append(c)
    print("\n== a connect after > 2 s idle: µs ==")
    table(walls, cpus, {"aioconnlist": "aiohappyeyeballs"}, 1e6, "µs")


async def case_refused(port: int, rounds: int) -> None:
    import aiohappyeyeballs

    import aioconnlist

    dead = closed_port()

    async def ahe() -> socket.socket:
        with contextlib.suppress(OSError):
            (
                await aiohappyeyeballs.start_connection(
                    infos_of([("127.0.0.1", dead)]), happy_eyeballs_delay=0.25
                )
            ).close()
        return await aiohappyeyeballs.start_connection(
            infos_of([("127.0.0.1", port)]), happy_eyeballs_delay=0.25
        )

    async def ours() -> socket.socket:
        with contextlib.suppress(OSError):
            (await aioconnlist.connect_by_list([("127.0.0.1", dead)])).close()
        return await aioconnlist.connect_by_list([("127.0.0.1", port)])

    await versus(
        "one refused address then a healthy one, defaults: µs per pair of connects",
        {"aiohappyeyeballs": ahe, "aioconnlist": ours},
        rounds,
        200,
        1e6,
        "µs",
    )


async def case_dual(port6: int, port4: int, rounds: int) -> None:
    import aiohappyeyeballs

    import aioconnlist

    if port6 != port4:
        return
    both = [("::1", port6), ("127.0.0.1", port4)]
    infos = infos_of(both)
    await versus(
        "healthy dual-stack race (::1, 127.0.0.1): µs per connect",
        {
            "aiohappyeyeballs": lambda: aiohappyeyeballs.start_connection(
                infos, happy_eyeballs_delay=0.25
            ),
            "aioconnlist": lambda: aioconnlist.connect_by_list(both),
            "aioconnlist local_addresses=None": lambda: aioconnlist.connect_by_list(
                both, local_addresses=None
            ),
            "aioconnlist single address": lambda: aioconnlist.connect_by_list(both[:1]),
        },
        rounds,
        500,
        1e6,
        "µs",
    )


INSTRUCTIONS = (
    "import asyncio, socket, sys, aiohappyeyeballs, aioconnlist\n"
    "which, n, port = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])\n"
    "both = [('::1', port), ('127.0.0.1', port)]\n"
    "infos = [(socket.AF_INET6 if ':' in h else socket.AF_INET, socket.SOCK_STREAM, 6, '', (h, p))"
    " for h, p in both]\n"
    "connect = {\n"
    "    'aiohappyeyeballs': lambda: aiohappyeyeballs.start_connection(\n"
    "        infos, happy_eyeballs_delay=0.25),\n"
    "    'aioconnlist': lambda: aioconnlist.connect_by_list(both),\n"
    "    'aioconnlist single address': lambda: aioconnlist.connect_by_list(both[:1]),\n"
    "}[which]\n"
    "async def m():\n"
    "    for _ in range(20):  # warm: caches, the first plan\n"
    "        (await connect()).close()\n"
    "    for _ in range(n):\n"
    "        (await connect()).close()\n"
    "asyncio.run(m())\n"
)


def instructions_per_call(
    head: list[str], n: int, tail: list[str], env: dict[str, str] = CHILD_ENV
) -> float:
    """callgrind's instructions per call: (Ir of ``python *head n *tail``, a process making its
    warm-up and ``n`` calls, - Ir of the same with 0, the warm-up alone) / ``n``."""
    more = instructions([*head, str(n), *tail], cwd=ROOT, env=env)
    return (more - instructions([*head, "0", *tail], cwd=ROOT, env=env)) / n


def case_instructions(port: int, n: int = 200) -> None:
    """Instructions per healthy dual-stack race: (Ir of 20 + n connects - Ir of 20) / n."""
    print(
        f"\n== healthy dual-stack race (::1, 127.0.0.1): instructions per connect (callgrind, "
        f"{n} connects) ==",
        flush=True,
    )
    base = None
    for which in ("aiohappyeyeballs", "aioconnlist", "aioconnlist single address"):
        per = instructions_per_call(["-c", INSTRUCTIONS, which], n, [str(port)])
        base = base or per
        print(f"  {which:<44} {per / 1e3:9.1f}k instr.  x{per / base:.3f}", flush=True)


REFUSED_INSTRUCTIONS = (
    "import asyncio, contextlib, socket, sys, aiohappyeyeballs, aioconnlist\n"
    "which, n, port, dead = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])\n"
    "def infos(p):\n"
    "    return [(socket.AF_INET, socket.SOCK_STREAM, 6, '', ('127.0.0.1', p))]\n"
    "connect = {\n"
    "    'aiohappyeyeballs': lambda p: aiohappyeyeballs.start_connection(\n"
    "        infos(p), happy_eyeballs_delay=0.25),\n"
    "    'aioconnlist': lambda p: aioconnlist.connect_by_list([('127.0.0.1', p)]),\n"
    "}[which]\n"
    "async def m():\n"
    "    for _ in range(40 + n):  # 40 to warm: caches, the first plan\n"
    "        with contextlib.suppress(OSError):\n"
    "            (await connect(dead)).close()\n"
    "        (await connect(port)).close()\n"
    "asyncio.run(m())\n"
)


def case_refused_instructions(port: int, n: int = 200) -> None:
    """Instructions per pair (a refused address, then a healthy one), as `case_refused`:
    (Ir of 40 + n pairs - Ir of 40) / n, each list built afresh as a caller would."""
    print(
        f"\n== one refused address then a healthy one: instructions per pair (callgrind, "
        f"{n} pairs) ==",
        flush=True,
    )
    dead, base = closed_port(), None
    for which in ("aiohappyeyeballs", "aioconnlist"):
        per = instructions_per_call(["-c", REFUSED_INSTRUCTIONS, which], n, [str(port), str(dead)])
        base = base or per
        print(f"  {which:<44} {per / 1e3:9.1f}k instr.  x{per / base:.3f}", flush=True)


LIST_INSTRUCTIONS = (
    "import asyncio, sys\n"
    "from benchmarks.bench_scale import list_contenders\n"
    "which, size, n, port = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])\n"
    "connect = list_contenders(size, port)[which]\n"
    "async def m():\n"
    "    for _ in range(3 + n):  # 3 to warm: caches, the first plan\n"
    "        (await connect()).close()\n"
    "asyncio.run(m())\n"
)


def case_list_instructions(port: int, sizes: list[int]) -> None:
    """Instructions per connect to a fresh list: (Ir of 3 + n connects - Ir of 3) / n, the
    list made in the count for both (as in ``list``); hash seed 0."""
    print("\n== a fresh list each call, first works: instructions per connect (callgrind) ==")
    env = {**CHILD_ENV, "PYTHONHASHSEED": "0"}
    for size in sizes:
        n = max(1, min(20, 40_000 // size))
        base = None
        for which in ("aiohappyeyeballs fresh list", "aioconnlist fresh list"):
            per = instructions_per_call(
                ["-c", LIST_INSTRUCTIONS, which, str(size)], n, [str(port)], env
            )
            base = base or per
            print(
                f"  {size:>7,} {which:<36} {per / 1e6:9.2f}M instr.  x{per / base:.2f}",
                flush=True,
            )


def callgrind_total(code: str) -> int:
    """Instructions (callgrind's Ir) of a fresh interpreter running ``code`` (hash seed 0:
    the same count every run)."""
    return instructions(["-c", code], cwd=ROOT, env={**CHILD_ENV, "PYTHONHASHSEED": "0"})


def case_cold_instructions(port: int) -> None:
    print("\n== cold start under callgrind: instructions of the whole process ==", flush=True)
    counts = {name: callgrind_total(code.replace("PORT", str(port))) for name, code in COLD.items()}
    base_of = {
        "aioconnlist": "aiohappyeyeballs",
        "asyncio open_connection": "aiohappyeyeballs",
        "aioconnlist.blocking": "socket.create_connection",
    }
    for name, count in counts.items():
        line = f"  {name:<44} {count / 1e6:9.1f}M instr."
        if name in base_of:
            line += f"  x{count / counts[base_of[name]]:.3f} vs {base_of[name]}"
        print(line, flush=True)


def dual_server() -> tuple[subprocess.Popen[str], int]:
    """A server on ``::`` (v6 and v4 on one port)."""
    return start_server("::")


async def main_async(args: argparse.Namespace, only: set[str]) -> None:
    server, port = start_server("127.0.0.1")
    dual, dport = dual_server()
    compile_package()
    try:
        if "cold" in only:
            case_cold(args.rounds, port)
        if "imports" in only:
            case_imports(max(3, args.rounds // 2))
        if "first" in only:
            await case_first(port)
        if "list" in only:
            sizes = [1, 10, 100, 1000, 10000] if args.quick else [1, 10, 100, 1000, 10000, 100000]
            await case_list(max(3, args.rounds // 3), port, sizes)
        if "refused" in only:
            await case_refused(port, args.rounds)
        if "refusedinstr" in only:
            case_refused_instructions(port)
        if "dual" in only:
            await case_dual(dport, dport, args.rounds)
        if "instructions" in only:
            case_instructions(dport)
        if "coldinstr" in only:
            case_cold_instructions(port)
        if "listinstr" in only:
            case_list_instructions(port, [1000, 10000] if args.quick else [1000, 10000, 100000])
        if "idle" in only:
            await case_idle(port, max(3, args.rounds // 2))
    finally:
        for proc in (server, dual):
            assert proc.stdin is not None
            proc.stdin.close()
            proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds and sizes")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument(
        "--only",
        default="cold,imports,first,list,refused,refusedinstr,dual,instructions,coldinstr,idle",
    )
    args = parser.parse_args()
    if args.quick:
        args.rounds = 3
    asyncio.run(main_async(args, set(args.only.split(","))))


if __name__ == "__main__":
    main()
