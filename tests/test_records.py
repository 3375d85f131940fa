"""The hand-written value classes behave as the slotted dataclasses they replace."""

from __future__ import annotations

import dataclasses
import ipaddress
import pickle

import pytest

from aioconnlist._core.addresses import Endpoint, parse_address
from aioconnlist._core.events import Attempt, RaceEvent
from aioconnlist._core.options import make_options
from aioconnlist._core.pairs import LocalAddress, Pair, SourceView
from aioconnlist._core.records import positional_record


def test_frozen_records_compare_hash_show_and_refuse_assignment_as_dataclasses() -> None:
    a, b = parse_address("[::1]:80"), parse_address("[::1]:80")
    assert a == b and hash(a) == hash(b) and a != parse_address("[::1]:81")
    assert repr(a) == "Endpoint(ip=IPv6Address('::1'), port=80, flowinfo=0, scope_id=0)"
    pair = Pair(None, a)
    assert repr(pair).startswith(
        "Pair(source=None, destination=Endpoint("
    ) and "_history" not in repr(pair)
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.port = 81  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        del pair.source  # type: ignore[misc]
    local = LocalAddress(ipaddress.ip_address("127.0.0.1"))
    assert local == LocalAddress(ipaddress.ip_address("127.0.0.1"), 0, "", False)
    assert pickle.loads(pickle.dumps(pair)) == pair
    assert pickle.loads(pickle.dumps(local)) == local
    match a:
        case Endpoint(ip, port):
            assert (str(ip), port) == ("::1", 80)
        case _:
            pytest.fail("no match")


def test_mutable_records_are_unhashable_and_replace_copies() -> None:
    attempt = Attempt(0, Pair(None, parse_address("127.0.0.1:1")), 0.0)
    with pytest.raises(TypeError):
        hash(attempt)
    assert attempt == Attempt(0, attempt.pair, 0.0) and attempt != Attempt(1, attempt.pair, 0.0)
    attempt.outcome = "won"
    event = RaceEvent.of("won", attempt, 0.5)
    assert (event.kind, event.outcome, event.time) == ("won", "won", 0.5)
    options = make_options(timeout=3)
    changed = options.replace(timeout=1.0)
    assert (changed.timeout, changed.attempt_delay) == (1.0, options.attempt_delay)
    assert changed != options and options.timeout == 3.0
    view = SourceView("kernel")
    assert view.kernel_choice == {} and view.replace(mode="auto").mode == "auto"


def test_positional_record_takes_values_in_order_with_defaults() -> None:
    @positional_record
    class Plan:
        first: int
        second: str
        third: bool = False

    plan = Plan(1, "x")
    assert (plan.first, plan.second, plan.third) == (1, "x", False)
    assert Plan(2, "y", third=True).third is True
    with pytest.raises(TypeError):
        Plan(1)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Plan(1, "x", True, 4)  # type: ignore[call-arg]


def test_records_work_with_the_dataclasses_functions_as_before() -> None:
    """Callers that used ``dataclasses.asdict(event)``, ``fields`` or ``replace`` on the public
    records (they were dataclasses) keep working."""
    from aioconnlist._core.history import PairHistory

    endpoint = parse_address("127.0.0.1:80")
    pair = Pair(None, endpoint)
    attempt = Attempt(0, pair, 0.0)
    event = RaceEvent.of("started", attempt, 0.0)
    history = PairHistory()
    history.record_success(pair, 0.01, 1.0)
    [stats] = history.snapshot(1.0)
    for record in (endpoint, pair, event, stats, LocalAddress(endpoint.ip)):
        assert dataclasses.is_dataclass(record) and dataclasses.is_dataclass(type(record))
        names = [f.name for f in dataclasses.fields(record)]
        assert names == list(type(record)._fields)
        assert dataclasses.asdict(record).keys() == set(names)
        assert dataclasses.replace(record) == record
    assert dataclasses.replace(endpoint, port=81) == parse_address("127.0.0.1:81")
    assert dataclasses.asdict(event)["kind"] == "started"
    assert dataclasses.astuple(endpoint) == (endpoint.ip, 80, 0, 0)
