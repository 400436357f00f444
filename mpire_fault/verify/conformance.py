"""Grade a pool guarantee by guarantee: pass, fail (with the shrunk steps), hang, unsupported or error."""
from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from typing import Any

from hypothesis import HealthCheck, Phase, seed, settings
from hypothesis.database import InMemoryExampleDatabase
from hypothesis.errors import Flaky
from hypothesis.reporting import with_reporter
from hypothesis.stateful import run_state_machine_as_test

from .._platform.deathsig import signal_on_parent_death
from .adapters import ADAPTERS, Adapter
from .machines import GUARANTEES, BrokenBeforeHang, PoolHang, machine_for, remove_markers, unsupported


@dataclass(frozen=True, slots=True)
class Verdict:
    pool: str
    guarantee: str
    status: str  # "pass" | "fail" | "hang" | "unsupported" | "error"
    detail: str
    counterexample: str
    seconds: float


SEED = 20240601


def check(pool: str, guarantee: str, examples: int, steps: int = 8, shrink: bool = True,
          adapter_cls: type[Adapter] | None = None, seed_value: int = SEED) -> Verdict:
    """Run the state machine for one guarantee on one pool.

    Examples are generated first without shrinking. A hang ends the grading
    there (shrinking it would rerun seconds-long hangs for nothing), so a
    pool that stops answering gets its verdict within the machine's bound
    plus the adapter's close bound. Any other failure is then replayed from
    an in-memory example database and shrunk to a short counterexample.
    """
    adapter_cls = adapter_cls or ADAPTERS[pool]
    missing = unsupported(adapter_cls, guarantee)
    if missing:
        return Verdict(pool, guarantee, "unsupported", f"{pool} has no {' and no '.join(sorted(missing))}", "", 0.0)
    machine = seed(seed_value)(machine_for(adapter_cls, guarantee))  # derandomized, yet with an example database
    machine.failures_seen = []
    database = InMemoryExampleDatabase()
    common: dict[str, Any] = dict(max_examples=examples, stateful_step_count=steps, deadline=None, database=database,
                                  report_multiple_bugs=False, suppress_health_check=list(HealthCheck))
    started = time.monotonic()
    outcome = _run(machine, settings(phases=[Phase.explicit, Phase.reuse, Phase.generate], **common))
    if outcome is not None and shrink and not isinstance(outcome[0], (PoolHang, BrokenBeforeHang)):
        shrunk = _run(machine, settings(phases=[Phase.reuse, Phase.shrink], **common))
        if shrunk is not None and isinstance(shrunk[0], AssertionError):
            outcome = shrunk
        elif isinstance(outcome[0], AssertionError):  # it did not fail the same way again: say so
            outcome = (AssertionError(f"fails intermittently (not shrunk): {_first_line(outcome[0])}"), outcome[1])
    took = time.monotonic() - started
    if outcome is None:
        return Verdict(pool, guarantee, "pass", "", "", took)
    exc, lines = outcome
    if isinstance(exc, PoolHang):
        return Verdict(pool, guarantee, "hang", _first_line(exc).removeprefix("[hang] "), _steps(lines), took)
    if isinstance(exc, AssertionError):
        return Verdict(pool, guarantee, "fail", _first_line(exc), _steps(lines), took)
    if isinstance(exc, Flaky):  # broken on some runs only: still broken
        first = next(iter(getattr(exc, "exceptions", ())), None)
        seen = machine.failures_seen
        message = _first_line(first) if first is not None else (seen[0] if seen else _first_line(exc))
        status = "hang" if isinstance(first, PoolHang) or message.startswith("[hang]") else "fail"
        return Verdict(pool, guarantee, status, f"fails intermittently: {message.removeprefix('[hang] ')[:250]}",
                       _steps(lines), took)
    # the pool (or the kit) blew up in a way the machine did not expect
    return Verdict(pool, guarantee, "error", f"{type(exc).__name__}: {exc}"[:300], _steps(lines), took)


