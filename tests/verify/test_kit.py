"""The kit passes on our pool, catches a broken one with a short counterexample, and never hangs on peers."""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import unittest

import pytest

from mpire_fault import WorkerDiedError
from mpire_fault.verify import ADAPTERS, GUARANTEES, REQUIRES, Adapter, Hang, available, check, machine_for
from mpire_fault.verify.adapters import CLOSE_BOUND, REAP_BOUND, MpireFaultAdapter

TestOurPoolAllGuarantees = machine_for(MpireFaultAdapter).TestCase
TestOurPoolAllGuarantees.settings = __import__("hypothesis").settings(
    max_examples=4, stateful_step_count=8, deadline=None, database=None)


# Examples of a second or more each (a slow callback, a stuck task's timeout and grace, slow tasks queued
# before a timed one, a fresh pool whose init fails, a parent program started and killed): two suffice here.
_SLOW_GUARANTEES = {"resolved-once", "hard-timeout", "clock-at-start", "init-gives-up", "parent-death"}


@pytest.mark.parametrize("guarantee", list(GUARANTEES))
def test_our_pool_keeps_every_guarantee(guarantee):
    verdict = check("mpire_fault", guarantee, examples=2 if guarantee in _SLOW_GUARANTEES else 5)
    assert verdict.status == "pass", (verdict.detail, verdict.counterexample)


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_our_pool_with_many_examples():
    for guarantee in GUARANTEES:
        verdict = check("mpire_fault", guarantee, examples=5 if guarantee == "resolved-once" else 15)
        assert verdict.status == "pass", (guarantee, verdict.detail, verdict.counterexample)


class FailsEverythingPendingAdapter(MpireFaultAdapter):
    """A deliberately broken pool: one death fails every task still pending (no isolation, no requeue)."""

    name = "broken"

    def start(self):
        self.deaths_seen = 0
        return super().start()

    def get(self, handle, timeout):
        if self.pool.statistics()["deaths"]:
            handle.wait(timeout)
            raise WorkerDiedError(0, None, -9, task="a pending task, failed with its neighbour")
        return super().get(handle, timeout)


def test_the_kit_catches_a_broken_pool_with_a_short_counterexample(monkeypatch):
    monkeypatch.setitem(ADAPTERS, "broken", FailsEverythingPendingAdapter)
    verdict = check("broken", "apply-isolation", examples=40)
    assert verdict.status == "fail"
    assert "[apply-isolation]" in verdict.detail
    steps = [line for line in verdict.counterexample.splitlines() if "state." in line]
    assert steps and len(steps) <= 6, verdict.counterexample  # shrunk to a few readable steps
    # the death comes from the opening step (a SIGKILLed task beside a plain one) or a later submission
    assert any("start_with_the_fault_under_test" in line or "'sigkill'" in line or "'exit'" in line for line in steps)


class ErrorCallbackGetsNothingAdapter(MpireFaultAdapter):
    """Our pool, except that an error_callback is called with None instead of the error."""

    name = "error-callback-gets-nothing"

    def submit(self, fn, args, callback=None, error_callback=None, timeout=None):
        hook = None if error_callback is None else (lambda error: error_callback(None))
        return super().submit(fn, args, callback=callback, error_callback=hook, timeout=timeout)


class CallbackTwiceAdapter(MpireFaultAdapter):
    """Our pool, except that a callback runs twice, the second time a little after the task answered."""

    name = "callback-twice"

    def submit(self, fn, args, callback=None, error_callback=None, timeout=None):
        def twice(value):
            callback(value)
            threading.Timer(0.05, callback, (value,)).start()

        return super().submit(fn, args, callback=None if callback is None else twice, error_callback=error_callback,
                              timeout=timeout)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("adapter, says", [(ErrorCallbackGetsNothingAdapter, "error_callback got None"),
                                           (CallbackTwiceAdapter, "callback")])
def test_a_hook_called_with_the_wrong_answer_or_twice_breaks_resolved_once(adapter, says):
    verdict = check(adapter.name, "resolved-once", examples=20, adapter_cls=adapter, shrink=False)
    assert verdict.status == "fail" and "[resolved-once]" in verdict.detail and says in verdict.detail, verdict


