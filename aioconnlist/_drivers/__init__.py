"""The race drivers: a `Race` run with real sockets.

``asyncio``: on an event loop, one task per attempt. ``poll``: on the calling thread with
poll(2), for the blocking facade (no asyncio import). Both share ``planning`` (the cached plan,
the `Race`) and ``sockets`` (attempt sockets, bound without spending a port); ``addrinfo``
translates asyncio's address-info conventions for the adapters.
"""
