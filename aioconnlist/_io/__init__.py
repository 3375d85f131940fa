"""What the machine knows: local sources and the kernel's choice of source, name resolution.

Talks to the operating system (interfaces, routes, getaddrinfo, DNS) without opening a
connection; uses the core, never the drivers or adapters.
"""
