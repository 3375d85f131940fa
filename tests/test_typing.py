"""The public API as a type checker sees it: ``mypy --strict`` on tests/typed/usage.py.

Correct calls (with ``assert_type`` on what they return) must pass, and each typical mistake
(a misspelt option, a wrong type, another library's option name, a missing port, a missing
``await``...) must be reported on its line with the error code its ``# E:`` marker names.
"""

from __future__ import annotations

import re
import sys
from collections import defaultdict
from pathlib import Path

import pytest

mypy_api = pytest.importorskip("mypy.api")

USAGE = Path(__file__).parent / "typed" / "usage.py"
ROOT = Path(__file__).parent.parent
MARKER = re.compile(r"#\s*E:\s*(.*)$")
EXPECTED_ITEM = re.compile(r'\[([a-z-]+)\](?:\s*"([^"]*)")?')
REPORTED = re.compile(
    r"^(?P<path>[^:]+):(?P<line>\d+): error: (?P<message>.*)  \[(?P<code>[a-z-]+)\]$"
)


def expected_errors() -> dict[int, list[tuple[str, str]]]:
    """{line: [(code, text the message contains)]} from the ``# E: [code] "text"`` markers."""
    expected: dict[int, list[tuple[str, str]]] = {}
    for number, line in enumerate(USAGE.read_text().splitlines(), start=1):
        marker = MARKER.search(line)
        if marker:
            items = EXPECTED_ITEM.findall(marker.group(1))
            assert items, f"line {number}: a marker without [code]"
            expected[number] = [(code, text) for code, text in items]
    return expected


def reported_errors(output: str) -> dict[int, list[tuple[str, str]]]:
    reported: dict[int, list[tuple[str, str]]] = defaultdict(list)
    for line in output.splitlines():
        match = REPORTED.match(line)
        if match and Path(match["path"]).name == USAGE.name:
            reported[int(match["line"])].append((match["code"], match["message"]))
    return dict(reported)


def test_the_marker_parser_reads_codes_and_texts() -> None:
    item = EXPECTED_ITEM.findall('[call-arg] "timout"')
    assert item == [("call-arg", "timout")]
    line = 'x.py:3: error: Unexpected keyword argument "timout"  [call-arg]'
    assert reported_errors(line.replace("x.py", str(USAGE))) == {
        3: [("call-arg", 'Unexpected keyword argument "timout"')]
    }


@pytest.mark.timeout(300)
def test_mypy_strict_accepts_the_right_calls_and_catches_every_mistake() -> None:
    expected = expected_errors()
    assert len(expected) >= 11, "the typical mistakes are all there"
    stdout, stderr, status = mypy_api.run(
        [
            "--strict",
            "--no-error-summary",
            "--show-error-codes",
            "--python-version",
            f"{sys.version_info.major}.{sys.version_info.minor}",
            "--cache-dir",
            str(ROOT / ".mypy_cache"),
            str(USAGE),
        ]
    )
    assert status in (0, 1), stderr
    reported = reported_errors(stdout)
    problems = []
    for line in sorted(reported.keys() - expected.keys()):
        problems.append(f"line {line}: unexpected {reported[line]}")
    for line, wanted in sorted(expected.items()):
        got = reported.get(line, [])
        for code, text in wanted:
            if not any(code == c and text in message for c, message in got):
                problems.append(f"line {line}: mypy did not report [{code}] {text!r}: {got}")
        for code, message in got:
            if code not in {c for c, _ in wanted}:
                problems.append(f"line {line}: unexpected [{code}] {message}")
    assert not problems, "\n".join(problems)
