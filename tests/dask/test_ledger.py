"""The ledger's decisions on their own, against a stand-in scheduler (no cluster, no processes)."""
from __future__ import annotations

import asyncio
import os
import time
from types import SimpleNamespace

import pytest

pytest.importorskip("distributed")

from mpire_fault.dask_backend.ledger import KEY_PREFIX, MAX_INIT_FAILURES, RERUN, Ledger  # noqa: E402
from mpire_fault.dask_backend.witness import Witness, last_words  # noqa: E402

KEY = f"{KEY_PREFIX}0123456789ab-map-0-0"
A, B = "tcp://127.0.0.1:1001", "tcp://127.0.0.1:1002"


def _ledger(processing_on: str | None = A) -> tuple[Ledger, SimpleNamespace]:
    where = SimpleNamespace(address=processing_on) if processing_on else None
    task = SimpleNamespace(suspicious=0, processing_on=where, annotations=None)
    scheduler = SimpleNamespace(tasks={KEY: task}, allowed_failures=3, handlers={}, stream_handlers={},
                                nanny_plugins={}, workers={A: SimpleNamespace(name=0), B: SimpleNamespace(name=1)})
    ledger = Ledger()
    asyncio.run(ledger.start(scheduler))
    return ledger, task


def _claim(ledger: Ledger, worker: str = A, retries: int = 0, phase: str = "task", session: str | None = None):
    return asyncio.run(ledger.claim(KEY, worker, 100, retries, phase, session))


def test_last_attempt_is_armed_so_its_death_errs_at_once():
    ledger, task = _ledger()
    assert _claim(ledger)["run"]
    assert task.suspicious == 3  # one more death and Dask errs it (suspicious > allowed_failures)


def test_an_attempt_with_reruns_left_or_still_starting_is_not_armed():
    ledger, task = _ledger()
    assert _claim(ledger, retries=1)["run"]
    assert task.suspicious == 0
    ledger, task = _ledger()
    assert _claim(ledger, phase="init", session="s")["run"]
    assert task.suspicious == 0
    ledger.set_phase(KEY, "task")  # the worker started: now it is the task's run
    assert task.suspicious == 3


def test_a_task_not_running_where_it_claimed_is_not_armed():
    ledger, task = _ledger(processing_on=B)
    assert _claim(ledger, worker=A)["run"]
    assert task.suspicious == 0


def test_a_death_counted_against_a_task_that_was_not_running_is_undone():
    ledger, task = _ledger()
    task.suspicious = 1  # Dask counted the death of a worker that only held it
    ledger.transition(KEY, "processing", "released")
    assert task.suspicious == 0
    assert _claim(ledger)["run"]
    task.suspicious += 1  # the armed task's own death is not undone
    ledger.transition(KEY, "processing", "released")
    assert task.suspicious == 4


def test_a_forgotten_key_never_runs_again():
    """A cancelled task a worker had already started (or was recomputing) must not claim afresh."""
    ledger, _ = _ledger()
    assert _claim(ledger)["run"]
    ledger.done(KEY, ("ok", b""))
    ledger.transition(KEY, "memory", "forgotten")
    assert KEY not in ledger.claims
    assert _claim(ledger, worker=B) == {"run": False, "why": "forgotten"}


def test_a_rerun_after_a_death_is_refused():
    ledger, _ = _ledger()
    assert _claim(ledger)["run"]
    answer = _claim(ledger, worker=B)
    assert not answer["run"] and answer["why"] == "task" and answer["deaths"][0]["address"] == A


def test_start_up_failures_give_up_after_three_in_a_row():
    ledger, _ = _ledger()
    assert _claim(ledger, phase="init", session="s")["run"]
    answers = [ledger.init_failed(KEY, "s", b"error", A, 100) for _ in range(MAX_INIT_FAILURES)]
    assert [a["run"] for a in answers] == [True] * (MAX_INIT_FAILURES - 1) + [False]
    assert answers[-1]["why"] == "init" and answers[-1]["init_error"] == b"error"
    assert not _claim(ledger, phase="init", session="s")["run"]  # the session gave up: its next task too


def test_a_successful_start_ends_the_failures_in_a_row():
    ledger, _ = _ledger()
    assert _claim(ledger, phase="init", session="s")["run"]
    for _ in range(MAX_INIT_FAILURES - 1):
        assert ledger.init_failed(KEY, "s", b"error", A, 100)["run"]
    ledger.set_phase(KEY, "task")
    assert "s" not in ledger.init_failures


def test_a_finished_task_is_disarmed():
    """Its worker may die before Dask hears of the result: that must not err a task that finished."""
    ledger, task = _ledger()
    assert _claim(ledger)["run"]
    ledger.done(KEY, ("ok", b"value"))
    assert task.suspicious == 0
    assert _claim(ledger, worker=B) == {"run": False, "why": "done", "outcome": ("ok", b"value")}


def _removed_while_processing(ledger: Ledger, worker: str = A) -> None:
    """What the scheduler does when ``worker`` dies while ``KEY`` is processing there."""
    ledger.transition(KEY, "processing", "released", stimulus_id="remove-1")
    ledger.remove_worker(ledger.scheduler, worker, stimulus_id="remove-1")


