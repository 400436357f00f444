"""The chaos spec: its grammar, its parser and its records.

    SPEC     := RULE (";" RULE)*
    RULE     := SITE ["[" SELECTOR ("," SELECTOR)* "]"] "=" TERM ("->" TERM)*
    SELECTOR := ("worker" | "task" | "attempt") "=" INT
    TERM     := [PERCENT "%"] [COUNT "*"] ACTION ["(" ARG ")"]

Every malformed spec raises ``ChaosSpecError`` quoting the spec and pointing
at the offending position. ``str()`` of a parsed spec prints the normalized
text, which parses back to the same records.
"""
from __future__ import annotations

import builtins
import math
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from ..errors import ChaosSpecError
from .sizes import parse_size
from .vocabulary import ACTIONS, SITES

SELECTORS = ("worker", "task", "attempt")
# Numbers are ASCII digits only: int() and float() would also take other
# scripts' digits, which then print differently from how they were written.
_NUMBER = re.compile(r"\d+(?:\.\d+)?", re.ASCII)
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*", re.ASCII)
_INT = re.compile(r"-?\d+", re.ASCII)
# Bounds that keep every value a plain machine number: counts and selectors
# fit in 63 bits, exit codes are what an exit status can carry, and a sleep
# or hang stays within what time.sleep() accepts.
MAX_WHOLE = 2**63 - 1
MAX_SECONDS = 10**9
_MAX_DIGITS = 30  # more significant digits than any bound above: refused before int()/float() see them


@dataclass(frozen=True, slots=True)
class Term:
    action: str
    arg: Any = None
    percent: float = 100.0
    count: int | None = None
    arg_text: str | None = None

    def __str__(self) -> str:
        text = ""
        if self.percent != 100.0:
            text += f"{_fmt_number(self.percent)}%"
        if self.count is not None:
            text += f"{self.count}*"
        text += self.action
        if self.arg_text is not None:
            text += f"({self.arg_text})"
        return text


@dataclass(frozen=True, slots=True)
class Rule:
    site: str
    selectors: tuple[tuple[str, int], ...]
    terms: tuple[Term, ...]

    def matches(self, worker_id: int | None, task_index: int | None, attempt: int) -> bool:
        for name, value in self.selectors:
            actual = worker_id if name == "worker" else task_index if name == "task" else attempt
            if actual != value:
                return False
        return True

    def __str__(self) -> str:
        selectors = ",".join(f"{name}={value}" for name, value in self.selectors)
        return self.site + (f"[{selectors}]" if selectors else "") + "=" + "->".join(map(str, self.terms))


@dataclass(frozen=True, slots=True)
class Spec:
    rules: tuple[Rule, ...]

    def __str__(self) -> str:
        return ";".join(map(str, self.rules))


def _fmt_number(value: float) -> str:
    """A float in the grammar's own notation: digits and at most one point, never an exponent.

    ``repr`` gives the shortest text that reads back as the same float, but
    may use an exponent (``1e-05``), which the grammar has no place for;
    the same digits written out in full read back just as exactly.
    """
    value = float(value)
    if value.is_integer():
        return str(int(value))
    return format(Decimal(repr(value)), "f")


def _too_long(digits: str) -> bool:
    """More significant digits than any value the grammar accepts (checked before int() sees them)."""
    return len(digits.split(".")[0].lstrip("0")) > _MAX_DIGITS


def total_memory() -> int | None:
    """This machine's physical memory in bytes (None when it cannot be read)."""
    import psutil

    try:
        return int(psutil.virtual_memory().total)
    except (psutil.Error, OSError):  # no /proc to read: the run-time caps still hold
        return None


def builtin_exception(name: str) -> type[BaseException]:
    """The builtin exception class called ``name``, constructible from one message."""
    cls = getattr(builtins, name, None)
    if not (isinstance(cls, type) and issubclass(cls, BaseException)):
        raise ValueError(f"{name!r} is not a builtin exception (e.g. ValueError, RuntimeError, MemoryError)")
    try:
        cls("probe")
    except TypeError:
        raise ValueError(f"{name} needs more than a message to be built; pick another builtin exception") from None
    return cls


