"""``mpire-fault verify``: grade pools against the guarantees, print a conformance table.

``--self-test`` grades broken variants of our own pool instead (see
``mutants.py``) and fails if the kit lets any of them through.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
from concurrent.futures import ThreadPoolExecutor

from .adapters import ADAPTERS, available, missing
from .conformance import SEED, Verdict, as_json, check, check_apart, from_json, markdown, merge, table
from .guarantees import GUARANTEES, Guarantee

GRADE_EXAMPLES = 50
SELF_TEST_EXAMPLES = 5
# Gradings at a time. An example mostly waits on its pool: with 6, `--examples 200` on an idle 2-core
# machine took 457 s of wall for 481 s of CPU (1.05 cores busy); with 12 (and plan_units' shards), 282 s
# for 466 s (every guarantee passed both times, at load averages up to 9). As the kit grew (21 guarantees),
# 12 took 306 to 311 s; 16, with the measured EXAMPLE_SECONDS below, 278 s for 520 s of CPU (all passed).
JOBS = 16
# Wall seconds of one example of each guarantee (mpire_fault), as measured in a full `--examples 200` run on a
# 2-core machine (12 gradings side by side, so contention included; the relative sizes are what matters):
# most of it waits out fixed delays (resolved-once: a 1.8 s callback; the map checks: items of 0.25 s and a
# 0.3 s window (0.2 s and 0.25 s for map-error-abort); timeout-fires: a 0.5 s timeout; hard-timeout: a stuck
# task's timeout, grace and kill; parent-death: a parent program started and killed). A guarantee whose
# examples would take longer than an even share of the whole run is graded in shards side by side, each with
# its part of the examples and a seed of its own; the longest units start first, so the run does not end
# with one core waiting on a long shard. (Estimates measured one grading at a time had head-only at half its
# real length: it went unsharded and its 204 s made the run 306 s where the units' sum over 12 slots is 266 s.)
EXAMPLE_SECONDS: dict[str, float] = {
    Guarantee.RESOLVED_ONCE: 3.2, Guarantee.HARD_TIMEOUT: 2.65, Guarantee.PARENT_DEATH: 2.2,
    Guarantee.CLOCK_AT_START: 1.9, Guarantee.INIT_GIVES_UP: 1.9, Guarantee.TIMEOUT_FIRES: 1.6,
    Guarantee.MAP_ABORT: 1.3, Guarantee.EXIT_ZERO: 1.25, Guarantee.MAP_ERROR_ABORT: 1.1, Guarantee.HEAD_ONLY: 1.0,
    Guarantee.APPLY_ISOLATION: 0.8, Guarantee.EXACTLY_ONCE: 0.8, Guarantee.NO_SHM_LEAK: 0.75,
    Guarantee.MAP_REUSE: 0.7, Guarantee.RIGHT_ITEM: 0.7, Guarantee.IDLE_KILL: 0.65, Guarantee.APPLY_DEATH_ERROR: 0.65,
    Guarantee.ERROR_FIELDS: 0.65, Guarantee.OWN_EXCEPTION: 0.6, Guarantee.NO_ORPHANS: 0.55,
    Guarantee.MAP_COMPLETE: 0.45, Guarantee.LIFESPAN: 0.6, Guarantee.RETRIES: 0.6,  # the last two: one grading alone
}
OTHER_EXAMPLE_SECONDS = 0.4
# At most this many examples of a guarantee whose own rule draws from a small space, whatever --examples asks:
# more only repeat the same cases at a second or more each (a parent program started and SIGKILLed: 3 start
# methods x 0-2 busy workers; a worker_init that always fails: nothing to draw; a stuck task or slow tasks
# before a timed one: 2-3 values; a task's own exception: 8 cases, a death's fields: 12; a lifespan of 1-3
# tasks over 1-8 items: 24; a task killed in its first 0-3 runs: 4). Uncapped,
# `--examples 200` took 10.7 min (load average 3-30); with the first four capped, 5.8 min (load average
# 1.9-15.6, 580 s of CPU where the 13 guarantees took 466 s). The caps are printed with the table, and
# `--examples` below a cap is taken as asked.
EXAMPLE_CAP: dict[str, int] = {
    Guarantee.PARENT_DEATH: 20, Guarantee.INIT_GIVES_UP: 10, Guarantee.HARD_TIMEOUT: 25,
    Guarantee.CLOCK_AT_START: 25, Guarantee.OWN_EXCEPTION: 50, Guarantee.ERROR_FIELDS: 50, Guarantee.LIFESPAN: 25,
    Guarantee.RETRIES: 20,
}
MIN_SHARD_EXAMPLES = 10  # fewer would make every shard's search start over from the simplest examples
SECONDS_PER_EXAMPLE = 30.0  # a grading process past examples * this is killed (an "error" verdict)


def default_jobs(pools: list[str]) -> int:
    """``JOBS``, or fewer when a graded pool says how many of it a machine takes side by side.

    Each grading of a Dask pool starts a LocalCluster (a scheduler, two nannies
    and two workers): twelve of them at once put a two-core machine at a load
    average of 29, where the kit's time bounds judge the machine, not the pool.
    """
    return min([JOBS, *(ADAPTERS[pool].side_by_side or JOBS for pool in pools)])


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pool", default="mpire_fault", metavar="NAME",
                        help=f"one of {', '.join(ADAPTERS)}, or 'all' (every installed one)")
    parser.add_argument("--examples", type=int, default=None, metavar="N",
                        help=f"Hypothesis examples per guarantee (default {GRADE_EXAMPLES}; "
                             f"{SELF_TEST_EXAMPLES} with --self-test)")
    parser.add_argument("--jobs", type=int, default=None, metavar="N",
                        help=f"guarantees graded at the same time, each in a process of its own (default {JOBS}, "
                             "fewer for pools that start a cluster each; 1: one after another, in this process)")
    parser.add_argument("--guarantee", action="append", choices=list(GUARANTEES), help="only these (repeatable)")
    parser.add_argument("--json", metavar="PATH", help="write the verdicts as JSON")
    parser.add_argument("--markdown", metavar="PATH", help="write the table and counterexamples as Markdown")
    parser.add_argument("--from-json", action="append", metavar="PATH",
                        help="grade nothing: make the table (and --markdown) from verdicts earlier runs wrote "
                             "with --json (repeatable; one table for several runs)")
    parser.add_argument("--self-test", action="store_true",
                        help="grade built-in broken variants of mpire_fault; exit 1 if any is not caught")
    parser.add_argument("--mutant", action="append", metavar="NAME",
                        help="with --self-test: only these mutants (repeatable)")


def report_path_problem(option: str, path: str) -> str | None:
    """Why ``path`` cannot take a report, or None. Checked before the run, so a typo costs nothing."""
    if not path:
        return f"{option} needs a file name"
    if os.path.isdir(path):
        return f"{option} {path}: is a directory"
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        return f"{option} {path}: directory {folder} does not exist"
    if os.path.exists(path):
        if not os.access(path, os.W_OK):
            return f"{option} {path}: file is not writable"
    elif not os.access(folder, os.W_OK | os.X_OK):
        return f"{option} {path}: directory {folder} is not writable"
    return None


def _fail(message: str) -> int:
    print(f"mpire-fault verify: {message}", file=sys.stderr)
    return 2


def main(ns: argparse.Namespace) -> int:
    examples = ns.examples if ns.examples is not None else (SELF_TEST_EXAMPLES if ns.self_test else GRADE_EXAMPLES)
    if examples < 1:
        return _fail(f"--examples must be at least 1, got {examples}")
    if getattr(ns, "jobs", None) is not None and ns.jobs < 1:
        return _fail(f"--jobs must be at least 1, got {ns.jobs}")
    for option, path in (("--json", ns.json), ("--markdown", ns.markdown)):
        if path is not None:
            problem = report_path_problem(option, path)
            if problem:
                return _fail(problem)
    if ns.self_test:
        return self_test(ns, examples)
    if ns.from_json:
        return render(ns)
    if ns.mutant:
        return _fail("--mutant only goes with --self-test")
    if ns.pool == "all":
        pools = available()
    elif ns.pool not in ADAPTERS:
        return _fail(f"unknown pool {ns.pool!r}; choose from {', '.join(ADAPTERS)} or all")
    elif (why := missing(ns.pool)) is not None:
        return _fail(why)
    else:
        pools = [ns.pool]
    verdicts = grade_all([(pool, guarantee) for pool in pools for guarantee in ns.guarantee or GUARANTEES],
                         examples, default_jobs(pools) if getattr(ns, "jobs", None) is None else ns.jobs)
    print(table(verdicts))
    capped = sorted({g for _, g in ((v.pool, v.guarantee) for v in verdicts) if examples_for(g, examples) < examples})
    if capped:
        print("\nexamples capped (small spaces, see verify/cli.py EXAMPLE_CAP): "
              + ", ".join(f"{g} {examples_for(g, examples)}" for g in capped))
    for verdict in verdicts:
        if verdict.status != "pass":
            print(f"\n{verdict.pool} / {verdict.guarantee}: {verdict.status}: {verdict.detail}")
            if verdict.counterexample:
                print(verdict.counterexample)
    command = "mpire-fault verify " + " ".join(sys.argv[2:]) if len(sys.argv) > 2 else "mpire-fault verify"
    if ns.json:
        with open(ns.json, "w", encoding="utf-8") as handle:
            json.dump(as_json(verdicts), handle, indent=2)
    if ns.markdown:
        with open(ns.markdown, "w", encoding="utf-8") as handle:
            handle.write(markdown(verdicts, command))
    # "unsupported" is not "held": exit 0 only when every guarantee graded passed
    return 0 if all(v.status == "pass" for v in verdicts) else 1


def _seconds(guarantee: str) -> float:
    return EXAMPLE_SECONDS.get(guarantee, OTHER_EXAMPLE_SECONDS)


def examples_for(guarantee: str, examples: int) -> int:
    """The examples ``guarantee`` is graded with when ``examples`` are asked for (see ``EXAMPLE_CAP``)."""
    return min(examples, EXAMPLE_CAP.get(guarantee, examples))


def plan_units(pairs: list[tuple[str, str]], examples: int,
               jobs: int) -> list[tuple[tuple[str, str], int, int]]:
    """The gradings to run, as (pair, examples, seed), longest first.

    A pair is split in shards when its examples would take longer than an
    even share of the run over ``jobs`` slots; every shard gets a seed of
    its own, and the shards' examples add up to ``examples`` (or the guarantee's ``EXAMPLE_CAP``).
    """
    share = max(1.0, sum(examples_for(guarantee, examples) * _seconds(guarantee) for _, guarantee in pairs) / jobs)
    units = []
    for pair in pairs:
        n = examples_for(pair[1], examples)
        shards = max(1, min(n // MIN_SHARD_EXAMPLES, math.ceil(n * _seconds(pair[1]) / share)))
        units += [(pair, n // shards + (i < n % shards), SEED + i) for i in range(shards)]
    units.sort(key=lambda unit: unit[1] * _seconds(unit[0][1]), reverse=True)  # stable for equal lengths
    return units


def grade_all(pairs: list[tuple[str, str]], examples: int, jobs: int) -> list[Verdict]:
    """The verdict on each (pool, guarantee), in the order given; ``jobs`` gradings at a time.

    With more than one job each grading runs in a process of its own
    (``check_apart``), long ones split in shards, the longest first
    (``plan_units``); a progress line is printed as each guarantee's
    verdict is in.
    """
    def show(verdict: Verdict) -> Verdict:
        print(f"{verdict.pool:<20} {verdict.guarantee:<18} {verdict.status.upper():<11} {verdict.seconds:6.1f}s  "
              f"{verdict.detail}", file=sys.stderr, flush=True)
        return verdict

    if jobs == 1:
        return [show(check(pool, guarantee, examples_for(guarantee, examples))) for pool, guarantee in pairs]
    units = plan_units(pairs, examples, jobs)
    left = {pair: sum(1 for unit in units if unit[0] == pair) for pair in pairs}
    done: dict[tuple[str, str], list[Verdict]] = {pair: [] for pair in pairs}

    def one(unit: tuple[tuple[str, str], int, int]) -> None:
        (pool, guarantee), n, seed_value = unit
        verdict = check_apart(pool, guarantee, n, timeout=60.0 + n * SECONDS_PER_EXAMPLE, seed_value=seed_value)
        done[(pool, guarantee)].append(verdict)
        left[(pool, guarantee)] -= 1
        if not left[(pool, guarantee)]:
            show(merge(done[(pool, guarantee)]))

    with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="verify-grading") as executor:
        list(executor.map(one, units))
    return [merge(done[pair]) for pair in pairs]


def render(ns: argparse.Namespace) -> int:
    """``--from-json``: one table (and Markdown report) from the verdicts of earlier runs."""
    verdicts = []
    for path in ns.from_json:
        try:
            with open(path, encoding="utf-8") as handle:
                verdicts += from_json(json.load(handle))
        except (OSError, ValueError) as exc:  # json.JSONDecodeError is a ValueError
            return _fail(f"--from-json {path}: {exc}")
    print(table(verdicts))
    if ns.markdown:
        runs = ", ".join(f"`{os.path.basename(path)}`" for path in ns.from_json)
        command = "mpire-fault verify " + " ".join(sys.argv[2:]) if len(sys.argv) > 2 else "mpire-fault verify"
        with open(ns.markdown, "w", encoding="utf-8") as handle:
            handle.write(markdown(verdicts, command, [f"The verdicts come from the runs that wrote {runs}."]))
    return 0 if all(v.status == "pass" for v in verdicts) else 1


def self_test(ns: argparse.Namespace, examples: int) -> int:
    from .mutants import ALL_MUTANTS, CATALOGUES, catalogue_of, hunt

    if ns.markdown:
        return _fail("--markdown does not go with --self-test (use --json)")
    unknown = [name for name in ns.mutant or () if name not in ALL_MUTANTS]
    if unknown:
        return _fail(f"unknown mutant {unknown[0]!r}; choose from {', '.join(ALL_MUTANTS)}")
    wanted = set(ns.mutant or ALL_MUTANTS)
    outcomes = []
    for label, catalogue in CATALOGUES.items():
        chosen = [mutant for name, mutant in catalogue.items() if name in wanted]
        if chosen:
            print(f"catalogue {label} ({len(chosen)} mutants, {examples} examples per guarantee)", flush=True)
        for mutant in chosen:
            outcome = hunt(mutant, examples)
            outcomes.append(outcome)
            _print_outcome(mutant, outcome)
    total = sum(o.seconds for o in outcomes)
    print()
    for label in CATALOGUES:
        mine = [o for o in outcomes if catalogue_of(o.mutant) == label]
        if mine:
            print(_summary(f"catalogue {label}: ", mine))
    print(_summary("", outcomes) + f" in {total:.0f} s")
    if ns.json:
        with open(ns.json, "w", encoding="utf-8") as handle:
            json.dump([{"mutant": o.mutant, "catalogue": catalogue_of(o.mutant), "description": o.description,
                        "caught": o.caught, "error": o.error,
                        "verdict": as_json([o.verdict])[0] if o.verdict else None, "seconds": o.seconds}
                       for o in outcomes], handle, indent=2)
    return 0 if all(o.caught for o in outcomes) else 1


def _print_outcome(mutant, outcome) -> None:
    verdict = outcome.verdict
    if outcome.error is not None:
        print(f"ERROR     {mutant.name:<22} the mutant cannot be applied: {outcome.error}", flush=True)
    elif outcome.caught and verdict is not None:
        print(f"CAUGHT    {mutant.name:<22} by {verdict.guarantee} ({verdict.status}, {outcome.seconds:.1f} s): "
              f"{verdict.detail}", flush=True)
    else:
        tried = ", ".join(mutant.catchers)
        print(f"SURVIVED  {mutant.name:<22} ({outcome.seconds:.1f} s): every guarantee tried ({tried}) passed",
              flush=True)
    print(f"          {mutant.description}")
    if outcome.caught and verdict is not None and verdict.counterexample:
        for line in verdict.counterexample.splitlines():
            print(f"          | {line}")


def _summary(head: str, outcomes: list) -> str:
    survivors = [o.mutant for o in outcomes if not o.caught and o.error is None]
    errors = [o.mutant for o in outcomes if o.error is not None]
    caught = sum(o.caught for o in outcomes)
    return (f"{head}{caught} of {len(outcomes)} mutants caught"
            + (f"; survived: {', '.join(survivors)}" if survivors else "")
            + (f"; ERROR (cannot be applied): {', '.join(errors)}" if errors else ""))
