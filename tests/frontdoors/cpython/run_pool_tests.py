"""CPython's own ``multiprocessing.Pool`` tests, run against ``mpire_fault.Pool``.

Builds the fork test classes the way ``test_multiprocessing_fork`` does
(``install_tests_in_module_dict``: each ``_Test*`` base mixed with the
processes mixin), with the mixin's ``Pool`` and ``multiprocessing.Pool``
itself swapped for ours; the tests are CPython's, unchanged. The tests we
leave out assert the stdlib's old death semantics or its internals; each is
named here with the reason (docs/migrating.md lists them too). Exit status 0
only when everything that ran passed. Run it in a process of its own: it
patches ``multiprocessing`` for good.
"""
from __future__ import annotations

import multiprocessing
import sys
import unittest

import mpire_fault

try:
    from test import _test_multiprocessing as stdlib_tests
except ImportError:  # a Python built without its test package
    print("SKIP: this Python has no test._test_multiprocessing")
    sys.exit(0)

# The classes to run, as the fork suite names them, and the stand-alone tests that build a Pool.
POOL_CLASSES = ("_TestPool", "_TestPoolWorkerErrors", "_TestPoolWorkerLifetime")
STANDALONE = ("TestInitializers.test_pool_initializer", "TestStdinBadfiledescriptor.test_pool_in_process")

EXCLUDED = {
    "WithProcessesTestPool.test_map_no_failfast":
        "asserts that join() waits for the items of a failed map call that are still running; a failed map "
        "call here stops them (their workers are replaced), so there is nothing left to wait for",
    "WithProcessesTestPoolWorkerLifetime.test_pool_worker_lifetime":
        "calls the stdlib's private Pool._repopulate_pool(); tests/frontdoors/test_stdpool.py checks "
        "maxtasksperchild replacing workers through statistics()",
    "WithProcessesTestPoolWorkerLifetime.test_worker_finalization_via_atexit_handler_of_multiprocessing":
        "runs `from multiprocessing import Pool` in a fresh interpreter, which the swap does not reach (it "
        "would test the stdlib's Pool); tests/frontdoors/test_stdpool.py runs the same program with ours",
}


class MpireFaultMixin(stdlib_tests.ProcessesMixin):
    Pool = staticmethod(mpire_fault.Pool)


def build_suite() -> unittest.TestSuite:
    loader = unittest.defaultTestLoader
    suite = unittest.TestSuite()
    for name in POOL_CLASSES:
        base = getattr(stdlib_tests, name)
        cls = type("WithProcesses" + name[1:], (base, MpireFaultMixin, unittest.TestCase), {})
        cls.__module__ = __name__
        globals()[cls.__name__] = cls  # its classmethods are task functions: pickle finds them by name
        suite.addTests(loader.loadTestsFromTestCase(cls))
    for dotted in STANDALONE:
        class_name, method = dotted.split(".")
        suite.addTest(getattr(stdlib_tests, class_name)(method))
    for test in suite:
        test_id = f"{type(test).__name__}.{test._testMethodName}"  # type: ignore[attr-defined]
        if test_id in EXCLUDED:
            setattr(test, test._testMethodName, unittest.skip(EXCLUDED[test_id])(lambda: None))  # type: ignore[attr-defined]
    return suite


def main() -> int:
    multiprocessing.set_start_method("fork", force=True)
    multiprocessing.Pool = mpire_fault.Pool  # type: ignore[assignment,misc] - the tests that call it directly
    result = unittest.TextTestRunner(verbosity=2, stream=sys.stdout).run(build_suite())
    return 0 if result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
