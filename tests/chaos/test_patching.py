"""chaos.patching: foreign pools struck at their submit boundary, unchanged when no fault fires, restored after."""
from __future__ import annotations

import concurrent.futures
import multiprocessing
import multiprocessing.pool
import subprocess
import sys
import textwrap

import pytest

from mpire_fault.chaos import Chaos
from mpire_fault.chaos.patching import Patches, parse_kinds


def square(x):
    return x * x


def add(a, b=0):
    return a + b


def fail(x):
    raise LookupError(f"no {x}")


def _attributes():
    classes = [multiprocessing.pool.Pool, concurrent.futures.ProcessPoolExecutor]
    return {(cls, name): value for cls in classes for name, value in vars(cls).items()}


def test_install_and_uninstall_restore_the_exact_attributes(tmp_path):
    before = _attributes()
    chaos = Chaos("task.start[task=99]=sigkill", seed=1, state_dir=str(tmp_path))
    with Patches(chaos, ["multiprocessing", "concurrent.futures"]):
        assert _attributes() != before
        assert multiprocessing.pool.Pool.apply_async.__mp_chaos_original__ is before[
            (multiprocessing.pool.Pool, "apply_async")]
    assert _attributes() == before


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_results_and_errors_unchanged_when_no_fault_fires(tmp_path, method):
    chaos = Chaos("task.start[task=99]=sigkill", seed=1, state_dir=str(tmp_path))
    context = multiprocessing.get_context(method)
    with Patches(chaos, ["multiprocessing", "concurrent.futures"]):
        with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as executor:
            assert executor.submit(add, 1, b=2).result(timeout=60) == 3
            assert list(executor.map(add, [1, 2], [3, 4], timeout=60)) == [4, 6]
            with pytest.raises(LookupError, match="no 5"):
                executor.submit(fail, 5).result(timeout=60)
        with context.Pool(1) as pool:
            assert pool.starmap(add, [(1, 2), (3, 4)]) == [3, 7]
            assert list(pool.imap(square, range(3))) == [0, 1, 4]
        with multiprocessing.pool.ThreadPool(1) as threads:  # threads are the caller's: never struck
            assert threads.apply(square, (3,)) == 9
    assert chaos.journal() == []


def test_a_fault_strikes_the_task_it_names_with_its_pool_kind(tmp_path):
    chaos = Chaos("task.start[task=1]=raise(KeyError)", seed=1, state_dir=str(tmp_path))
    with Patches(chaos, ["concurrent.futures"]):
        with concurrent.futures.ProcessPoolExecutor(1) as executor:
            futures = [executor.submit(square, x) for x in range(3)]
            assert futures[0].result(timeout=60) == 0
            with pytest.raises(KeyError):
                futures[1].result(timeout=60)
            assert futures[2].result(timeout=60) == 4
            # a map call numbers its own items from 0 (in a call of its own): its item 1 is task 1 too
            with pytest.raises(KeyError):
                list(executor.map(square, range(3), timeout=60))
    assert [(e.site, e.task_index, e.pool) for e in chaos.journal()] == [
        ("task.start", 1, "concurrent.futures"), ("task.start", 1, "concurrent.futures")]


def test_a_module_imported_after_install_is_patched_then_restored():
    code = textwrap.dedent("""
        import sys
        from mpire_fault.chaos import Chaos
        from mpire_fault.chaos.patching import Patches
        assert "multiprocessing.pool" not in sys.modules
        patches = Patches(Chaos("task.start=off", seed=1), ["multiprocessing"]).install()
        import multiprocessing.pool
        original = multiprocessing.pool.Pool.apply_async.__mp_chaos_original__
        assert type(multiprocessing.pool.__loader__).__name__ == "SourceFileLoader"
        patches.uninstall()
        assert multiprocessing.pool.Pool.apply_async is original
        print("ok")
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "ok", done.stderr


def test_kinds():
    assert parse_kinds("multiprocessing, concurrent.futures") == ("multiprocessing", "concurrent.futures")
    assert "mpire_fault" in parse_kinds(None)
    with pytest.raises(ValueError, match="unknown pool kind 'dask'"):
        parse_kinds("multiprocessing,dask")