def test_a_pool_that_hangs_is_a_verdict_not_a_stuck_run():
    verdict = check("multiprocessing", "apply-death-error", examples=5, shrink=False)
    assert verdict.status == "hang" and "never" in verdict.detail
    assert verdict.seconds < 60


# pebble and mpire take about 20 s each: graded in full with `pytest -m slow` and in docs/conformance.md.
@pytest.mark.parametrize("pool", [p if p in ("concurrent.futures", "loky") else pytest.param(p, marks=pytest.mark.slow)
                                  for p in ("concurrent.futures", "loky", "pebble", "mpire") if p in available()])
def test_peers_get_an_honest_verdict_without_hanging_the_suite(pool):
    verdict = check(pool, "map-reuse", examples=5, shrink=False)
    assert verdict.status in ("pass", "fail", "hang", "error")
    assert verdict.seconds < 60


def test_cli_json_and_exit_code(tmp_path):
    out = tmp_path / "v.json"
    done = subprocess.run([sys.executable, "-m", "mpire_fault", "verify", "--pool", "mpire_fault", "--examples", "3",
                           "--guarantee", "map-abort", "--json", str(out)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "| map-abort | pass |" in done.stdout
    assert json.loads(out.read_text())[0]["status"] == "pass"
    bad = subprocess.run([sys.executable, "-m", "mpire_fault", "verify", "--pool", "nope"], capture_output=True,
                         text=True, timeout=60)
    assert bad.returncode == 2 and "unknown pool 'nope'" in bad.stderr


class NeverAnswersAdapter(Adapter):
    """A pool that takes every task and never answers any (no processes at all)."""

    name = "never-answers"

    def start(self):
        return threading.Event()

    def submit(self, fn, args, callback=None, error_callback=None, timeout=None):
        return self.pool

    def get(self, handle, timeout):
        if not handle.wait(timeout):
            raise Hang(f"no answer within {timeout} s")

    def run_map(self, fn, items):
        self.pool.wait(20)

    def shutdown(self):
        self.pool.set()


@pytest.mark.timeout(90)
def test_a_pool_that_never_answers_fails_the_plain_testcase():
    started = time.monotonic()
    case = machine_for(NeverAnswersAdapter).TestCase
    result = unittest.TestResult()
    unittest.defaultTestLoader.loadTestsFromTestCase(case).run(result)
    took = time.monotonic() - started
    assert not result.wasSuccessful()
    assert took < 30, took
    [(_, report)] = result.failures + result.errors
    assert "[hang] never-answers" in report or "[idle-kill]" in report, report[-2000:]


class StubbornAdapter(Adapter):
    """A pool whose shutdown blocks for good and whose worker ignores it."""

    name = "stubborn"

    def start(self):
        self.blocked = threading.Event()
        return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])

    def worker_pids(self):
        return [self.pool.pid]

    def shutdown(self):
        self.blocked.wait(30)


@pytest.mark.timeout(60)
def test_close_is_bounded_even_when_shutdown_blocks_and_workers_stay():
    adapter = StubbornAdapter()
    try:
        started = time.monotonic()
        left = adapter.close()
        took = time.monotonic() - started
        assert left == [adapter.pool.pid]
        assert took < CLOSE_BOUND + REAP_BOUND + 1.0, took
        adapter.pool.wait(5)  # killed: reaped at once
        assert adapter.pool.returncode == -9
    finally:
        adapter.blocked.set()
        if adapter.pool.poll() is None:
            adapter.pool.kill()
            adapter.pool.wait(5)


def test_a_hang_is_reported_within_the_bound():
    verdict = check("multiprocessing", "exactly-once", examples=5)
    assert verdict.status == "hang", verdict
    assert verdict.seconds < 15, verdict.seconds


@pytest.mark.parametrize("guarantee", sorted(REQUIRES))
def test_missing_features_are_unsupported_not_passed(guarantee):
    # the first pool that lacks what the guarantee needs (no pool is started for an unsupported verdict)
    pool = next(name for name, cls in ADAPTERS.items() if REQUIRES[guarantee] - cls.features)
    verdict = check(pool, guarantee, examples=5)
    assert verdict.status == "unsupported" and "has no" in verdict.detail


