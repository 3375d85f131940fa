"""Sphinx configuration of aioconnlist's reference site.

Build it (the ``docs`` extra) with warnings as errors, as CI does:

    python -m sphinx -W --keep-going -b html docs docs/_build/html

The Markdown pages are read by myst-parser; the user guide, the error table and the benchmark
tables are included from README.md (one text, no copy to drift). The API reference is made by
autodoc from the docstrings: one page per public module, generated at build time (a public
module added to ``aioconnlist/`` gets its page with no edit here).
"""

from __future__ import annotations

import pkgutil
import sys
from importlib.metadata import version as installed_version
from pathlib import Path

from sphinx.application import Sphinx

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))  # autodoc reads this checkout's modules

project = "aioconnlist"
author = "aioconnlist developers"
copyright = "2026, aioconnlist developers"
release = installed_version("aioconnlist")  # pyproject.toml's, as aioconnlist.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "myst_parser",  # the Markdown pages
    "sphinx.ext.autodoc",  # the reference, from the docstrings
    "sphinx.ext.napoleon",  # "Args:"/"Returns:" sections where a docstring has them
    "sphinx.ext.viewcode",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build"]
root_doc = "index"

# `name` in a docstring is a cross-reference where it resolves, plain code where it does not
default_role = "py:obj"
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_default_options = {"members": True, "show-inheritance": True}
autoclass_content = "both"  # the class docstring and __init__'s
# the entry points list their race options under "Options:", rendered as parameters are
napoleon_custom_sections = [("Options", "params_style")]
# no intersphinx: the build reads nothing from the network

myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

html_theme = "alabaster"
html_title = f"aioconnlist {release}"
html_static_path: list[str] = []


# modules whose public names are the root's own (documented on the root's page)
SHOWN_BY_THE_ROOT = {"api"}


def public_modules() -> list[str]:
    """Every public module of the package (no leading underscore), the root first."""
    found = [
        f"aioconnlist.{info.name}"
        for info in pkgutil.iter_modules([str(ROOT / "aioconnlist")])
        if not info.name.startswith("_") and info.name not in SHOWN_BY_THE_ROOT
    ]
    return ["aioconnlist", *sorted(found)]


def write_reference(app: Sphinx) -> None:
    """Write docs/reference/<module>.rst for each public module (before Sphinx reads them)."""
    out = DOCS / "reference"
    out.mkdir(exist_ok=True)
    wanted = set()
    for module in public_modules():
        name = f"{module}.rst"
        wanted.add(name)
        if module == "aioconnlist":
            title = "``aioconnlist``: the async API"
            # the root re-exports names defined in private modules: document those (__all__)
            body = (
                f".. automodule:: {module}\n   :imported-members:\n\n"
                ".. py:data:: aioconnlist.DEFAULT_HISTORY\n   :type: PairHistory\n\n"
                "   The `PairHistory` every call uses unless given ``history=``: one per\n"
                "   process, shared by every thread.\n\n"
                ".. py:data:: aioconnlist.__version__\n   :type: str\n\n"
                "   The version of the installed package, such as ``'0.1.0'``.\n"
            )
        else:
            title = f"``{module}``"
            body = f".. automodule:: {module}\n"
        text = f"{title}\n{'=' * len(title)}\n\n{body}"
        path = out / name
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
    for stale in out.glob("*.rst"):
        if stale.name not in wanted:
            stale.unlink()


def setup(app: Sphinx) -> None:
    app.connect("builder-inited", write_reference)
