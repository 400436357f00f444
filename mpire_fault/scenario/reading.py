"""Reading a scenario file's bytes: every way ``tomllib`` can fail, and every value TOML allows but a
scenario cannot use, is a ``Problem`` at a line and, where one can be found, the key written on it."""
from __future__ import annotations

import math
import re
import tomllib
from dataclasses import dataclass
from typing import Any

from .schema import MAX_DEPTH, MAX_INT, shown


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a scenario file: the dotted key (None for the whole file) and what was expected."""

    path: str
    key: str | None
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.key or '(file)'}: {self.message}"


class ScenarioInvalid(ValueError):
    """A scenario file is malformed; ``problems`` lists every issue found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(map(str, self.problems)))


_KEY_PART = r"""(?:[A-Za-z0-9_-]+|"[^"\n]*"|'[^'\n]*')"""  # a bare, "basic" or 'literal' key
_DOTTED_KEY = rf"({_KEY_PART}(?:\s*\.\s*{_KEY_PART})*)"
_KEY_LINE = re.compile(rf"\s*{_DOTTED_KEY}\s*=")
_HEADER = re.compile(rf"\[\[?\s*{_DOTTED_KEY}")
_AT_LINE = re.compile(r"\(at line (\d+), column (\d+)\)")
_LONG_NUMBER = re.compile(r"[0-9][0-9_]{4000,}")


def parse_toml(path: str, raw: bytes) -> dict[str, Any]:
    def invalid(message: str, text: str, line: int | None) -> ScenarioInvalid:
        return ScenarioInvalid([Problem(path, printable(_key_at(text, line)), message)])

    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line: int | None = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise invalid(f"not UTF-8 text: byte 0x{raw[exc.start]:02x} at line {line}, column {column} "
                      "(TOML files are UTF-8)", raw.decode("utf-8", "replace"), line) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        found = _AT_LINE.search(str(exc))
        line = int(found.group(1)) if found else _first_failing_line(text, str(exc))
        where = "" if found or line is None else f" (line {line})"
        raise invalid(f"not valid TOML: {exc}{where}", text, line) from None
    except RecursionError:
        line = _too_deep_line(text)
        raise invalid(f"not a usable TOML file: arrays or tables nested too deep (at line {line}); "
                      f"expected at most {MAX_DEPTH} levels", text, line) from None
    except ValueError as exc:  # int()'s digit limit, or another value tomllib cannot convert
        found = _LONG_NUMBER.search(text)
        line = text.count("\n", 0, found.start()) + 1 if found else None
        where = f" (at line {line})" if line else ""
        why = "a number with thousands of digits" if found else f"a value it cannot convert ({shown(str(exc))})"
        raise invalid(f"not a usable TOML file: {why}{where}; TOML integers are 64-bit", text, line) from None
    except MemoryError:
        raise invalid("not a usable TOML file: too large to read", text, None) from None


def _first_failing_line(text: str, message: str) -> int | None:
    """For an error tomllib places only "at end of document" (a key given twice): the first line that brings it."""
    lines = text.splitlines(keepends=True)
    if len(lines) > 500:
        return None
    for count in range(1, len(lines) + 1):
        try:
            tomllib.loads("".join(lines[:count]))
        except tomllib.TOMLDecodeError as exc:
            if str(exc) == message:
                return count
        except (ValueError, RecursionError):
            return None
    return None


def _key_at(text: str, line: int | None) -> str | None:
    """The dotted key (with its [section]) written at ``line`` or on the nearest line above it, if any."""
    if line is None:
        return None
    lines = text.splitlines()[:line]
    key = section = None
    for number in range(len(lines) - 1, -1, -1):
        current = lines[number]
        header = _HEADER.match(current)
        if header and not _KEY_LINE.match(current):
            section = _plain_key(header.group(1))
            break
        if key is None:
            match = _KEY_LINE.match(current)
            if match:
                key = _plain_key(match.group(1))
    parts = [p for p in (section, key) if p]
    return ".".join(parts) if parts else None


def _plain_key(key: str) -> str:
    return ".".join(part.strip().strip("\"'") for part in key.split("."))[:200]


def _too_deep_line(text: str) -> int:
    """The line where brackets first open more than MAX_DEPTH deep (strings and comments skipped)."""
    depth, quote, line, index = 0, "", 1, 0
    while index < len(text):
        char = text[index]
        if char == "\n":
            line += 1
            if quote in ('"', "'"):
                quote = ""
        elif quote:
            if char == "\\" and quote.startswith('"'):
                index += 1
            elif text.startswith(quote, index):
                index += len(quote) - 1
                quote = ""
        elif char == "#":
            end = text.find("\n", index)
            index = len(text) if end < 0 else end
            continue
        elif char in "\"'":
            quote = char * 3 if text.startswith(char * 3, index) else char
            index += len(quote) - 1
        elif char in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return line
        elif char in "]}":
            depth = max(0, depth - 1)
        index += 1
    return line


def check_values(path: str, data: dict[str, Any]) -> list[Problem]:
    """Values no scenario needs and the gate cannot handle: integers beyond 64 bits, NaN, deep nesting."""
    problems: list[Problem] = []
    stack: list[tuple[str, Any, int]] = [(key, value, 1) for key, value in data.items()]
    while stack:
        key, value, depth = stack.pop()
        if depth > MAX_DEPTH:
            problems.append(Problem(path, key, f"nested more than {MAX_DEPTH} levels deep; expected a flatter "
                                               "value"))
        elif isinstance(value, dict):
            stack.extend((f"{key}.{sub}", item, depth + 1) for sub, item in value.items())
        elif isinstance(value, list):
            stack.extend((key, item, depth + 1) for item in value)  # items are named by their array's key
        elif isinstance(value, int) and not isinstance(value, bool) and not -MAX_INT - 1 <= value <= MAX_INT:
            problems.append(Problem(path, key, f"{shown(value)} does not fit in 64 bits; TOML integers are "
                                               f"from {-MAX_INT - 1} to {MAX_INT}"))
        elif isinstance(value, float) and math.isnan(value):
            problems.append(Problem(path, key, "nan is not a number a scenario can use"))
        if len(problems) >= 20:
            break
    unique = {(p.key, p.message): p for p in problems}  # one line per key, however many items repeat it
    return sorted((Problem(p.path, printable(p.key), p.message) for p in unique.values()), key=lambda p: p.key or "")


def printable(key: str | None) -> str | None:
    """A key as it can be shown in a terminal or a report: control characters escaped, long keys cut."""
    if key is None:
        return None
    if not key.isprintable():
        key = "".join(c if c.isprintable() else ascii(c)[1:-1] for c in key)
    return key if len(key) <= 200 else key[:100] + "..." + key[-60:]