def test_machine_for_refuses_an_unknown_guarantee():
    with pytest.raises(ValueError, match="unknown guarantee"):
        machine_for(MpireFaultAdapter, "no-such-guarantee")


@pytest.mark.parametrize("pool, guarantee, statuses", [
    ("multiprocessing", "map-error-abort", {"fail"}),  # Pool.map runs every item before it raises
    ("concurrent.futures", "head-only", {"fail"}),  # one death breaks the whole executor
    # pebble has a per-task timeout, so it is graded (random earlier deaths can break its pool); 15 s, so slow
    pytest.param("pebble", "timeout-fires", {"pass", "fail"}, marks=pytest.mark.slow),
])
def test_new_guarantees_grade_peers_honestly(pool, guarantee, statuses):
    if pool not in available():
        pytest.skip(f"{pool} is not installed")
    verdict = check(pool, guarantee, examples=5, shrink=False)
    assert verdict.status in statuses, verdict


def _verify(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "mpire_fault", "verify", *args], capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_self_test_catches_every_mutant():
    """Every catalogue in full (about 140 s on an idle 2-core machine): `pytest -m slow`; CI runs a sample."""
    from mpire_fault.verify.mutants import CATALOGUES

    done = _verify("--self-test", timeout=580)
    assert done.returncode == 0, done.stdout + done.stderr
    for label, catalogue in CATALOGUES.items():
        for name in catalogue:
            assert f"CAUGHT    {name} " in done.stdout, done.stdout
        assert f"catalogue {label}: {len(catalogue)} of {len(catalogue)} mutants caught" in done.stdout


# A sample of the catalogues for the default suite (CI): a mutant of each kind of bug, the quick ones.
_SAMPLE = {"first": ["no-requeue", "idle-death-ignored", "wrong-item", "exit-zero-clean"],
           "second": ["drop-partial-chunk", "exception-wrapped", "died-fields-swapped", "init-error-dropped",
                      "result-segment-kept", "no-pdeathsig"],
           "planted": ["error-callback-gets-value", "callback-exception-escapes", "retry-one-short",
                       "lifespan-one-late"]}


