"""Every backend of WorkerPool honours each constructor option, or refuses it by name: never a silent ignore.

The walk starts from WorkerPool's own signature, so a new option (or
method) fails here until every backend declares it: in ``REFUSED`` (then a
non-default value must raise a ValueError naming the option) or honoured
(then its behavioural probe below must pass on that backend). It lives in
the Dask suite for the Dask module's shared cluster and its process
bookkeeping; the local backend runs the same probes.
"""
from __future__ import annotations

import functools
import inspect
import os
import re
import time
from collections.abc import Callable
from typing import Any

import conformance_tasks as tasks
import pytest

from mpire_fault import RestartBackoff, TaskTimeoutError, WorkerDiedError, WorkerInitError, WorkerPool, backends
from mpire_fault._core.contract import PoolBackend

OPTIONS = [name for name in inspect.signature(WorkerPool.__init__).parameters
           if name not in ("self", "backend", "address")]

# A value other than WorkerPool's default, for each option (the refusal check gives it to the constructor).
NON_DEFAULT: dict[str, Any] = {
    "n_jobs": 1, "daemon": False, "cpu_ids": [0], "shared_objects": {"k": 1}, "pass_worker_id": True,
    "use_worker_state": True, "start_method": "spawn", "keep_alive": True, "use_dill": True,
    "enable_insights": True, "order_tasks": True, "max_worker_memory": 100 << 20, "max_task_retries": 1,
    "restart_backoff": RestartBackoff(max_failures=2), "chaos": "task.start[task=0]=raise(ValueError)",
    "chaos_seed": 7, "timeout_grace": 0.5, "event_log": print,
}

Make = Callable[..., Any]


def _files(path: str) -> int:
    return len(os.listdir(path))


# ---------------------------------------------------------------------- one probe per option
def probe_n_jobs(make: Make, backend: str, tmp: str) -> None:
    with make(n_jobs=1) as pool:
        assert pool.map(tasks.identity, range(6)) == list(range(6))
        assert pool.statistics().n_jobs == 1
        if backend == backends.LOCAL:
            assert len(set(pool.map(tasks.pid, range(6)))) == 1


def probe_daemon(make: Make, backend: str, tmp: str) -> None:
    with make(daemon=False) as pool:
        assert not any(pool.map(tasks.daemonic, range(4)))
    with make() as pool:
        assert all(pool.map(tasks.daemonic, range(4)))


def probe_cpu_ids(make: Make, backend: str, tmp: str) -> None:
    with make(n_jobs=1, cpu_ids=[0]) as pool:
        assert pool.apply(tasks.affinity) == [0]


def probe_shared_objects(make: Make, backend: str, tmp: str) -> None:
    with make(shared_objects={"k": 1}) as pool:
        assert pool.apply(tasks.arguments, (5,)) == (({"k": 1}, 5), {})


def probe_pass_worker_id(make: Make, backend: str, tmp: str) -> None:
    with make(pass_worker_id=True) as pool:
        (worker_id, value), _ = pool.apply(tasks.arguments, (5,))
        assert worker_id in (0, 1) and value == 5


def probe_use_worker_state(make: Make, backend: str, tmp: str) -> None:
    with make(use_worker_state=True) as pool:
        (state, value), _ = pool.apply(tasks.arguments, (5,))
        assert isinstance(state, dict) and value == 5


def probe_start_method(make: Make, backend: str, tmp: str) -> None:
    tasks.FORKED = 1  # inherited by a forked worker only
    try:
        with make(start_method="spawn") as pool:
            assert pool.map(tasks.forked, range(2)) == [0, 0]
        with make() as pool:
            assert pool.map(tasks.forked, range(2)) == [1, 1]
    finally:
        tasks.FORKED = 0


def probe_keep_alive(make: Make, backend: str, tmp: str) -> None:
    for keep_alive in (True, False):
        markers = os.path.join(tmp, f"keep-{keep_alive}")
        os.mkdir(markers)
        init = functools.partial(tasks.mark_init, markers)
        with make(keep_alive=keep_alive) as pool:
            pool.map(tasks.pid, range(8), worker_init=init)
            first = _files(markers)
            pool.map(tasks.pid, range(8), worker_init=init)
            assert (_files(markers) == first) is keep_alive, (keep_alive, first, _files(markers))


def probe_use_dill(make: Make, backend: str, tmp: str) -> None:
    with make(use_dill=True) as pool:
        assert pool.apply(lambda: 7) == 7
    if backend == backends.LOCAL:  # Dask's default codec is cloudpickle, which takes lambdas too
        with make() as pool, pytest.raises(Exception, match="(?i)pickl|lambda"):
            pool.apply(lambda: 7)


def probe_enable_insights(make: Make, backend: str, tmp: str) -> None:
    with make(enable_insights=True, keep_alive=True) as pool:
        pool.map(tasks.identity, range(10))
        assert sum(pool.get_insights()["n_completed_tasks"]) == 10
    with make() as pool:
        assert pool.get_insights() == {}


def probe_order_tasks(make: Make, backend: str, tmp: str) -> None:
    with make(order_tasks=True, pass_worker_id=True) as pool:
        calls = pool.map(tasks.arguments, range(4), chunk_size=1)
        assert [args[0] for args, _ in calls] == [0, 1, 0, 1]


