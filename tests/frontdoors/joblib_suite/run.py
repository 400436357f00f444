"""joblib's own ``joblib/test/test_parallel.py``, run with the ``"mpire_fault"`` backend standing in.

The installed joblib's test module runs unchanged, in a pytest run of its own;
the one swap is made before pytest collects it: ``MpireFaultBackend`` is
registered under the names the module parametrizes its process backends over,
``"loky"`` (joblib's default backend too) and ``"multiprocessing"``, so every
``Parallel`` it makes with those names, or with no backend at all, runs on our
pool. The tests we leave out assert joblib's or loky's internals, or the old
death semantics our guarantees replace; each is named here (``EXCLUDED``,
pytest node ids without the module) with the reason. Exit status 0 only when
everything that ran passed.

    python tests/frontdoors/joblib_suite/run.py [--quick] [-k EXPRESSION] [--timeout SECONDS] [--use-dill]
                                                [--stock] [pytest options...]
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import sys

# The backend names of joblib's test_parallel.py that mean "a process pool"; ours takes their place.
STAND_IN_FOR = ("loky", "multiprocessing")

CLASS = ("asserts the backend's class is joblib's own (type(...) is LokyBackend / MultiprocessingBackend, or its "
         "name): with the swap it is ours by construction")
CLOSURE = ("its function is a local function or a lambda, which plain pickle (our default; loky ships functions "
           "with cloudpickle) refuses with a note naming use_dill=True; it passes under `run.py --use-dill`")
THREADS = ("asserts joblib's policy for process backends inside threads: with nesting_level > 0 outside the main "
           "thread they run with n_jobs=1 and warn; ours starts its pool from any thread (its workers are always "
           "started from the pool's supervisor thread), so the inner call runs on processes and does not warn")
MEMMAP = ("asserts joblib's memmapping of big arrays (max_nbytes): the worker gets a np.memmap; ours sends big "
          "arrays through the engine's shared memory, so the worker gets an ndarray (max_nbytes is set aside)")
LIMITS = ("asserts loky's oversubscription guard (inner_max_num_threads, BLAS/OpenMP threads limited to "
          "cpu_count() // n_jobs in each worker): ours declares supports_inner_max_num_threads = False")
LOKY_SHARED = ("asserts loky's reusable executor, shared by every Parallel call: ours gives each Parallel that made "
               "its own backend its own workers, stopped when its call ends (and kept warm only inside a "
               "parallel_config block)")

# test id (as pytest names it within test_parallel.py; a trailing * matches every id it begins) -> why it does
# not run against our backend
EXCLUDED: dict[str, str] = {
    # Our deliberate differences.
    "test_nested_parallel_warnings[loky-loky-False]":
        "expects a nested process-backed call in a worker to run without a warning (loky's workers are not "
        "daemonic); ours are daemonic, so the inner call runs with n_jobs=1 and says so",
    "test_nested_parallel_warnings[threading-multiprocessing-True]": THREADS,
    "test_nested_parallel_warnings[threading-loky-True]": THREADS,
    "test_parallel_pickling":
        "expects loky's wrapping of an argument that will not pickle, PicklingError('Could not pickle the task "
        "to send it to the workers'); ours raises the object's own error with the note 'task-args', as every "
        "mpire_fault pool does (tests/frontdoors/test_joblib.py checks it)",
    "test_multiple_generator_call_separated_gc[generator-generator-loky-True]": LOKY_SHARED + " (expects the "
        "RuntimeError loky raises when a second call meets the executor the first one's gc shut down; ours "
        "behaves as joblib expects of threading: the second call runs, the first is aborted)",
    "test_multiple_generator_call_separated_gc[generator-generator_unordered-loky-True]": LOKY_SHARED,
    "test_multiple_generator_call_separated_gc[generator_unordered-generator-loky-True]": LOKY_SHARED,
    "test_multiple_generator_call_separated_gc[generator_unordered-generator_unordered-loky-True]": LOKY_SHARED,
    "test_initializer_reused[*": LOKY_SHARED + " (expects the same worker pids across three Parallel calls)",
    "test_auto_memmap_on_arrays_from_generator[*": MEMMAP,
    "test_memmapping_leaks[*": MEMMAP,
    "test_threadpool_limitation_in_child_loky[*": LIMITS,
    "test_threadpool_limitation_in_child_context[*": LIMITS,
    "test_threadpool_limitation_in_child_override[*": LIMITS + "; its function is also a local function",
    "test_lambda_expression[None]": CLOSURE,
    "test_lambda_expression[loky]": CLOSURE,
    "test_globals_update_at_each_parallel_call": CLOSURE,
    "test_parallel_byteorder_corruption[*": CLOSURE + " (except the '>' cases: dill loses a non-native byte "
        "order, an engine serializer issue outside the joblib backend)",
    # joblib's or loky's internals.
    "test_error_capture[*": "reads the backend's worker pool by joblib's private names (_pool / _workers); the "
                            "errors it checks (ZeroDivisionError, KeyboardInterrupt raised by the function) are "
                            "checked in tests/frontdoors/test_joblib.py",
    "test_backend_context_manager[parallel_backend-multiprocessing]": CLASS,
    "test_backend_context_manager[parallel_backend-loky]": CLASS,
    "test_backend_context_manager[parallel_config-multiprocessing]": CLASS,
    "test_backend_context_manager[parallel_config-loky]": CLASS,
    "test_backend_hinting_and_constraints[*": CLASS,
    "test_nested_parallelism_limit[parallel_config-loky]": CLASS + " (the nesting levels it lists match)",
    "test_nested_parallelism_limit[parallel_backend-loky]": CLASS + " (the nesting levels it lists match)",
    # Not about our backend.
    "test_nested_loop[back_compat_backend-mpire_fault]":
        "the parent is joblib's real LokyBackend (the test's MyBackend subclasses it): its workers are fresh "
        "interpreters that never imported mpire_fault.joblib, so the name 'mpire_fault' is unknown there "
        "(joblib 1.6 has no entry point for third-party backends)",
    "test_nested_loop[threading-threading]":
        "no mpire_fault code runs in it; fails now and then with SystemError 'AST constructor recursion depth "
        "mismatch', CPython 3.11's ast.parse racing in two threads (joblib's eval_expr of pre_dispatch)",
}


def _excluded_by(key: str, test_id: str) -> bool:
    return test_id == key or (key.endswith("*") and test_id.startswith(key[:-1]))


def _excluded(test_id: str) -> str | None:
    return next((reason for key, reason in EXCLUDED.items() if _excluded_by(key, test_id)), None)


class _ExcludePlugin:
    """Marks the excluded tests skipped, with their reason, and reports ids that no longer exist."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.seen: set[str] = set()

    def pytest_collection_modifyitems(self, config, items) -> None:  # noqa: ANN001 - pytest's hook
        import pytest

        for item in items:
            test_id = item.nodeid.split("::", 1)[-1]
            reason = _excluded(test_id)
            self.seen.update(key for key in EXCLUDED if _excluded_by(key, test_id))
            if self.enabled and reason is not None:
                item.add_marker(pytest.mark.skip(reason=f"mpire_fault: {reason}"))


