"""The optional integrations' dependencies: an ImportError that says which pip command adds one."""

from __future__ import annotations


def missing_extra(error: ImportError, extra: str, needed_by: str) -> ImportError:
    """The error to raise (``from error``) when ``needed_by`` cannot import the package of the
    extra ``extra``: it names the missing package and ``pip install 'aioconnlist[extra]'``."""
    package = error.name or extra
    return ImportError(
        f"{needed_by} needs {package}, which is not installed: pip install 'aioconnlist[{extra}]'",
        name=package,
    )
