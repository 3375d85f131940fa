"""The command line (``aioconnlist connect``, ``aioconnlist demo``) and the waterfall it draws."""
