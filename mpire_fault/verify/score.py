"""The mutation score of a test suite, or of the scenario gate, on the kit's catalogue of broken pools.

    python -m mpire_fault.verify.score [--timeout S] [--catalogue first|second] [--mutant NAME] -- PYTEST_ARGS...
    python -m mpire_fault.verify.score --scenarios scenarios/

Runs ``pytest -x PYTEST_ARGS`` once per mutant of the catalogues asked for (both by default; the score is
printed per catalogue) (with the mutant applied by
``mpire_fault.verify.mutant_plugin``) and once without (once more if that
fails: a test that fails now and then is shown, by name, not scored against);
a mutant is caught when the suite fails (or times out) with it and passes
without it. Each caught mutant is printed with the first test that failed. With
``--scenarios``, every scenario file runs once per mutant, each in its own
process as the gate runs it, with the mutant applied in that process.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time


def run_suite(args: list[str], mutant: str | None, timeout: float) -> tuple[str, float, str]:
    """The suite's outcome with ``mutant`` applied, its seconds, and the first test that failed (or "")."""
    env = dict(os.environ)
    env.pop("MPIRE_FAULT_MUTANT", None)
    if mutant:
        env["MPIRE_FAULT_MUTANT"] = mutant
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-p",
               "mpire_fault.verify.mutant_plugin", *args]
    began = time.monotonic()
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout,
                              start_new_session=True)
    except subprocess.TimeoutExpired:
        return "timeout", time.monotonic() - began, ""
    outcome = "pass" if done.returncode == 0 else "fail"
    return outcome, time.monotonic() - began, first_failure(done.stdout)


def first_failure(output: str) -> str:
    """The first test pytest's short summary lists as failed or errored (node id, then its message), or ""."""
    summary = output.rpartition("short test summary info")[2]  # captured logs also have lines that start "ERROR"
    for line in summary.splitlines():
        if line.startswith(("FAILED ", "ERROR ")):
            return line.split(" ", 1)[1][:240]
    return ""


_WRAPPER = """#!/bin/sh
# The scenario runner starts: <python> -m mpire_fault.scenario.execute ARGS. Apply the mutant first.
shift 2
exec {python} -c 'import runpy, sys
from mpire_fault.verify.mutants import ALL_MUTANTS
patch = ALL_MUTANTS[sys.argv[1]].patch()  # kept referenced: a collected patch undoes itself
patch.__enter__()
sys.argv = ["mpire_fault.scenario.execute"] + sys.argv[2:]
runpy.run_module("mpire_fault.scenario.execute", run_name="__main__", alter_sys=True)' {mutant} "$@"
"""


def run_scenarios(paths: list[str], mutant: str | None) -> list[str]:
    """The names of the scenarios that did not pass, with ``mutant`` applied in each scenario's process."""
    import tempfile
    from concurrent.futures import ThreadPoolExecutor

    from ..scenario.loader import discover
    from ..scenario.runner import run_scenario

    with tempfile.TemporaryDirectory(prefix="mpire-fault-score-") as scratch:
        python = sys.executable
        if mutant:
            python = os.path.join(scratch, "python")
            with open(python, "w") as handle:
                handle.write(_WRAPPER.format(python=sys.executable, mutant=mutant))
            os.chmod(python, 0o755)
        with ThreadPoolExecutor(max_workers=2) as pool:  # two at a time, as the gate runs them
            results = list(pool.map(lambda path: run_scenario(path, python=python), discover(paths)))
    return [r.name for r in results if r.status != "passed"]


def main(argv: list[str] | None = None) -> int:
    from .mutants import ALL_MUTANTS, CATALOGUES

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per suite run")
    parser.add_argument("--catalogue", action="append", choices=list(CATALOGUES),
                        help="only the mutants of this catalogue (repeatable; default: all)")
    parser.add_argument("--mutant", action="append", help="only these mutants (repeatable)")
    parser.add_argument("--scenarios", nargs="+", metavar="PATH", help="score the scenario gate instead of pytest")
    parser.add_argument("pytest_args", nargs="*")
    args = parser.parse_args(argv)
    names = args.mutant or [name for label in args.catalogue or CATALOGUES for name in CATALOGUES[label]]
    unknown = [n for n in names if n not in ALL_MUTANTS]
    if unknown:
        parser.error(f"unknown mutant(s): {', '.join(unknown)}")
    if args.scenarios:
        return score_scenarios(args.scenarios, names)
    if not args.pytest_args:
        parser.error("give pytest arguments (after --) or --scenarios PATH")
    baseline, seconds, failed = run_suite(args.pytest_args, None, args.timeout)
    print(f"baseline (no mutant): {baseline} in {seconds:.0f} s {failed}", flush=True)
    if baseline != "pass":  # once more: a test that fails only now and then is reported, not scored against
        baseline, seconds, failed = run_suite(args.pytest_args, None, args.timeout)
        print(f"baseline again: {baseline} in {seconds:.0f} s {failed}", flush=True)
    if baseline != "pass":
        print("the suite must pass without a mutant first", file=sys.stderr)
        return 2
    caught: dict[str, bool] = {}
    for name in names:
        outcome, seconds, failed = run_suite(args.pytest_args, name, args.timeout)
        verdict = "CAUGHT  " if outcome != "pass" else "SURVIVED"
        caught[name] = outcome != "pass"
        print(f"{verdict} {name:<22} ({outcome}, {seconds:.0f} s) {failed}", flush=True)
    report(caught, f"pytest {' '.join(args.pytest_args)}")
    return 0 if all(caught.values()) else 1


def report(caught: dict[str, bool], by: str) -> None:
    """The score per catalogue, then over all."""
    from .mutants import catalogue_of

    by_catalogue: dict[str, list[bool]] = {}
    for name, was_caught in caught.items():
        by_catalogue.setdefault(catalogue_of(name), []).append(was_caught)
    for label, results in by_catalogue.items():
        print(f"catalogue {label}: {sum(results)} of {len(results)} mutants caught by {by}")
    print(f"{sum(caught.values())} of {len(caught)} mutants caught by {by}")


def score_scenarios(paths: list[str], names: list[str]) -> int:
    failing = run_scenarios(paths, None)
    print(f"baseline (no mutant): {'pass' if not failing else 'FAILS ' + ', '.join(failing)}", flush=True)
    if failing:
        return 2
    caught: dict[str, bool] = {}
    for name in names:
        began = time.monotonic()
        failing = run_scenarios(paths, name)
        caught[name] = bool(failing)
        verdict = "CAUGHT  " if failing else "SURVIVED"
        shown = ", ".join(failing[:4]) + (" ..." if len(failing) > 4 else "")
        print(f"{verdict} {name:<22} ({time.monotonic() - began:.0f} s) {shown}", flush=True)
    report(caught, f"the scenarios in {' '.join(paths)}")
    return 0 if all(caught.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
