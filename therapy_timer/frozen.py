"""Frozen records that cost nothing to define: ``dataclass(frozen=True)`` without generated code."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import FrozenInstanceError, dataclass, fields
from operator import attrgetter
from reprlib import recursive_repr
from typing import Any, TypeVar, dataclass_transform

_C = TypeVar("_C", bound=type[Any])
_R = TypeVar("_R")


def _getter(names: tuple[str, ...]) -> Callable[[Any], tuple[Any, ...]]:
    if len(names) == 1:  # attrgetter of one name gives the value, not a 1-tuple
        (name,) = names
        return lambda record: (getattr(record, name),)
    return attrgetter(*names)


@dataclass_transform(frozen_default=True)
def frozen_record(cls: _C) -> _C:
    """Make ``cls`` what ``@dataclass(frozen=True)`` makes it; the class writes its own __init__.

    Under Python 3.11 the dataclass decorator writes the source of six methods per class and
    compiles it in every process that imports the class: ~1.5 ms a class on this machine, the
    largest part of a ``units`` command's own start-up (issue 13). Here the fields are still
    declared to ``dataclasses`` (``fields`` and ``replace`` work), the class's ``__init__`` sets
    every field through ``object.__setattr__`` as the generated one does, and equality, hash,
    repr and immutability are these shared functions, which compare, hash and print what the
    generated ones do (tests/test_frozen.py holds each record against its generated twin).
    """
    if "__init__" not in cls.__dict__:
        raise TypeError(f"{cls.__qualname__} must define __init__")
    record: type[Any] = dataclass(init=False, repr=False, eq=False)(cls)  # the same class
    every = fields(record)
    compared = _getter(tuple(f.name for f in every if f.compare))
    hashed = _getter(tuple(f.name for f in every if (f.compare if f.hash is None else f.hash)))
    shown = tuple(f.name for f in every if f.repr)
    names = frozenset(f.name for f in every)

    def __eq__(self: Any, other: object) -> bool:
        if other.__class__ is self.__class__:
            return bool(compared(self) == compared(other))
        return NotImplemented

    def __hash__(self: Any) -> int:
        return hash(hashed(self))

    @recursive_repr()
    def __repr__(self: Any) -> str:
        text = ", ".join(f"{name}={getattr(self, name)!r}" for name in shown)
        return f"{self.__class__.__qualname__}({text})"

    def __setattr__(self: Any, name: str, value: object) -> None:
        if type(self) is record or name in names:
            raise FrozenInstanceError(f"cannot assign to field {name!r}")
        super(record, self).__setattr__(name, value)

    def __delattr__(self: Any, name: str) -> None:
        if type(self) is record or name in names:
            raise FrozenInstanceError(f"cannot delete field {name!r}")
        super(record, self).__delattr__(name)

    for method in (__eq__, __hash__, __repr__, __setattr__, __delattr__):
        method.__qualname__ = f"{record.__qualname__}.{method.__name__}"
        setattr(record, method.__name__, method)
    # Say what the class now is: ``dataclasses`` reads these to refuse a non-frozen dataclass
    # subclass of a frozen one and to allow a frozen one (the flags given above said neither).
    params = record.__dataclass_params__
    params.init = params.repr = params.eq = params.frozen = True
    return cls


def from_fields(cls: type[_R], values: dict[str, Any]) -> _R:
    """A ``frozen_record`` instance made from its fields by name, without calling ``__init__``.

    For hot paths only (the rules' answers, a clinic-year's rows read back): a call with a dozen
    keywords costs about three times as much (issue 13). ``values`` must name every field, and
    the caller's fresh dict becomes the record's own.
    """
    record = object.__new__(cls)
    object.__setattr__(record, "__dict__", values)
    return record
