"""How an item becomes a call's arguments: the rule of each front door, written once for every backend.

MPIRE's rule (``WorkerPool``, payload kind ``MPIRE``): a dict is keyword
arguments; any other iterable (but ``str``, ``bytes`` and a numpy array; a
``bytearray`` *is* unpacked) is unpacked into positional arguments; anything
else is the one argument. The style is decided once per type, not per item.

``multiprocessing.Pool``'s rules (``mpire_fault.Pool``): ``map`` passes each
item whole (``WHOLE``: a tuple is one argument) and ``starmap`` unpacks it
with ``*item`` (``STAR``: a dict gives its keys, a string its characters).
Their style is fixed by the kind, so no item's type is looked at.

The payload of a task says its kind (``APPLY`` or one of the three map
rules): the front door decides, the worker follows.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from operator import countOf
from typing import Any

from .chunking import is_ndarray_type

_STYLES: dict[type, int] = {}  # argument style per item type: decided once per type, not per item
ONE, UNPACK, KEYWORDS = 0, 1, 2  # the argument styles

# The kinds of a task's payload ``(func, kind, items)``: apply's ``(args, kwargs)`` pairs, or a map's items
# under one of the three rules.
APPLY, MPIRE, WHOLE, STAR = "apply", "map", "whole", "star"
FIXED_STYLES = {WHOLE: ONE, STAR: UNPACK}  # the map rules whose style does not depend on the items


def style_of(kind: type) -> int:
    """The argument style of items of type ``kind``: ONE, UNPACK or KEYWORDS."""
    # MPIRE's convention: a dict is keyword arguments, any other iterable
    # (but str/bytes/ndarray: a bytearray is unpacked) is unpacked, anything else is one argument.
    style = _STYLES.get(kind)
    if style is None:
        if issubclass(kind, dict):
            style = KEYWORDS
        elif issubclass(kind, Iterable) and not issubclass(kind, (str, bytes)) and not is_ndarray_type(kind):
            style = UNPACK
        else:
            style = ONE
        _STYLES[kind] = style
    return style


def apply_arguments(args: Any) -> tuple:
    """``apply``'s ``args`` as MPIRE passes them: a tuple as it is, any other iterable but str/bytes/ndarray
    unpacked (a dict gives its keys, as MPIRE's worker does with ``kwargs`` given), anything else alone."""
    if isinstance(args, tuple):
        return args
    return tuple(args) if style_of(type(args)) != ONE else (args,)


def uniform_style(items: list | range) -> int | None:
    """The argument style shared by every item, or None for a mix (or keyword items)."""
    if type(items) is range:  # chunking.chunk_range: ints, one argument each
        return ONE
    if not items:
        return None
    kind = type(items[0])
    if countOf(map(type, items), kind) != len(items):  # a quarter faster than a set of the types
        return None
    style = style_of(kind)
    return style if style != KEYWORDS else None


def arguments_of(kind: str, item: Any) -> tuple[tuple, dict]:
    """The positional and keyword arguments one item (or apply task) of payload ``kind`` passes, without the
    pool's preamble."""
    if kind == APPLY:
        return item
    if kind == WHOLE:
        return (item,), {}
    if kind == STAR:
        return tuple(item), {}
    style = style_of(type(item))
    if style == ONE:
        return (item,), {}
    if style == UNPACK:
        return tuple(item), {}
    return (), item


def call_item(func: Callable, preamble: tuple, item: Any) -> Any:
    """``func(*preamble, ...)`` with the item's arguments by MPIRE's rule."""
    style = style_of(type(item))
    if style == ONE:
        return func(*preamble, item)
    if style == UNPACK:
        return func(*preamble, *item)
    return func(*preamble, **item)


def call_whole(func: Callable, preamble: tuple, item: Any) -> Any:
    """``func(*preamble, item)``: multiprocessing.Pool's ``map`` rule."""
    return func(*preamble, item)


def call_star(func: Callable, preamble: tuple, item: Any) -> Any:
    """``func(*preamble, *item)``: multiprocessing.Pool's ``starmap`` rule."""
    return func(*preamble, *item)


# How one item of each map rule is called, item by item (runners.run_items).
CALLERS: dict[str, Callable[[Callable, tuple, Any], Any]] = {MPIRE: call_item, WHOLE: call_whole, STAR: call_star}
