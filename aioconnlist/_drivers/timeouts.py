"""Version shims."""

from __future__ import annotations

import sys

if sys.version_info >= (3, 11):
    from asyncio import Timeout, timeout_at

    def expired(cm: Timeout) -> bool:
        return cm.expired()

else:  # pragma: no cover - exercised on 3.10 only
    from async_timeout import Timeout, timeout_at

    def expired(cm: Timeout) -> bool:
        return cm.expired


__all__ = ["Timeout", "expired", "timeout_at"]
