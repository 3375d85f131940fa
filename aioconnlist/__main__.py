"""``python -m aioconnlist``: the command line (see `aioconnlist._cli.main`)."""

from ._cli.main import main

raise SystemExit(main())