def _run(machine, config) -> tuple[BaseException, list[str]] | None:
    """None if every example passed, else the error and what Hypothesis reported."""
    lines: list[str] = []

    def report(value: object) -> None:
        lines.append(str(value))

    try:
        with with_reporter(report):
            run_state_machine_as_test(machine, settings=config)
    except Exception as exc:  # noqa: BLE001 - every failure of the pool (or of the kit) is a verdict
        lines += getattr(exc, "__notes__", [])  # Hypothesis attaches the falsifying steps as notes
        return exc, lines
    return None


def _first_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0][:300]


def _steps(lines: list[str]) -> str:
    """The falsifying sequence Hypothesis printed, without its boilerplate."""
    invariants = ("state.nothing_ran_twice()", "state.promises_hold()")
    keep = [line for line in "\n".join(lines).splitlines()
            if line.strip() and not line.startswith(("Trying example", "Falsifying example"))
            and line.strip() not in invariants]
    return "\n".join(keep[-25:])


def check_apart(pool: str, guarantee: str, examples: int, timeout: float, seed_value: int = SEED) -> Verdict:
    """``check`` in a process of its own, so gradings can run side by side; never raises, never hangs.

    Each grading starts its own pools, and ``worker_processes`` counts the
    children of the grading process: two gradings in one process would see
    each other's workers. A process that crashes or outlives ``timeout`` is
    an "error" verdict (every wait inside ``check`` is bounded, so that is
    the kit's own failure, not the pool's).
    """
    started = time.monotonic()
    # ``-c``, not ``-m``: a worker that a spawn or forkserver start makes runs the parent's main module again,
    # and this one imports Hypothesis and the whole kit (more than half of a Dask worker's CPU before its first
    # task). The kit's tasks live in ``tasks``, which needs none of it.
    command = [sys.executable, "-c", "import sys; from mpire_fault.verify.conformance import grading_main; "
               "grading_main(sys.argv[1:])", pool, guarantee, str(examples), str(seed_value), str(os.getpid())]
    # A session of its own: one killpg ends the pools' workers it started, past the timeout and after it
    # answered (a pool it found hung may have left some). Its output goes to files, not pipes: a worker left
    # behind holds them open, and waiting for a pipe's end would wait for that worker.
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out, stderr=err, text=True,
                                start_new_session=True)
        try:
            proc.wait(timeout=timeout)
        except BaseException as exc:  # the timeout, or Ctrl-C: nothing of the grading outlives it
            _end_group(proc)
            if not isinstance(exc, subprocess.TimeoutExpired):
                raise
            return Verdict(pool, guarantee, "error", f"the grading process ran past {timeout:.0f} s and was killed",
                           "", time.monotonic() - started)
        _end_group(proc)
        out.seek(0)
        err.seek(0)
        output, errors = out.read(), err.read()
    try:
        return Verdict(**json.loads(output.strip().splitlines()[-1]))
    except (IndexError, ValueError, TypeError):
        tail = (errors.strip().splitlines() or [f"exit code {proc.returncode}, no verdict"])[-1]
        return Verdict(pool, guarantee, "error", f"the grading process failed: {tail}"[:300], "",
                       time.monotonic() - started)


