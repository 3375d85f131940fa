"""The sans-I/O core: plain data and functions, no sockets, no clock, no event loop.

Addresses and pairs, the error family, race records, RFC 6724, the planner, the history and
the `Race` state machine. Everything above (``_io``, ``_drivers``, the public adapters) feeds it
times and outcomes; nothing here imports from those layers.
"""
