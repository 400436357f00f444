"""Grade a pool guarantee by guarantee: pass, fail (with the shrunk steps), hang, unsupported or error."""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass

from hypothesis import HealthCheck, Phase, seed, settings
from hypothesis.database import InMemoryExampleDatabase
from hypothesis.errors import Flaky
from hypothesis.reporting import with_reporter
from hypothesis.stateful import run_state_machine_as_test

from .adapters import ADAPTERS, Adapter
from .machines import GUARANTEES, BrokenBeforeHang, PoolHang, machine_for, unsupported


@dataclass(frozen=True, slots=True)
class Verdict:
    pool: str
    guarantee: str
    status: str  # "pass" | "fail" | "hang" | "unsupported" | "error"
    detail: str
    counterexample: str
    seconds: float


def check(pool: str, guarantee: str, examples: int, steps: int = 8, shrink: bool = True,
          adapter_cls: type[Adapter] | None = None) -> Verdict:
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
    machine = seed(20240601)(machine_for(adapter_cls, guarantee))  # derandomized, yet with an example database
    machine.failures_seen = []
    database = InMemoryExampleDatabase()
    common = dict(max_examples=examples, stateful_step_count=steps, deadline=None, database=database,
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
    try:
        with with_reporter(lines.append):
            run_state_machine_as_test(machine, settings=config)
    except Exception as exc:
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
        "# Conformance: which pools keep the promises of API.md §4",
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
