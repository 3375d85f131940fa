"""``python -m aioconnlist``: the command line (see `aioconnlist.cli`)."""

from .cli import main

raise SystemExit(main())