class _Parser:
    def __init__(self, spec: str) -> None:
        self.spec = spec
        self.pos = 0

    def fail(self, message: str, position: int | None = None) -> ChaosSpecError:
        return ChaosSpecError(message, self.spec, self.pos if position is None else position)

    def skip(self) -> None:
        while self.pos < len(self.spec) and self.spec[self.pos].isspace():
            self.pos += 1

    def peek(self, text: str) -> bool:
        self.skip()
        return self.spec.startswith(text, self.pos)

    def expect(self, text: str, what: str) -> None:
        if not self.peek(text):
            found = self.spec[self.pos:self.pos + 1] or "end of spec"
            raise self.fail(f"expected {what} ({text!r}), found {found!r}")
        self.pos += len(text)

    def match(self, pattern: re.Pattern) -> str | None:
        self.skip()
        found = pattern.match(self.spec, self.pos)
        if not found:
            return None
        self.pos = found.end()
        return found.group(0)

    def parse(self) -> Spec:
        if not self.spec.strip():
            raise self.fail("empty chaos spec: give at least one rule such as 'task.start=sigkill'", 0)
        rules = [self.rule()]
        while self.peek(";"):
            self.pos += 1
            if not self.spec[self.pos:].strip():
                break  # a trailing ';' is harmless
            rules.append(self.rule())
        self.skip()
        if self.pos != len(self.spec):
            raise self.fail(f"unexpected {self.spec[self.pos]!r}: rules are separated by ';'")
        return Spec(tuple(rules))

    def rule(self) -> Rule:
        self.skip()
        start = self.pos
        if self.peek(";") or self.pos >= len(self.spec):
            raise self.fail("empty rule: expected SITE=ACTION")
        site = self.match(_NAME)
        if site not in SITES:
            raise self.fail(f"unknown site {site or self.spec[start:start + 1]!r}; sites are {', '.join(SITES)}", start)
        selectors: list[tuple[str, int]] = []
        if self.peek("["):
            self.pos += 1
            selectors.append(self.selector())
            while self.peek(","):
                self.pos += 1
                selectors.append(self.selector())
            self.expect("]", "end of selectors")
        self.expect("=", "'=' between the site and its action")
        terms = [self.term()]
        while self.peek("->"):
            self.pos += 2
            terms.append(self.term())
        return Rule(site, tuple(selectors), tuple(terms))

    def selector(self) -> tuple[str, int]:
        start = self.pos
        name = self.match(_NAME)
        if name not in SELECTORS:
            raise self.fail(f"unknown selector {name!r}; selectors are worker=N, task=N, attempt=N", start)
        self.expect("=", f"'=' after {name}")
        self.skip()
        value_at = self.pos
        value = self.match(_INT)
        if value is None or value.startswith("-"):
            raise self.fail(f"{name}= takes a non-negative integer", value_at)
        return name, self.whole(value, value_at, f"{name}=")

    def whole(self, digits: str, at: int, what: str) -> int:
        """Non-negative ``digits`` as an int of at most MAX_WHOLE, or a positioned error."""
        if _too_long(digits) or int(digits) > MAX_WHOLE:
            raise self.fail(f"{what} must be a whole number from 0 to {MAX_WHOLE}, got {_short(digits)}", at)
        return int(digits)

    def term(self) -> Term:
        self.skip()
        start = self.pos
        percent, count = 100.0, None
        number = self.match(_NUMBER)
        if number is not None and self.peek("%"):
            self.pos += 1
            percent = float(number)
            if not 0 < percent <= 100:
                raise self.fail(f"percentage {_short(number)}% must be above 0 and at most 100", start)
            count_at = self.pos
            number = self.match(_NUMBER)
        else:
            count_at = start
        if number is not None:
            if not self.peek("*"):
                raise self.fail(f"a number before an action is 'N%' (chance) or 'N*' (count), not {number!r}", count_at)
            self.pos += 1
            if "." in number or _too_long(number) or not 1 <= int(number) <= MAX_WHOLE:
                raise self.fail(f"count {_short(number)}* must be a whole number from 1 to {MAX_WHOLE}", count_at)
            count = int(number)
        action_at = self.pos
        action = self.match(_NAME)
        if action not in ACTIONS:
            shown = action or self.spec[action_at:action_at + 1] or "end of spec"
            raise self.fail(f"unknown action {shown!r}; actions are {', '.join(ACTIONS)}", action_at)
        kind, required = ACTIONS[action]
        arg, arg_text = None, None
        if self.peek("("):
            self.pos += 1
            arg_at = self.pos
            close = self.spec.find(")", self.pos)
            if close < 0:
                raise self.fail(f"unclosed '(' after {action}", arg_at - 1)
            arg_text = self.spec[self.pos:close].strip()
            self.pos = close + 1
            if kind is None:
                raise self.fail(f"{action} takes no argument", arg_at)
            arg = self.argument(action, kind, arg_text, arg_at)
        elif required:
            raise self.fail(f"{action} needs an argument, e.g. {_EXAMPLES[action]}", self.pos)
        return Term(action, arg, percent, count, arg_text)

    def argument(self, action: str, kind: str, text: str, at: int) -> Any:
        try:
            if kind == "int":
                if not _INT.fullmatch(text):
                    raise ValueError(f"{action}() takes an integer exit code, got {_short(text)!r}")
                if _too_long(text.lstrip("-")) or not 0 <= int(text) <= 255:
                    raise ValueError(f"{action}() takes an exit code from 0 to 255, got {_short(text)}")
                return int(text)
            if kind == "seconds":
                if not _NUMBER.fullmatch(text):
                    raise ValueError(f"{action}() takes a number of seconds, got {_short(text)!r}")
                seconds = float(text)
                if not (math.isfinite(seconds) and seconds <= MAX_SECONDS):
                    raise ValueError(f"{action}() takes at most {MAX_SECONDS} seconds, got {_short(text)}")
                return seconds
            if kind == "size":
                size = parse_size(text)
                total = total_memory()
                if total is not None and size > total:
                    raise ValueError(f"oom({_short(text)}) asks for {size} bytes, more than this machine's "
                                     f"{total} bytes of memory; give a size below that")
                return size
            return builtin_exception(text).__name__
        except ValueError as exc:
            raise self.fail(str(exc), at) from None


def _short(text: str, keep: int = 40) -> str:
    """``text`` cut down for a message (the full spec is quoted in the error anyway)."""
    return text if len(text) <= keep else f"{text[:keep // 2]}...{text[-keep // 2:]} ({len(text)} characters)"


_EXAMPLES = {"oom": "oom(300MiB)", "raise": "raise(ValueError)", "sleep": "sleep(0.5)"}


def parse_spec(spec: str) -> Spec:
    """Parse a chaos spec; raises ``ChaosSpecError`` pointing at the first problem."""
    if not isinstance(spec, str):
        raise ChaosSpecError(f"a chaos spec is a string, got {type(spec).__name__}")
    return _Parser(spec).parse()
