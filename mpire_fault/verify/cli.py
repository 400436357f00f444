"""``mpire-fault verify``: grade pools against the guarantees, print a conformance table."""
from __future__ import annotations

import argparse
import json
import sys

from .adapters import ADAPTERS, available
from .conformance import as_json, check, markdown, table
from .machines import GUARANTEES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pool", default="mpire_fault", metavar="NAME",
                        help=f"one of {', '.join(ADAPTERS)}, or 'all' (every installed one)")
    parser.add_argument("--examples", type=int, default=50, metavar="N", help="Hypothesis examples per guarantee")
    parser.add_argument("--guarantee", action="append", choices=list(GUARANTEES), help="only these (repeatable)")
    parser.add_argument("--json", metavar="PATH", help="write the verdicts as JSON")
    parser.add_argument("--markdown", metavar="PATH", help="write the table and counterexamples as Markdown")


def main(ns: argparse.Namespace) -> int:
    if ns.examples < 1:
        print(f"mpire-fault verify: --examples must be at least 1, got {ns.examples}", file=sys.stderr)
        return 2
    if ns.pool == "all":
        pools = available()
    elif ns.pool not in ADAPTERS:
        print(f"mpire-fault verify: unknown pool {ns.pool!r}; choose from {', '.join(ADAPTERS)} or all",
              file=sys.stderr)
        return 2
    elif ns.pool not in available():
        print(f"mpire-fault verify: {ns.pool} is not installed here", file=sys.stderr)
        return 2
    else:
        pools = [ns.pool]
    verdicts = []
    for pool in pools:
        for guarantee in ns.guarantee or GUARANTEES:
            verdict = check(pool, guarantee, ns.examples)
            verdicts.append(verdict)
            print(f"{pool:<20} {guarantee:<18} {verdict.status.upper():<5} {verdict.seconds:6.1f}s  {verdict.detail}",
                  file=sys.stderr, flush=True)
    print(table(verdicts))
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
    return 0 if all(v.status == "pass" for v in verdicts) else 1
