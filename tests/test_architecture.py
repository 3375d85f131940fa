"""The layers of docs/architecture.md hold: each layer imports only from the layers below it
(the import-linter contracts in pyproject.toml), and no module imports itself through others."""

from __future__ import annotations

import copy
from pathlib import Path

import grimp
import pytest
from importlinter.cli import lint_imports

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    # annotations-only imports (under TYPE_CHECKING) are not imports at run time
    return grimp.build_graph("aioconnlist", exclude_type_checking_imports=True)


def import_cycle(graph: grimp.ImportGraph) -> list[str] | None:
    """One cycle of module imports (as a path that starts and ends at the same module), or None."""
    modules = sorted(graph.modules)
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = 1
        path.append(module)
        for imported in sorted(graph.find_modules_directly_imported_by(module)):
            if state.get(imported) == 1:
                return [*path[path.index(imported) :], imported]
            if imported not in state and (found := visit(imported)) is not None:
                return found
        path.pop()
        state[module] = 2
        return None

    for module in modules:
        if module not in state and (found := visit(module)) is not None:
            return found
    return None


def test_import_linter_contracts_are_kept() -> None:
    assert lint_imports(config_filename=str(PYPROJECT), no_cache=True) == 0


def test_no_module_imports_itself_through_others(graph: grimp.ImportGraph) -> None:
    assert import_cycle(graph) is None


def test_the_cycle_check_finds_a_cycle(graph: grimp.ImportGraph) -> None:
    # the check can fail: the circle the old flat layout had (addresses -> errors -> events ->
    # pairs -> addresses), made again by adding its one missing import
    circled = copy.deepcopy(graph)
    circled.add_import(importer="aioconnlist._core.errors", imported="aioconnlist._core.events")
    cycle = import_cycle(circled)
    assert cycle is not None and cycle[0] == cycle[-1]
    assert {"aioconnlist._core.errors", "aioconnlist._core.events"} <= set(cycle)


def test_the_core_imports_nothing_above_it(graph: grimp.ImportGraph) -> None:
    core = graph.find_descendants("aioconnlist._core")
    above = {m for m in graph.modules if m.startswith("aioconnlist.") and m not in core}
    above.discard("aioconnlist._core")
    for module in core:
        assert not graph.find_modules_directly_imported_by(module) & above, module
