from __future__ import annotations

from collections.abc import Iterator

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
