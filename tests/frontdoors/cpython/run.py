"""Run CPython's ProcessPoolExecutor tests (cpython_futures.py) against mpire_fault.ProcessPoolExecutor.

The one swap: ``concurrent.futures.ProcessPoolExecutor`` is ours before the
tests are imported, so every executor they make (through their mixins or
``futures.ProcessPoolExecutor(...)``) is ours. ``--stdlib`` runs them on the
standard library's executor instead, as a baseline.

Tests that assert the old death semantics (one death breaks the executor) or
the standard library's internals are skipped, each with its reason
(``DIFFERENCES``; docs/migrating.md lists them too). Exit status 0 only when
every other test passed.

    python tests/frontdoors/cpython/run.py [--stdlib] [--contexts fork,spawn,forkserver] [-v]
"""
from __future__ import annotations

import argparse
import concurrent.futures
import fnmatch
import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))

DEATH = "asserts the stdlib's death semantics: one dead worker breaks the whole executor"
INTERNALS = "reads the stdlib executor's internals"
EXIT = ("expects SystemExit from a task that calls sys.exit() in its worker: ours counts that as the worker's "
        "death, as every mpire_fault pool does, and fails the future with ExecutorWorkerDiedError (exit code 1)")
ONE_TASK = "expects BrokenProcessPool for the whole executor where only one task's data is at fault"
# test method (fnmatch pattern on "Class.method", the class without its context prefix) -> why it is skipped
DIFFERENCES: dict[str, str] = {
    "*FailingInitializer*.test_initializer": DEATH + " (waits for executor._broken, then expects submit() to "
                                             "raise BrokenExecutor; ours fails the waiting futures with an error "
                                             "that is a BrokenProcessPool and tries again on the next submit)",
    "*.test_killed_child": DEATH + " (ours fails the killed worker's future only, and submit() still works)",
    "*.test_exit_during_func_exec_on_worker": EXIT,
    "*.test_exit_during_result_pickle_on_worker": EXIT,
    "*.test_error_at_task_unpickle": ONE_TASK + " (arguments that fail to unpickle in the worker: ours fails that "
                                     "future with the UnpicklingError, noted 'task-args')",
    "*.test_error_during_result_unpickle_in_result_handler": ONE_TASK + " (a result that fails to unpickle in the "
                                                             "parent: ours fails that future with the error)",
    "*.test_exit_during_result_unpickle_in_result_handler": ONE_TASK + " (SystemExit while the parent unpickles a "
                                                            "result: ours fails that future with it)",
    "*.test_processes_terminate": INTERNALS + " (counts _processes right after submit(): ours starts every worker "
                                              "from its supervisor thread a moment later, spawn included)",
    "*.test_saturation": INTERNALS + " (counts _processes right after submit(), as test_processes_terminate)",
    "*.test_idle_process_reuse_*": INTERNALS + " (spawn/forkserver: _processes must stay below max_workers while "
                                              "few tasks ran; ours starts every worker at once)",
    "*.test_del_shutdown": INTERNALS + " (_executor_manager_thread, _call_queue)",
    "*.test_shutdown_no_wait": INTERNALS + " (_executor_manager_thread, _call_queue)",
    "*.test_shutdown_deadlock_pickle": INTERNALS + " (_executor_manager_thread)",
    "*.test_traceback": INTERNALS + " (the cause must be concurrent.futures.process._RemoteTraceback; ours is "
                                    "mpire_fault.RemoteTraceback, with the same traceback text)",
}


def _swap_executor() -> None:
    import mpire_fault

    concurrent.futures.ProcessPoolExecutor = mpire_fault.ProcessPoolExecutor  # type: ignore[misc]


def _skip_differences(module) -> int:
    skipped = 0
    for name in dir(module):
        cls = getattr(module, name)
        if not (isinstance(cls, type) and issubclass(cls, unittest.TestCase)):
            continue
        for attr in dir(cls):
            if not attr.startswith("test"):
                continue
            for pattern, reason in DIFFERENCES.items():
                if fnmatch.fnmatchcase(f"{name}.{attr}", pattern):
                    setattr(cls, attr, unittest.skip(f"mpire_fault: {reason}")(getattr(cls, attr)))
                    skipped += 1
    return skipped


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stdlib", action="store_true", help="run on the standard library's executor (baseline)")
    parser.add_argument("--contexts", default="fork,spawn,forkserver", help="start methods, comma-separated")
    parser.add_argument("-k", dest="pattern", help="only tests whose id contains this text")
    parser.add_argument("-v", dest="verbosity", action="count", default=1)
    args = parser.parse_args(argv)
    if not args.stdlib:
        _swap_executor()
    sys.path.insert(0, HERE)
    import cpython_futures

    if not args.stdlib:
        _skip_differences(cpython_futures)
    prefixes = {"fork": "ProcessPoolFork", "spawn": "ProcessPoolSpawn", "forkserver": "ProcessPoolForkserver"}
    wanted = {prefixes[c] for c in args.contexts.split(",") if c}
    suite = unittest.TestSuite()
    for test in unittest.defaultTestLoader.loadTestsFromModule(cpython_futures):
        for case in _cases(test):
            cls = type(case).__name__
            context = next((p for p in sorted(prefixes.values(), key=len, reverse=True) if cls.startswith(p)), None)
            if context in wanted and (args.pattern is None or args.pattern in case.id()):
                suite.addTest(case)
    result = unittest.TextTestRunner(verbosity=args.verbosity).run(suite)
    executor = concurrent.futures.ProcessPoolExecutor
    print(f"executor: {executor.__module__}.{executor.__qualname__}; ran {result.testsRun}, "
          f"failures {len(result.failures)}, errors {len(result.errors)}, skipped {len(result.skipped)}")
    return 0 if result.wasSuccessful() else 1


def _cases(test):
    if isinstance(test, unittest.TestSuite):
        for inner in test:
            yield from _cases(inner)
    else:
        yield test


if __name__ == "__main__":
    sys.exit(main())
