"""The mpire-fault command line (also python -m mpire_fault).

Each subcommand lives in its own module with ``add_arguments(parser)`` and
``main(namespace) -> int``; only the chosen one is imported, so ``demo``
does not pay for Hypothesis. Bad input is refused in one line naming what
was wrong, with exit status 2, never with a traceback.
"""
from __future__ import annotations

import argparse
import importlib
import sys

EXIT_USAGE = 2

COMMANDS = {
    "demo": ("mpire_fault.demo", "show workers dying under apply and map, and the pool recovering"),
    "run": ("mpire_fault.scenario.cli", "run resilience scenarios (scenarios/*.toml): the CI gate"),
    "timeline": ("mpire_fault.timeline.cli", "draw a pool's event log (JSON lines) as a self-contained HTML timeline"),
    "verify": ("mpire_fault.verify.cli", "grade a pool against the guarantees with Hypothesis state machines"),
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="mpire-fault", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    chosen = next((arg for arg in argv if not arg.startswith("-")), None)
    modules = {}
    for name, (module_name, help_text) in COMMANDS.items():
        command_parser = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            modules[name] = importlib.import_module(module_name)
            modules[name].add_arguments(command_parser)
    namespace = parser.parse_args(argv)
    from .errors import ChaosSpecError

    try:
        return int(modules[namespace.command].main(namespace) or 0)
    except ChaosSpecError as exc:  # a spec from the environment (MP_CHAOS): the message names it
        print(f"mpire-fault {namespace.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    raise SystemExit(main())
