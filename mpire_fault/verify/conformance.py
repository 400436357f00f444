"""Grade a pool guarantee by guarantee: pass, fail (with the shrunk steps) or hang."""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass

from hypothesis import HealthCheck, Phase, settings
from hypothesis.errors import Flaky
from hypothesis.reporting import with_reporter
from hypothesis.stateful import run_state_machine_as_test

from . import machines
from .adapters import ADAPTERS
from .machines import GUARANTEES, machine_for


@dataclass(frozen=True, slots=True)
class Verdict:
    pool: str
    guarantee: str
    status: str  # "pass" | "fail" | "hang" | "error"
    detail: str
    counterexample: str
    seconds: float


def check(pool: str, guarantee: str, examples: int, steps: int = 8, shrink: bool = True) -> Verdict:
    """Run the state machine for one guarantee on one pool."""
    machine = machine_for(ADAPTERS[pool], guarantee)
    phases = [Phase.explicit, Phase.reuse, Phase.generate] + ([Phase.shrink] if shrink else [])
    config = settings(max_examples=examples, stateful_step_count=steps, deadline=None, database=None,
                      derandomize=True, phases=phases, report_multiple_bugs=False, suppress_health_check=list(HealthCheck))
    machines.HANGS.clear()
    lines: list[str] = []
    started = time.monotonic()
    try:
        with with_reporter(lines.append):
            run_state_machine_as_test(machine, settings=config)
    except AssertionError as exc:
        lines += getattr(exc, "__notes__", [])  # Hypothesis attaches the shrunk steps as notes
        return Verdict(pool, guarantee, "fail", str(exc).splitlines()[0][:300], _steps(lines),
                       time.monotonic() - started)
    except Exception as exc:  # the pool itself blew up in a way the machine did not expect
        if machines.HANGS:
            return Verdict(pool, guarantee, "hang", machines.HANGS[0], "", time.monotonic() - started)
        if isinstance(exc, Flaky):  # broken on some runs only: still broken
            first = next(iter(getattr(exc, "exceptions", ())), exc)
            return Verdict(pool, guarantee, "fail", f"fails intermittently: {str(first).splitlines()[0][:250]}",
                           _steps(lines), time.monotonic() - started)
        return Verdict(pool, guarantee, "error", f"{type(exc).__name__}: {exc}"[:300], _steps(lines),
                       time.monotonic() - started)
    if machines.HANGS:
        return Verdict(pool, guarantee, "hang", machines.HANGS[0], "", time.monotonic() - started)
    return Verdict(pool, guarantee, "pass", "", "", time.monotonic() - started)


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


def markdown(verdicts: list[Verdict], command: str) -> str:
    out = [
        "# Conformance: which pools keep the promises of API.md §4",
        "",
        f"Produced by `{command}` (Hypothesis state machines of `mpire_fault.verify`, two workers, fork).",
        "`hang` means a call did not answer within 3 s: the pool would have waited forever.",
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
