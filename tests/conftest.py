from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterator, Mapping

import pytest

from tests.support import BlackHole, Listener


@pytest.fixture
def listener() -> Iterator[Listener]:
    lst = Listener("127.0.0.1")
    yield lst
    lst.close()


@pytest.fixture
def black_hole() -> Iterator[BlackHole]:
    hole = BlackHole("127.0.0.2")
    yield hole
    hole.close()


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]]:
    """Tests marked ``both_loops`` run on the default loop and on uvloop."""
    factories: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
        "asyncio": asyncio.new_event_loop
    }
    if item.get_closest_marker("both_loops"):
        import uvloop

        factories["uvloop"] = uvloop.new_event_loop
    return factories


@pytest.fixture(autouse=True, scope="session")
def network_followed() -> None:
    """The process follows the network from its first plan on (a watcher thread and its netlink
    socket, kept for the process's life): started here once, so a test that counts descriptors
    or threads around a connect counts that connect's own. That the import starts nothing and
    the first plan does is tested in a fresh process (test_sources.py)."""
    from aioconnlist._drivers import planning

    planning._start()
    assert planning.wait_followed(60.0)  # the thread's first go at the network is over


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--fuzz",
        type=int,
        default=None,
        metavar="N",
        help="run N hypothesis examples per entry point in tests/test_fuzz.py (long fuzz runs; "
        "same as AIOCONNLIST_FUZZ=N)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "fuzz: the hypothesis fuzz of the public entry points")
    examples = config.getoption("--fuzz")
    if examples is not None:  # read by tests/test_fuzz.py when it is imported
        os.environ["AIOCONNLIST_FUZZ"] = str(examples)
