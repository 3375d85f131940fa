"""plan_pairs: rank every usable (source, destination) pair. STUB — being implemented (helper B)."""

from __future__ import annotations

from collections.abc import Sequence

from .addresses import Endpoint
from .history import PairHistory
from .pairs import Pair, SourceView


def plan_pairs(
    destinations: Sequence[Endpoint],
    sources: SourceView,
    *,
    history: PairHistory | None,
    now: float,
    interleave: int = 1,
    sort: bool = True,
) -> list[Pair]:
    pairs: list[Pair] = []
    for dest in destinations:
        ks = sources.kernel_choice.get(dest.ip)
        if sources.mode != "explicit":
            pairs.append(Pair(None, dest, ks))
        if sources.mode != "kernel":
            pairs.extend(
                Pair(s, dest, ks)
                for s in sources.local
                if s.ip.version == dest.ip.version and (sources.mode == "explicit" or s.ip != ks)
            )
    return pairs
