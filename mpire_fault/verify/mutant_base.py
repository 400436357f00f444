"""What every mutant catalogue shares: the record of a mutant, and patches whose target is checked when applied.

A mutant names what it patches (``"mpire_fault._engine.settlement:Settlement.settle_head"``, or a class
and an attribute). The target is looked up when the patch is applied, never at import: a refactor that
moves or renames it makes that mutant fail with ``MutantTargetMissing``, which ``verify --self-test``
reports as an ERROR of the kit (a mutant that patches nothing would otherwise "survive" or, worse,
pass for caught by a flaky grading).
"""
from __future__ import annotations

import contextlib
import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

_MISSING = object()


class MutantTargetMissing(LookupError):
    """What a mutant patches does not exist any more (it was moved or renamed): the mutant must be updated."""


@contextlib.contextmanager
def patched(cls: type, name: str, make: Callable[[Callable], Any]) -> Iterator[None]:
    """Replace ``cls.name`` with ``make(original)`` for the duration of the block."""
    original: Any = getattr(cls, name, _MISSING)
    if original is _MISSING:
        raise MutantTargetMissing(f"{cls.__module__}.{cls.__qualname__} has no attribute {name!r}")
    own = cls.__dict__.get(name, _MISSING)
    setattr(cls, name, make(original))
    try:
        yield
    finally:
        if own is _MISSING:
            delattr(cls, name)
        else:
            setattr(cls, name, own)


def assign(obj: Any, name: str, value: Any) -> None:
    """``obj.name = value`` for an attribute ``obj`` already has; MutantTargetMissing otherwise.

    A plain assignment to a renamed attribute adds a new one that nothing
    reads: the mutant would break nothing and "survive" (init-never-gives-up
    did, after the slots' ``failures`` became ``start_failures``).
    """
    if not hasattr(obj, name):
        raise MutantTargetMissing(f"{type(obj).__qualname__} has no attribute {name!r} to set")
    setattr(obj, name, value)


def resolve(target: str) -> tuple[Any, str]:
    """``"package.module:Name.attr"`` -> (the object holding ``attr``, ``"attr"``); MutantTargetMissing if absent."""
    module_name, _, path = target.partition(":")
    try:
        holder: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise MutantTargetMissing(f"{target}: module {module_name} cannot be imported ({exc})") from exc
    *parents, name = path.split(".")
    for part in parents:
        found = getattr(holder, part, _MISSING)
        if found is _MISSING:
            raise MutantTargetMissing(f"{target}: {part!r} not found")
        holder = found
    if not hasattr(holder, name):
        raise MutantTargetMissing(f"{target}: {name!r} not found")
    return holder, name


@contextlib.contextmanager
def patched_at(target: str, make: Callable[[Callable], Any]) -> Iterator[None]:
    """``patched`` for a target named as ``"module:Class.attr"`` or ``"module:function"`` (a module attribute:
    patch the module the caller looks it up in)."""
    holder, name = resolve(target)
    if isinstance(holder, type):
        with patched(holder, name, make):
            yield
        return
    original = getattr(holder, name)
    setattr(holder, name, make(original))
    try:
        yield
    finally:
        setattr(holder, name, original)


@dataclass(frozen=True)
class Mutant:
    name: str
    patch: Callable[[], contextlib.AbstractContextManager]
    catchers: tuple[str, ...]

    @property
    def description(self) -> str:
        return (self.patch.__doc__ or "").strip()
