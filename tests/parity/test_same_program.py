"""One ordinary MPIRE program, run under MPIRE 2.10.2 and under mpire_fault: same results, same catchable errors.

Each step gets a fresh pool on both sides (MPIRE 2.10.2 has bugs when pools
are reused after errors; we are not measuring those here).
"""
from __future__ import annotations

import pytest

from mpire_fault import WorkerPool as OurPool

from . import tasks

mpire = pytest.importorskip("mpire")
numpy = pytest.importorskip("numpy")

pytestmark = pytest.mark.timeout(180)


def _outcome(step, pool_cls, start_method):
    """The value of one step, or the builtin error types it raised (what ``except X`` in user code sees)."""
    try:
        return ("value", step(pool_cls, start_method))
    except Exception as exc:  # noqa: BLE001 - the type is the outcome
        caught = sorted(t.__name__ for t in (ValueError, TimeoutError, RuntimeError, KeyError) if isinstance(exc, t))
        return ("error", caught)


def map_with_shared_objects(pool_cls, start_method):
    with pool_cls(2, start_method=start_method, shared_objects={"a": 1, "b": 2}) as pool:
        return pool.map(tasks.shared_lookup, ["a", "b", "a"])


def imap_with_worker_state(pool_cls, start_method):
    with pool_cls(2, start_method=start_method, use_worker_state=True) as pool:
        return sorted(pool.imap_unordered(tasks.state_counter, range(6)))


def apply_async_values(pool_cls, start_method):
    with pool_cls(2, start_method=start_method) as pool:
        results = [pool.apply_async(tasks.square, (i,)) for i in range(5)]
        return [r.get() for r in results]


def worker_ids(pool_cls, start_method):
    with pool_cls(2, start_method=start_method, pass_worker_id=True) as pool:
        return set(pool.map(tasks.worker_of, range(20), chunk_size=1)) <= {0, 1}


def init_and_exit_hooks(pool_cls, start_method):
    with pool_cls(2, start_method=start_method, pass_worker_id=True) as pool:
        values = pool.map(tasks.with_id, range(4), worker_exit=tasks.exit_value)
        return [v[1] for v in values], sorted(pool.get_exit_results())


def init_raises_value_error(pool_cls, start_method):
    with pool_cls(2, start_method=start_method) as pool:
        return pool.map(tasks.square, range(4), worker_init=tasks.raise_value_error)


def task_raises_key_error(pool_cls, start_method):
    with pool_cls(2, start_method=start_method, shared_objects={}) as pool:
        return pool.map(tasks.read_shared, [0], chunk_size=1)  # {}[0] -> KeyError


def task_timeout(pool_cls, start_method):
    with pool_cls(2, start_method=start_method) as pool:
        return pool.map(tasks.sleep_then, [(5, 1)], task_timeout=0.5)


def numpy_input(pool_cls, start_method):
    with pool_cls(2, start_method=start_method) as pool:
        array = numpy.arange(40).reshape(20, 2)
        joined = pool.map(tasks.double, array)
        parts = pool.map(tasks.chunk_shape, array, concatenate_numpy_output=False, n_splits=3)
        return joined.tolist(), parts


STEPS = [map_with_shared_objects, imap_with_worker_state, apply_async_values, worker_ids, init_and_exit_hooks,
         init_raises_value_error, task_raises_key_error, task_timeout, numpy_input]


@pytest.mark.parametrize("start_method", ["fork", "threading"])
@pytest.mark.parametrize("step", STEPS, ids=lambda step: step.__name__)
def test_the_same_program_behaves_the_same(step, start_method):
    theirs = _outcome(step, mpire.WorkerPool, start_method)
    ours = _outcome(step, OurPool, start_method)
    assert ours[0] == theirs[0]
    if ours[0] == "value":
        assert ours == theirs
    else:  # every builtin type user code catches for MPIRE catches ours too (ours may be more, e.g. RuntimeError)
        assert set(theirs[1]) <= set(ours[1]), (ours, theirs)