# --quick: the tests that run on our backend, once each, less the slowest (under a minute on two busy cores,
# against three for the whole module): out go the tests of joblib's other backends alone (threading,
# sequential, the test's loky subclass back_compat_backend), the spawn context (backend11), the repeats of a
# test under "multiprocessing" or a backend instance (backend6-10: with the swap they are the "loky" case
# again), and the ones that start fresh interpreters or race many dispatches.
QUICK = ("not (threading or sequential or back_compat_backend or multiprocessing or backend6 or backend7 or backend8 "
         "or backend9 or backend10 or backend11 or unpicklable_functions_in_args or interactively_defined "
         "or no_blas_crash or dispatch_race_condition)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-k", dest="keyword", default=None, help="run only the tests this pytest -k expression picks")
    parser.add_argument("--quick", action="store_true", help=f"only the tests -k {QUICK!r} picks")
    parser.add_argument("--timeout", type=float, default=60.0, help="per-test timeout in seconds (pytest-timeout)")
    parser.add_argument("--use-dill", action="store_true",
                        help="our backend with use_dill=True (ships lambdas and closures, as loky's cloudpickle does)")
    parser.add_argument("--stock", action="store_true", help="no swap: joblib's own backends, as a baseline")
    args, extra = parser.parse_known_args(argv)

    try:
        spec = importlib.util.find_spec("joblib.test.test_parallel")  # found, not imported: see below
    except ImportError as exc:
        spec = None
        print(f"SKIP: joblib is not importable: {exc}")
    if spec is None or spec.origin is None:
        print("SKIP: this joblib has no joblib/test/test_parallel.py")
        return 0
    from joblib import register_parallel_backend

    from mpire_fault.joblib import MpireFaultBackend

    if not args.stock:
        backend_class = MpireFaultBackend
        if args.use_dill:
            class MpireFaultDillBackend(MpireFaultBackend):
                def __init__(self, *args: object, use_dill: bool = True, **kwargs: object) -> None:
                    super().__init__(*args, use_dill=use_dill, **kwargs)  # type: ignore[arg-type]

            backend_class = MpireFaultDillBackend
        for name in STAND_IN_FOR:
            register_parallel_backend(name, backend_class)
    # test_parallel.py computes its backend lists (and instances) at import, so it is imported after the swap.
    import pytest

    module = spec.origin
    pytest_args = [
        module,
        "-c", os.devnull,  # not our repo's pytest settings (xdist, markers): joblib's module as it is
        "--rootdir", os.path.dirname(module),
        "-p", "no:cacheprovider",
        "-p", "no:randomly",
        "-p", "no:xdist",
        f"--timeout={args.timeout}",
        "-q", "-rfEs",
    ]
    keyword = " and ".join(f"({k})" for k in (QUICK if args.quick else None, args.keyword) if k)
    if keyword:
        pytest_args += ["-k", keyword]
    plugin = _ExcludePlugin(enabled=not args.stock)
    status = pytest.main(pytest_args + extra, plugins=[plugin])
    stale = sorted(set(EXCLUDED) - plugin.seen)
    if stale and not keyword and not args.stock:
        print(f"EXCLUDED names tests this joblib does not have: {stale}")
        return 1
    return int(status)


if __name__ == "__main__":
    sys.exit(main())