@pytest.mark.timeout(200)
def test_self_test_catches_a_sample_of_the_catalogues():
    names = [name for sample in _SAMPLE.values() for name in sample]
    done = _verify("--self-test", *(arg for name in names for arg in ("--mutant", name)), timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    for label, sample in _SAMPLE.items():
        assert f"catalogue {label}: {len(sample)} of {len(sample)} mutants caught" in done.stdout, done.stdout


@pytest.mark.timeout(90)
def test_self_test_of_one_mutant_names_the_guarantee_and_the_steps(tmp_path):
    out = tmp_path / "self.json"
    done = _verify("--self-test", "--mutant", "wrong-item", "--json", str(out))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "CAUGHT    wrong-item" in done.stdout and "by right-item" in done.stdout
    assert "state.start_with_the_fault_under_test()" in done.stdout
    [entry] = json.loads(out.read_text())
    assert entry["caught"] and entry["verdict"]["guarantee"] == "right-item"
    bad = _verify("--self-test", "--mutant", "nope")
    assert bad.returncode == 2 and "unknown mutant 'nope'" in bad.stderr


def test_a_mutant_patch_is_undone_afterwards():
    from mpire_fault._core import arguments, chunking, remote
    from mpire_fault._core.results import AsyncResult
    from mpire_fault._engine import settlement, watchdog
    from mpire_fault._engine.answers import Answers
    from mpire_fault._engine.child import worker
    from mpire_fault._engine.jobs import ApplyJob, MapJob
    from mpire_fault._engine.restarts import Restarts
    from mpire_fault._engine.settlement import Settlement
    from mpire_fault._engine.slots import WorkerSlot
    from mpire_fault._engine.supervisor import Supervisor
    from mpire_fault._engine.wire import shm
    from mpire_fault.verify.mutants import ALL_MUTANTS

    holders = (AsyncResult, Supervisor, Settlement, WorkerSlot, MapJob, Answers, Restarts, watchdog.Watchdog,
               shm.Shared, chunking, arguments, remote, settlement, worker, worker._Worker, ApplyJob)

    def snapshot():
        return [dict(vars(holder)) for holder in holders]

    before = snapshot()
    for mutant in ALL_MUTANTS.values():
        with mutant.patch():
            assert snapshot() != before, mutant.name  # the patch is really applied...
    assert snapshot() == before  # ...and really undone


def test_a_mutant_whose_target_moved_is_an_error_of_the_kit(monkeypatch, capsys):
    from mpire_fault.verify import cli, mutants
    from mpire_fault.verify.mutant_base import Mutant, patched_at

    def moved():
        """Patches a method that a refactor renamed."""
        return patched_at("mpire_fault._engine.settlement:Settlement.settle_the_head", lambda original: original)

    ghost = Mutant("ghost", moved, ("map-complete",))
    outcome = mutants.hunt(ghost, examples=1)
    assert not outcome.caught and outcome.verdict is None and "settle_the_head" in (outcome.error or "")
    monkeypatch.setitem(mutants.SECOND, "ghost", ghost)
    monkeypatch.setitem(mutants.ALL_MUTANTS, "ghost", ghost)
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    assert cli.main(parser.parse_args(["--self-test", "--mutant", "ghost"])) == 1
    out = capsys.readouterr().out
    assert "ERROR     ghost" in out and "ERROR (cannot be applied): ghost" in out


def test_a_mutant_that_sets_a_renamed_attribute_is_an_error_not_a_survivor():
    """Setting an attribute the engine no longer has would add one nothing reads: the mutant must say so."""
    from mpire_fault._engine.slots import WorkerSlot
    from mpire_fault.verify.mutant_base import MutantTargetMissing, assign

    slot = WorkerSlot(0)
    slot.start_failures = 2
    assign(slot, "start_failures", 0)
    assert slot.start_failures == 0
    with pytest.raises(MutantTargetMissing, match="'failures'"):
        assign(slot, "failures", 0)


@pytest.mark.parametrize("option", ["--json", "--markdown"])
def test_report_paths_are_checked_before_the_run(tmp_path, option):
    private = tmp_path / "tmp"  # the run's own temp dir: nothing may be left in it
    private.mkdir()
    env = {**os.environ, "TMPDIR": str(private)}
    for path, reason in [(str(tmp_path), "is a directory"), (str(tmp_path / "no" / "v.out"), "does not exist")]:
        started = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "mpire_fault", "verify", "--examples", "50", option, path],
                              capture_output=True, text=True, timeout=60, env=env)
        assert done.returncode == 2, done.stderr
        assert option in done.stderr and reason in done.stderr
        assert "Traceback" not in done.stderr and done.stdout == ""
        assert time.monotonic() - started < 20  # refused at once, not after grading
    assert list(private.iterdir()) == []


@pytest.mark.parametrize("pool, extra", [("mpire", "peers"), ("loky", "peers"), ("pebble", "peers"),
                                         ("dask", "dask")])
def test_a_missing_peer_names_the_extra_that_installs_it(monkeypatch, capsys, pool, extra):
    import importlib.util

    from mpire_fault.verify import cli

    real = importlib.util.find_spec
    absent = {"mpire", "loky", "pebble", "distributed"}
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name in absent else real(name, *a))
    assert pool not in available() and "mpire_fault" in available()
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    assert cli.main(parser.parse_args(["--pool", pool])) == 2
    assert f"pip install 'mpire_fault[{extra}]'" in capsys.readouterr().err


def test_the_contract_numbers_every_guarantee_the_kit_grades():
    import re
    from pathlib import Path

    page = (Path(__file__).resolve().parents[2] / "docs" / "guarantees.md").read_text()
    rows = re.findall(r'^\| <a id="g(\d+)"></a>G(\d+) \| `([a-z-]+)` \|', page, flags=re.MULTILINE)
    assert all(anchor == number for anchor, number, _ in rows)
    assert [(int(number), name) for _, number, name in rows] == list(enumerate(GUARANTEES, start=1))


def test_an_adapter_may_only_claim_features_the_kit_knows():
    with pytest.raises(TypeError, match="task_timout"):
        type("Typo", (Adapter,), {"features": frozenset({"task_timout"})})


