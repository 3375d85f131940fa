#!/usr/bin/env bash
# Install what the network lab (tests/netlab, benchmarks/bench_peers.py) needs on Debian.
# Run as root, with the environment to test in active: it builds netfilterqueue from source
# there (the `netlab` extra).
#   iproute2                ip netns, veth, policy routes, unreachable/prohibit routes
#   iptables                DROP / REJECT / NFQUEUE rules (iptables-restore, ip6tables-restore)
#   libnetfilter-queue-dev  headers + library for the netfilterqueue delay line
#   gcc, libc6-dev          to build netfilterqueue (PyPI ships only an sdist)
#   util-linux, coreutils   taskset, chrt, nice (priority of the timed lab processes)
#   tayga                   a userspace NAT64 (TUN device) for the IPv6-only lab host
#   python3-dev             Python.h, only when the running interpreter lacks its headers
set -euo pipefail

if [ "$(id -u)" != 0 ]; then
    echo "netlab-deps: must run as root" >&2
    exit 1
fi

packages=(iproute2 iptables libnetfilter-queue-dev gcc libc6-dev util-linux coreutils tayga)
python=${PYTHON:-python3}
include=$("$python" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
if [ ! -f "$include/Python.h" ]; then
    packages+=(python3-dev)
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null

# The delay line's Python binding (also in the [test] extra): only if this Python lacks it.
# Call this script with the venv active (or PYTHON=...) to install into that environment.
if ! "$python" -c 'import netfilterqueue' 2>/dev/null; then
    "$python" -m pip install -q 'netfilterqueue>=1.1'
fi

# Fail here, with the reason, rather than later in the tests.
PYTHONPATH="$(cd "$(dirname "$0")/.." && pwd)" "$python" - <<'PY'
import sys
from tests.netlab import netlab_problem
problem = netlab_problem()
if problem:
    sys.exit(f"netlab-deps: the lab still cannot run: {problem}")
print("netlab-deps: the network lab can run")
PY
