"""The optional integrations' dependencies: an ImportError that says which pip command adds one."""

from __future__ import annotations

import os
import re
import warnings


def missing_extra(error: ImportError, extra: str, needed_by: str) -> ImportError:
    """The error to raise (``from error``) when ``needed_by`` cannot import the package of the
    extra ``extra``: it names the missing package and ``pip install 'aioconnlist[extra]'``."""
    package = error.name or extra
    return ImportError(
        f"{needed_by} needs {package}, which is not installed: pip install 'aioconnlist[{extra}]'",
        name=package,
    )


def check_supported(
    version: str,
    oldest: tuple[int, int],
    newest: tuple[int, int],
    *,
    message: str,
    override: str,
    works: bool = True,
) -> None:
    """Refuse, at import, a version of a library an integration relies on the private parts of.

    Nothing happens when ``version``'s (major, minor) lies within ``oldest`` and ``newest``
    and ``works`` (a feature check) holds. Otherwise ``ImportError(message)`` is raised, or,
    when the environment variable ``override`` is ``1``, a ``RuntimeWarning`` is given instead.
    """
    match = re.match(r"(\d+)\.(\d+)", version)
    found = (int(match.group(1)), int(match.group(2))) if match else (0, 0)
    if oldest <= found <= newest and works:
        return
    if os.environ.get(override) == "1":
        warnings.warn(message, RuntimeWarning, stacklevel=4)
        return
    raise ImportError(message)
