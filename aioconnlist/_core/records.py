"""Small value classes written out by hand: what a slotted dataclass generates (``__eq__``,
``__repr__``, ``__match_args__``, and for a frozen one ``__hash__``, no assignment and pickling
through ``object.__setattr__``), without its cost at import.

A ``@dataclass`` compiles its methods from source text when its class is created: about
0.25 ms per class, 0.5 ms frozen (some 4 million instructions), and the drivers' import
created over twenty. The records derive from these bases instead: each declares ``__slots__``
and ``_fields`` (the fields shown by ``repr`` and compared by ``==``, in order) and writes its
own ``__init__``; comparison and hashing read the fields with one `operator.attrgetter`.
"""

from __future__ import annotations

from collections.abc import Callable
from operator import attrgetter
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar


def _getter(fields: tuple[str, ...]) -> Callable[[Any], tuple[Any, ...]]:
    if not fields:  # the bases themselves
        return lambda obj: ()
    if len(fields) == 1:
        one = attrgetter(fields[0])
        return lambda obj: (one(obj),)
    return attrgetter(*fields)  # a tuple for several names


class _DataclassFields:
    """``__dataclass_fields__`` made on first use: `dataclasses.is_dataclass`, ``fields``,
    ``asdict``, ``astuple`` and ``replace`` take a record as the dataclass it replaces (its
    ``_fields``, each an ``__init__`` parameter); `dataclasses` is imported only then."""

    def __get__(self, obj: object, cls: type[Record] | None = None) -> dict[str, Any]:
        owner: Any = cls if cls is not None else type(obj)
        made: dict[str, Any] | None = owner.__dict__.get("_dataclass_fields")
        if made is None:
            import dataclasses

            made = {}
            for name in owner._fields:
                described: Any = dataclasses.field()
                described.name, described.type = name, Any
                described._field_type = dataclasses._FIELD  # type: ignore[attr-defined]
                made[name] = described
            type.__setattr__(owner, "_dataclass_fields", made)
        return made


class Record:
    """A mutable record: equal when of one class with equal fields; unhashable (as a dataclass
    with ``eq=True``)."""

    __slots__ = ()
    __dataclass_fields__: ClassVar[Any] = _DataclassFields()
    #: the fields compared and shown, in order (``__slots__`` may hold more, and be sorted)
    _fields: ClassVar[tuple[str, ...]] = ()
    _values: ClassVar[Callable[..., tuple[Any, ...]]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._values = staticmethod(_getter(cls._fields))
        if "__match_args__" not in cls.__dict__:
            setattr(cls, "__match_args__", cls._fields)  # noqa: B010 - not declared on the base

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._values(self) == self._values(other)

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._fields)
        return f"{self.__class__.__qualname__}({fields})"

    __hash__ = None  # type: ignore[assignment]


class FrozenRecord(Record):
    """An immutable record: hashable on its fields; assigning or deleting a field raises
    `dataclasses.FrozenInstanceError` (``__init__`` sets them with ``object.__setattr__``)."""

    __slots__ = ()

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(self._values(self))

    def __setattr__(self, name: str, value: object) -> None:
        from dataclasses import FrozenInstanceError  # only on this error path

        raise FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        from dataclasses import FrozenInstanceError

        raise FrozenInstanceError(f"cannot delete field {name!r}")

    def __getstate__(self) -> list[Any]:
        names: tuple[str, ...] = self.__slots__
        return [getattr(self, name) for name in names]

    def __setstate__(self, state: list[Any]) -> None:
        names: tuple[str, ...] = self.__slots__
        for name, value in zip(names, state, strict=True):
            object.__setattr__(self, name, value)


_R = TypeVar("_R", bound=Record)


def replaced(record: _R, changes: dict[str, Any]) -> _R:
    """A copy of ``record`` with ``changes`` (as `dataclasses.replace`; every field of
    ``_fields`` must be a parameter of ``__init__``)."""
    fields = {name: getattr(record, name) for name in record._fields}
    fields.update(changes)
    return record.__class__(**fields)


_C = TypeVar("_C", bound=type)

if TYPE_CHECKING:
    from typing_extensions import dataclass_transform
else:

    def dataclass_transform(**_kwargs: object) -> Callable[[_C], _C]:
        return lambda function: function


@dataclass_transform(eq_default=False)
def positional_record(cls: _C) -> _C:
    """Give ``cls`` an ``__init__`` taking its annotated fields in order, positionally or by
    name, a field with a value in the class body defaulting to it (for a private record made
    in few places: no compiled methods, no ``__eq__``/``__repr__``)."""
    names = tuple(cls.__dict__.get("__annotations__", {}))  # noqa: RUF063 - no inspect import
    defaults = {name: cls.__dict__[name] for name in names if name in cls.__dict__}

    def __init__(self: object, *values: object, **named: object) -> None:
        if len(values) > len(names):
            raise TypeError(f"{cls.__name__}() takes {len(names)} values, got {len(values)}")
        given = dict(zip(names, values, strict=False))
        for name, value in named.items():
            if name not in names or name in given:
                raise TypeError(f"{cls.__name__}(): unexpected or repeated {name!r}")
            given[name] = value
        for name in names:
            if name in given:
                setattr(self, name, given[name])
            elif name in defaults:
                setattr(self, name, defaults[name])
            else:
                raise TypeError(f"{cls.__name__}() needs {name!r}")

    cls.__init__ = __init__  # type: ignore[misc]
    return cls