def probe_max_worker_memory(make: Make, backend: str, tmp: str) -> None:
    with make(n_jobs=1, max_worker_memory=100 << 20) as pool, pytest.raises(WorkerDiedError) as died:
        pool.apply(tasks.grow, (400,))
    assert died.value.oom


def probe_max_task_retries(make: Make, backend: str, tmp: str) -> None:
    for retries in (1, 0):
        markers = os.path.join(tmp, f"retries-{retries}")
        os.mkdir(markers)
        with make(max_task_retries=retries) as pool:
            if retries:
                assert pool.apply(tasks.dies_first_time, (markers,)) == "second run"
            else:
                with pytest.raises(WorkerDiedError):
                    pool.apply(tasks.dies_first_time, (markers,))
        assert _files(markers) == retries + 1


def probe_restart_backoff(make: Make, backend: str, tmp: str) -> None:
    markers = os.path.join(tmp, "inits")
    os.mkdir(markers)
    backoff = RestartBackoff(max_failures=2, initial_delay=0.01)
    with make(n_jobs=1, restart_backoff=backoff) as pool, pytest.raises(WorkerInitError):
        pool.apply(tasks.identity, (1,), worker_init=functools.partial(tasks.counted_init, markers))
    assert _files(markers) == 2


def probe_chaos(make: Make, backend: str, tmp: str) -> None:
    with make(chaos="task.start[task=0]=raise(ValueError)") as pool:
        with pytest.raises(ValueError):
            pool.apply(tasks.identity, (1,))
        assert pool.apply(tasks.identity, (2,)) == 2


def probe_chaos_seed(make: Make, backend: str, tmp: str) -> None:
    with make(chaos="task.start[task=0]=raise(ValueError)", chaos_seed=7) as pool:
        with pytest.raises(ValueError):
            pool.apply(tasks.identity, (1,))
        assert [entry.seed for entry in pool.chaos_journal()] == [7]


def probe_timeout_grace(make: Make, backend: str, tmp: str) -> None:
    with make(n_jobs=1, timeout_grace=0.3) as pool:
        began = time.monotonic()
        with pytest.raises((TaskTimeoutError, WorkerDiedError)):
            pool.apply(tasks.ignore_interrupts, (30,), task_timeout=0.3)
        # the default grace is 5 s: the hard kill came after the 0.3 s given
        assert time.monotonic() - began < 4


def probe_event_log(make: Make, backend: str, tmp: str) -> None:
    events: list[dict] = []
    with make(event_log=events.append) as pool:
        pool.map(tasks.identity, range(3))
    assert "worker_started" in {event["kind"] for event in events}


PROBES: dict[str, Callable[[Make, str, str], None]] = {
    name[len("probe_"):]: function for name, function in globals().items() if name.startswith("probe_")
}


# ---------------------------------------------------------------------- the walk
@pytest.fixture(params=list(backends.BACKENDS))
def backend(request) -> str:
    missing = backends.BACKENDS[request.param].missing()
    if missing:
        pytest.skip(missing)
    return request.param


@pytest.fixture
def make(backend: str, request) -> Make:
    """Pools of ``backend`` with 2 workers; the Dask ones share the module's cluster."""
    extra: dict[str, Any] = {}
    if backend == backends.DASK:
        extra["address"] = request.getfixturevalue("dask_client")

    def factory(**options: Any) -> Any:
        return WorkerPool(**{"n_jobs": 2, **options}, backend=backend, **extra)

    return factory


def test_every_option_of_workerpool_has_a_probe_and_a_non_default_value():
    assert sorted(PROBES) == sorted(OPTIONS)
    assert sorted(NON_DEFAULT) == sorted(OPTIONS)


def test_every_backend_takes_every_option_and_method_of_workerpool(backend):
    cls = backends.BACKENDS[backend].load()
    assert issubclass(cls, PoolBackend) and not inspect.isabstract(cls)
    assert set(OPTIONS) <= set(inspect.signature(cls.__init__).parameters)
    assert cls.REFUSED <= set(OPTIONS) | {"address"}
    for name, member in inspect.getmembers(WorkerPool):
        if name.startswith("_") or not callable(member):
            continue
        theirs = getattr(cls, name, None)
        assert theirs is not None, f"backend {backend!r} lacks {name}()"
        assert list(inspect.signature(theirs).parameters) == list(inspect.signature(member).parameters), name


@pytest.mark.timeout(90)
@pytest.mark.parametrize("option", OPTIONS)
def test_each_option_is_honoured_or_refused_by_name(backend, make, option, tmp_path):
    cls = backends.BACKENDS[backend].load()
    if backend == backends.DASK and option == "max_worker_memory":
        # on a cluster the pool does not own, the workers' memory limit is the cluster's
        with pytest.raises(ValueError, match=re.escape(option)):
            make(**{option: NON_DEFAULT[option]})
        return
    if option in cls.REFUSED:
        with pytest.raises(ValueError, match=re.escape(option)):
            make(**{option: NON_DEFAULT[option]})
        return
    PROBES[option](make, backend, str(tmp_path))