def test_graded_side_by_side_in_shards_the_table_is_the_same(tmp_path):
    """--jobs 3: map-abort in two shards and right-item each in its own process; verdicts in table order."""
    out = tmp_path / "v.json"
    done = _verify("--pool", "mpire_fault", "--examples", "2", "--jobs", "3", "--guarantee", "right-item",
                   "--guarantee", "map-abort", "--json", str(out), timeout=110)
    assert done.returncode == 0, done.stdout + done.stderr
    assert [v["guarantee"] for v in json.loads(out.read_text())] == ["right-item", "map-abort"]
    assert "| map-abort | pass |" in done.stdout and "| right-item | pass |" in done.stdout
    assert _verify("--jobs", "0").returncode == 2


def test_a_shard_that_fails_fails_the_guarantee():
    from mpire_fault.verify.conformance import Verdict, merge

    passed = Verdict("p", "map-abort", "pass", "", "", 3.0)
    failed = Verdict("p", "map-abort", "fail", "[map-abort] items [1] started after the call had raised", "steps", 2.0)
    merged = merge([passed, failed])
    assert (merged.status, merged.detail, merged.counterexample, merged.seconds) == (
        "fail", failed.detail, "steps", 3.0)
    assert merge([passed, Verdict("p", "map-abort", "hang", "x", "", 1.0), failed]).status == "hang"
    assert merge([passed, passed]).status == "pass"


def test_a_grading_process_that_dies_is_an_error_verdict():
    from mpire_fault.verify.conformance import check_apart

    verdict = check_apart("no-such-pool", "map-abort", 1, timeout=60)
    assert verdict.status == "error" and "the grading process failed" in verdict.detail


def test_a_grading_process_gives_its_workers_no_main_module_to_run(monkeypatch):
    """A spawn or forkserver worker runs its parent's main module again first; the grading process has none
    (``-c``), so workers do not import Hypothesis and the kit (which halved a Dask grading's CPU)."""
    from mpire_fault.verify import conformance

    commands = []

    def record(command, **_):
        commands.append(command)
        raise OSError("recorded")

    monkeypatch.setattr(conformance.subprocess, "Popen", record)
    with pytest.raises(OSError, match="recorded"):
        conformance.check_apart("mpire_fault", "map-abort", 1, timeout=60)
    monkeypatch.undo()
    command = commands[0]
    probe = ("import multiprocessing.spawn as spawn; "
             "print(sorted(key for key in spawn.get_preparation_data('w') if 'main' in key))")
    assert command[1] == "-c" and "grading_main" in command[2]
    shown = subprocess.run([*command[:2], probe], capture_output=True, text=True, timeout=60)  # -c, another code
    assert shown.stdout.strip() == "[]", shown


class ReuseHangsAdapter(MpireFaultAdapter):
    """Our pool, broken so that every map after an aborted one blocks for good (the map-reuse hang)."""

    name = "reuse-hangs"

    def start(self):
        self.aborted = False
        self.released = threading.Event()
        return super().start()

    def run_map(self, fn, items):
        if self.aborted:
            self.released.wait(60)
        try:
            return super().run_map(fn, items)
        except Exception:
            self.aborted = True
            raise

    def shutdown(self):
        self.released.set()
        super().shutdown()


class SilentPidsAdapter(MpireFaultAdapter):
    """Our pool, except that listing its workers never answers (as a cluster that stopped answering)."""

    name = "silent-pids"

    def worker_pids(self):
        threading.Event().wait(60)
        return []


@pytest.mark.timeout(90)
@pytest.mark.parametrize("adapter, guarantee", [(ReuseHangsAdapter, "map-reuse"), (SilentPidsAdapter, "idle-kill")])
def test_a_hang_outside_submit_and_get_is_a_bounded_verdict(monkeypatch, adapter, guarantee):
    monkeypatch.setitem(ADAPTERS, adapter.name, adapter)
    verdict = check(adapter.name, guarantee, examples=3, shrink=False)
    assert verdict.status == "hang", verdict
    assert verdict.seconds < 20, verdict.seconds


