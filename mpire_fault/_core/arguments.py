"""How an item becomes a call's arguments: MPIRE's rule, written once for every backend.

A dict is keyword arguments; any other iterable (but ``str``, ``bytes`` and a
numpy array; a ``bytearray`` *is* unpacked) is unpacked into positional
arguments; anything else is the one argument. The style is decided once per
type, not per item.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from operator import countOf
from typing import Any

from .chunking import is_ndarray_type

_STYLES: dict[type, int] = {}  # argument style per item type: decided once per type, not per item
ONE, UNPACK, KEYWORDS = 0, 1, 2  # the argument styles


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
    """The positional and keyword arguments one item (or apply task) passes, without the pool's preamble."""
    if kind == "apply":
        return item
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
