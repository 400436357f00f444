"""Run by test_exception_transport.py in a subprocess: exception classes defined in ``__main__``.

Under spawn and forkserver the worker runs this file as ``__mp_main__``, so its
classes are ``__mp_main__.TwoArgError``; the parent must still get its own
``__main__.TwoArgError``. Prints one JSON line per case.
"""
from __future__ import annotations

import json
import sys

from mpire_fault import WorkerPool


class TwoArgError(Exception):
    def __init__(self, a, b):
        super().__init__(f"{a}: {b}")
        self.a, self.b = a, b


class PlainError(Exception):
    pass


def raise_two(i):
    raise TwoArgError(i, "bad")


def raise_plain(i):
    raise PlainError(f"plain {i}")


def raise_dynamic(i):
    kind = type("DynamicError", (Exception,), {"__module__": __name__})  # not an attribute of any module
    raise kind(f"dynamic {i}")


if __name__ == "__main__":
    with WorkerPool(2, start_method=sys.argv[1]) as pool:
        for task in (raise_two, raise_plain, raise_dynamic):
            try:
                pool.apply(task, (1,))
            except Exception as exc:  # noqa: BLE001 - report whatever came back
                print(json.dumps({"task": task.__name__, "type": f"{type(exc).__module__}.{type(exc).__qualname__}",
                                  "caught": isinstance(exc, (TwoArgError, PlainError)), "str": str(exc),
                                  "attrs": {k: v for k, v in vars(exc).items() if k in ("a", "b")}}), flush=True)