def test_one_table_from_the_verdicts_of_several_runs(tmp_path):
    from mpire_fault.verify.conformance import Verdict, as_json

    runs = []
    for pool, status in (("mpire_fault", "pass"), ("dask", "fail")):
        path = tmp_path / f"{pool}.json"
        path.write_text(json.dumps(as_json([Verdict(pool, "exactly-once", status, "ran twice", "state.x()", 1.0)])))
        runs += ["--from-json", str(path)]
    report = tmp_path / "conformance.md"
    done = _verify(*runs, "--markdown", str(report))
    assert done.returncode == 1, done.stderr  # one verdict is not a pass
    assert "| exactly-once | pass | fail |" in done.stdout
    text = report.read_text()
    assert "### dask: exactly-once (fail)" in text and "`mpire_fault.json`, `dask.json`" in text
    bad = tmp_path / "bad.json"
    bad.write_text('[{"pool": "x"}]')
    done = _verify("--from-json", str(bad))
    assert done.returncode == 2 and "not a verdict list" in done.stderr


@pytest.mark.timeout(120)
def test_plain_dask_reruns_are_a_failed_exactly_once_not_a_hang():
    """Dask reruns a task whose worker died (allowed-failures): the markers prove the second run before
    the kit's bound runs out, so the verdict says so instead of a bare hang."""
    if "dask" not in available():
        pytest.skip("distributed is not installed")
    verdict = check("dask", "exactly-once", examples=2, shrink=False)
    assert verdict.status == "fail" and "ran more than once" in verdict.detail, verdict


def test_the_mutation_score_is_given_per_catalogue(capsys):
    from mpire_fault.verify import score

    score.report({"wrong-item": True, "no-requeue": False, "drop-partial-chunk": True}, "pytest tests/pool")
    lines = capsys.readouterr().out.splitlines()
    assert lines == ["catalogue first: 1 of 2 mutants caught by pytest tests/pool",
                     "catalogue second: 1 of 1 mutants caught by pytest tests/pool",
                     "2 of 3 mutants caught by pytest tests/pool"]


def test_the_score_names_the_test_that_caught_a_mutant():
    from mpire_fault.verify.score import first_failure

    output = ("..F\nERROR    distributed.scheduler:scheduler.py:6419 Couldn't gather keys\n"
              "=== short test summary info ===\n"
              "FAILED tests/pool/test_map.py::test_chunks[3] - AssertionError: 9 != 10\n"
              "ERROR tests/pool/test_shm.py::test_segments - OSError\n!!! stopping after 1 failures !!!\n")
    assert first_failure(output) == "tests/pool/test_map.py::test_chunks[3] - AssertionError: 9 != 10"
    assert first_failure("10 passed in 1.2s\n") == ""


@pytest.mark.timeout(90)
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL])
def test_killing_verify_ends_its_gradings_and_their_pools(signum):
    """A verify run ended from outside (a CI time limit) leaves no grading, pool worker or tracker running,
    and no marker directory of its examples."""
    import tempfile

    import psutil

    from mpire_fault.verify.machines import marker_prefix, marker_root

    cli = subprocess.Popen([sys.executable, "-m", "mpire_fault", "verify", "--pool", "mpire_fault", "--jobs", "2",
                            "--examples", "400", "--guarantee", "apply-isolation", "--guarantee", "exactly-once"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seen: dict[int, psutil.Process] = {}
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:  # until both gradings run pools of their own
            for proc in psutil.Process(cli.pid).children(recursive=True):
                seen.setdefault(proc.pid, proc)
            gradings = [p for p in seen.values() if p.is_running() and p.ppid() == cli.pid]
            if len(gradings) == 2 and all(p.children() for p in gradings):
                gradings_pids = [p.pid for p in gradings]
                break
            time.sleep(0.1)
        else:
            pytest.fail("the gradings never started their pools")
        for proc in psutil.Process(cli.pid).children(recursive=True):
            seen.setdefault(proc.pid, proc)
        os.kill(cli.pid, signum)
        cli.wait(10)
        gone, alive = psutil.wait_procs(list(seen.values()), timeout=10)
        assert not alive, f"left running after verify got {signal.Signals(signum).name}: {alive}"
        root = marker_root() or tempfile.gettempdir()
        kept = [name for name in os.listdir(root) for pid in gradings_pids if name.startswith(marker_prefix(pid))]
        assert not kept, f"marker directories left after verify got {signal.Signals(signum).name}: {kept}"
    finally:
        for proc in seen.values():
            with contextlib.suppress(psutil.Error):
                proc.kill()
        cli.kill()
        cli.wait(10)
