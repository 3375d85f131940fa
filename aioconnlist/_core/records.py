"""Small value classes written out by hand: what a slotted dataclass generates (``__eq__``,
``__repr__``, and for a frozen one ``__hash__`` and no assignment), without its cost at import.

A ``@dataclass`` compiles its methods from source text when its class is created: about
0.25 ms per class, 0.5 ms frozen, and the drivers' import created dozens. The internal
records of the I/O layer and of the history derive from these bases instead; each lists its
fields in ``__slots__`` (in order) and writes its own ``__init__``.
"""

from __future__ import annotations

from typing import Any


class Record:
    """A mutable record: equal when of one class with equal fields; unhashable (as a dataclass
    with ``eq=True``)."""

    __slots__ = ()

    def _values(self) -> tuple[Any, ...]:
        names: tuple[str, ...] = self.__slots__
        return tuple(getattr(self, name) for name in names)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        assert isinstance(other, Record)
        return self._values() == other._values()

    def __repr__(self) -> str:
        names: tuple[str, ...] = self.__slots__
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in names)
        return f"{self.__class__.__qualname__}({fields})"

    __hash__ = None  # type: ignore[assignment]


class FrozenRecord(Record):
    """An immutable record: hashable on its fields; assigning a field raises AttributeError
    (``__init__`` sets them with ``object.__setattr__``)."""

    __slots__ = ()

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(self._values())

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete field {name!r}")