def test_a_task_taken_off_a_worker_is_marked_to_claim_next_time():
    ledger, task = _ledger()
    _removed_while_processing(ledger)
    assert task.annotations == {RERUN: True}  # Dask sends these with the task: its next run waits for the claim
    assert ledger.suspects[KEY] == [A]


def test_a_start_lost_with_its_worker_is_learnt_from_the_nannys_report():
    """The one-way start message never arrived; the nanny's report of the dead worker's last words names the
    task: its rerun is refused, as if the ledger had heard of the start."""
    ledger, _ = _ledger()
    _removed_while_processing(ledger)
    ledger.record_exit(A, -9, pid=123, running=[KEY])
    answer = _claim(ledger, worker=B)
    assert not answer["run"] and answer["deaths"] == [
        {"address": A, "worker_id": 0, "pid": 123, "exitcode": -9}]


def test_a_task_only_queued_on_a_dead_worker_runs():
    ledger, _ = _ledger()
    _removed_while_processing(ledger)
    ledger.record_exit(A, -9, pid=123, running=["another-key"])
    assert _claim(ledger, worker=B)["run"]


def test_a_start_message_makes_a_claim_and_arms_it():
    ledger, task = _ledger()
    ledger.started(A, KEY, 123, 0)
    assert task.suspicious == 3
    assert not _claim(ledger, worker=B)["run"]  # a rerun after that worker's death is refused


def test_last_words_round_trip(tmp_path, monkeypatch):
    """The file is the nanny's; it names the worker that wrote it (the nanny may not know that worker yet)."""
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    witness = Witness("tcp://127.0.0.1:4242", "tcp://127.0.0.1:5151")
    assert witness.running("first-key")
    witness.idle()
    assert witness.running("second")
    assert last_words("tcp://127.0.0.1:4242") == (os.getpid(), ["second"], "tcp://127.0.0.1:5151")
    assert last_words("tcp://127.0.0.1:4242") is None  # read once: the file is gone


def test_a_report_that_names_a_restarted_workers_predecessor_is_put_right():
    """A worker died before its nanny heard from it, leaving no last words: the nanny still names the worker
    before it. The ledger files the exit code under the worker the nanny registered last, and leaves the
    predecessor's as it was."""
    ledger, _ = _ledger()
    nanny = "tcp://127.0.0.1:7000"
    ledger.newest[nanny] = A
    ledger.record_exit(A, -9, pid=100, running=[], nanny=nanny)  # certain: A's own last words
    ledger.newest[nanny] = B  # the nanny restarted its worker: B registered, then died at its first task
    ledger.record_exit(A, 3, nanny=nanny, certain=False)
    assert ledger.exits[A][0] == -9 and ledger.exits[B][0] == 3
    ledger.record_exit(A, 1, nanny=nanny, certain=False)  # one more died starting, before it registered
    assert ledger.exits[A][0] == -9 and ledger.exits[B][0] == 3


def test_last_words_of_a_worker_this_scheduler_never_had_are_set_aside():
    """A nanny read a witness file another cluster's worker left (its nanny had the same address): the
    report names that stranger. The exit code goes to the worker the nanny registered last, without the
    stranger's pid or keys."""
    ledger, _ = _ledger()
    nanny, stranger = "tcp://127.0.0.1:7000", "tcp://127.0.0.1:9999"
    ledger.newest[nanny] = B
    ledger.record_exit(stranger, -9, pid=4242, running=["someone-elses-key"], nanny=nanny)
    assert ledger.exits[B][0] == -9 and stranger not in ledger.exits
    assert ledger.last_words[B] == (None, [])


def test_a_queued_neighbour_reruns_once_the_nanny_says_it_was_not_running():
    """The dead worker's one thread ran a task the ledger knew of; its queued neighbour reruns as soon as
    the nanny's report shows that task, not the neighbour, in the last words."""
    ledger, _ = _ledger()
    other = "mpire-fault-0123456789ab-apply-1"
    ledger.started(A, other, 123, 0)
    _removed_while_processing(ledger)
    ledger.scheduler.nanny_plugins = {"mpire-fault-exit-reporter": object()}  # a report is waited for
    ledger.record_exit(A, -9, pid=123, running=[other])
    began = time.monotonic()
    assert _claim(ledger, worker=B)["run"]
    assert time.monotonic() - began < 1


def test_a_neighbour_that_started_after_a_lost_done_message_is_not_rerun():
    """The worker's one thread finished a task the ledger knew of and started the next, then died before
    the finished task's done message left: the thread looked busy, yet the next task had started. Found by
    the kit (exactly-once on DaskPool: a sys.exit task ran twice)."""
    ledger, _ = _ledger()
    ledger.started(A, "mpire-fault-0123456789ab-apply-1", 123, 0)  # its done message is lost with A
    _removed_while_processing(ledger)
    ledger.scheduler.nanny_plugins = {"mpire-fault-exit-reporter": object()}
    ledger.record_exit(A, 3, pid=123, running=[KEY])
    assert not _claim(ledger, worker=B)["run"]
