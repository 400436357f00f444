"""The mutation score of a test suite on the kit's catalogue of broken pools.

    python -m mpire_fault.verify.score [--timeout S] [--mutant NAME] -- PYTEST_ARGS...

Runs ``pytest -x PYTEST_ARGS`` once per mutant (with the mutant applied by
``mpire_fault.verify.mutant_plugin``) and once without; a mutant is caught
when the suite fails (or times out) with it and passes without it.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time


def run_suite(args: list[str], mutant: str | None, timeout: float) -> tuple[str, float]:
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
        return "timeout", time.monotonic() - began
    return ("pass" if done.returncode == 0 else "fail"), time.monotonic() - began


def main(argv: list[str] | None = None) -> int:
    from .mutants import MUTANTS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per suite run")
    parser.add_argument("--mutant", action="append", help="only these mutants (repeatable)")
    parser.add_argument("pytest_args", nargs="+")
    args = parser.parse_args(argv)
    names = args.mutant or list(MUTANTS)
    unknown = [n for n in names if n not in MUTANTS]
    if unknown:
        parser.error(f"unknown mutant(s): {', '.join(unknown)}")
    baseline, seconds = run_suite(args.pytest_args, None, args.timeout)
    print(f"baseline (no mutant): {baseline} in {seconds:.0f} s", flush=True)
    if baseline != "pass":
        print("the suite must pass without a mutant first", file=sys.stderr)
        return 2
    caught = 0
    for name in names:
        outcome, seconds = run_suite(args.pytest_args, name, args.timeout)
        verdict = "CAUGHT  " if outcome != "pass" else "SURVIVED"
        caught += outcome != "pass"
        print(f"{verdict} {name:<22} ({outcome}, {seconds:.0f} s)", flush=True)
    print(f"{caught} of {len(names)} mutants caught by pytest {' '.join(args.pytest_args)}")
    return 0 if caught == len(names) else 1


if __name__ == "__main__":
    sys.exit(main())