def _end_group(proc: subprocess.Popen) -> None:
    """SIGKILL the grading's process group (it leads it), reap the grading, remove its marker directories."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    remove_markers(proc.pid)


def grade(pool: str, examples: int) -> list[Verdict]:
    return [check(pool, guarantee, examples) for guarantee in GUARANTEES]


def table(verdicts: list[Verdict]) -> str:
    pools = list(dict.fromkeys(v.pool for v in verdicts))
    by = {(v.pool, v.guarantee): v for v in verdicts}
    lines = ["| guarantee | " + " | ".join(pools) + " |", "| --- |" + " --- |" * len(pools)]
    for guarantee in GUARANTEES:
        cells = [by[(p, guarantee)].status if (p, guarantee) in by else "" for p in pools]
        lines.append(f"| {guarantee} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def markdown(verdicts: list[Verdict], command: str, notes: list[str] | None = None) -> str:
    out = [
        "# Conformance: which pools keep the promises of docs/guarantees.md §4",
        "",
        f"Produced by `{command}` (Hypothesis state machines of `mpire_fault.verify`, two workers, fork;",
        "the Dask pools on a LocalCluster of two single-thread worker processes).",
        *(notes or []),
        "`hang` means a call did not answer within 3 s: the pool would have waited forever.",
        "`unsupported` means the pool cannot express what the guarantee needs (a per-task timeout, naming the item",
        "that died): it is not checked, and not counted as kept.",
        "",
        table(verdicts),
        "",
        "## The guarantees",
        "",
    ]
    out += [f"- **{name}**: {text}" for name, text in GUARANTEES.items()]
    failures = [v for v in verdicts if v.status != "pass"]
    if failures:
        out += ["", "## Counterexamples", ""]
        for v in failures:
            out += [f"### {v.pool}: {v.guarantee} ({v.status})", "", v.detail, ""]
            if v.counterexample:
                out += ["```", v.counterexample, "```", ""]
    return "\n".join(out) + "\n"


def as_json(verdicts: list[Verdict]) -> list[dict]:
    return [asdict(v) for v in verdicts]


def from_json(data: list[dict]) -> list[Verdict]:
    """Verdicts written by ``--json`` (so several runs can make one table)."""
    fields = set(Verdict.__dataclass_fields__)
    rows = [row for row in data if isinstance(row, dict) and fields <= set(row)]
    if len(rows) != len(data):
        raise ValueError(f"not a verdict list written by --json (each row needs {', '.join(sorted(fields))})")
    return [Verdict(**{name: row[name] for name in fields}) for row in rows]


def merge(shards: list[Verdict]) -> Verdict:
    """One verdict from the gradings of one guarantee in shards (other seeds): the worst of them.

    ``seconds`` is the longest shard's (they run side by side).
    """
    rank = {"hang": 0, "fail": 1, "error": 2, "unsupported": 3, "pass": 4}
    worst = min(shards, key=lambda v: rank.get(v.status, 2))
    return Verdict(worst.pool, worst.guarantee, worst.status, worst.detail, worst.counterexample,
                   max(v.seconds for v in shards))


def end_with(parent_pid: int) -> None:
    """End this grading and every process it started when ``parent_pid`` (the verify command) dies.

    ``check_apart`` kills the grading's process group on a timeout or Ctrl-C,
    but a verify command ended by SIGTERM or SIGKILL (a CI job's time limit)
    runs no Python: without this its gradings, their pools and clusters kept
    running. Linux sends us SIGTERM when the parent dies (PR_SET_PDEATHSIG),
    and SIGTERM here removes our examples' marker directories and kills our whole group (we lead it:
    start_new_session).
    A pool's forked worker inherits the handler; it only takes the default
    action there, so a pool that ends its workers with SIGTERM still can.
    """
    me = os.getpid()

    def on_sigterm(signum: int, frame: Any) -> None:
        if os.getpid() != me:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
            return
        remove_markers()
        os.killpg(os.getpgid(0), signal.SIGKILL)

    signal.signal(signal.SIGTERM, on_sigterm)
    signal_on_parent_death(signal.SIGTERM)  # without prctl (not Linux) the timeout and Ctrl-C paths remain
    if os.getppid() != parent_pid:  # the verify command died before prctl took effect
        on_sigterm(signal.SIGTERM, None)


def grading_main(argv: list[str]) -> None:
    """POOL GUARANTEE EXAMPLES SEED [PARENT_PID]: one grading, its verdict printed as JSON (``check_apart``)."""
    if len(argv) > 4:
        end_with(int(argv[4]))
    print(json.dumps(asdict(check(argv[0], argv[1], int(argv[2]), seed_value=int(argv[3])))), flush=True)
    # Out now: a pool that hung (the verdict says so) can keep the interpreter's exit waiting for good (the
    # standard executor joins its management thread at exit); check_apart kills what the pool left behind.
    os._exit(0)


if __name__ == "__main__":
    grading_main(sys.argv[1:])
