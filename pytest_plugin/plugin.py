"""``pytest --mp-chaos``: chaos for every mpire_fault WorkerPool created while tests run.

How chaos reaches the pools: around each test the plugin sets ``MP_CHAOS``,
``MP_CHAOS_SEED`` (the run seed mixed with a crc32 of the test id, so a test
gets the same faults whatever else runs), ``MP_CHAOS_STATE`` and
``MP_CHAOS_JOURNAL`` (one file per test in the run directory), and with an
HTML report ``MP_CHAOS_EVENTS_DIR`` (``mpire_fault.events.EVENTS_DIR_ENV``:
the run's ``events`` folder, where each pool writes ``<pid>-<pool>.jsonl``,
every event naming its test). Every
``WorkerPool(chaos=None)`` reads them, including pools in subprocesses the
test starts. The journal files are the single source for the fixture, the
terminal summary and the report (JSON, or HTML with a timeline per test
that saw a fault, from the event logs), also under pytest-xdist, where the
controller picks the seed and hands it and the run directory to the workers.
"""
from __future__ import annotations

import json
import os
import shlex
import shutil
import sys
import zlib
from collections import Counter
from collections.abc import Callable, Generator, Iterator
from typing import Any

import pytest

from . import keys
from .journal_view import ChaosJournal, read_entries

# Foreign pools (multiprocessing, concurrent.futures, loky/joblib, mpire) and the hang verdict live there.
pytest_plugins = [f"{__package__}.foreign"]

DEFAULT_SPEC = "task.start=5%sigkill;task.start=5%exit(1)"
_USE_DEFAULT = "\0default"
_STATE = keys.STATE
_SPEC = keys.SPEC


class RunState:
    """What one pytest process knows about the chaos run."""

    def __init__(self, spec: str | None, seed: int, run_dir: str, owns_dir: bool, report: str | None) -> None:
        self.spec = spec
        self.seed = seed
        self.run_dir = run_dir
        self.owns_dir = owns_dir
        self.report = report
        self.outcomes: dict[str, str] = {}
        self.reproduce: Callable[[], str] = lambda: ""
        # Pools write event logs only for an HTML report: nothing else reads them.
        self.events_dir = os.path.join(run_dir, "events") if report and is_html(report) else None

    def test_seed(self, nodeid: str) -> int:
        return (self.seed + zlib.crc32(nodeid.encode())) % 2**32

    def journal_path(self, nodeid: str) -> str:
        return os.path.join(self.run_dir, f"{keys.node_key(nodeid)}.jsonl")

    def marker_spec_path(self, nodeid: str) -> str:
        """Where a test whose chaos came from its marker leaves that spec (also from xdist workers)."""
        return os.path.join(self.run_dir, f"{keys.node_key(nodeid)}.spec")

    def marker_specs(self) -> Counter[str]:
        """The specs markers ran, with the number of tests that ran each."""
        found: Counter[str] = Counter()
        for name in sorted(os.listdir(self.run_dir)) if os.path.isdir(self.run_dir) else []:
            if name.endswith(".spec"):
                with open(os.path.join(self.run_dir, name), encoding="utf-8") as handle:
                    found[handle.read()] += 1
        return found


def is_html(path: str) -> bool:
    """An HTML report (a timeline page) rather than JSON."""
    return path.lower().endswith((".html", ".htm"))


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("mp-chaos", "chaos for mpire_fault worker pools")
    group.addoption("--mp-chaos", dest="mp_chaos", nargs="?", const=_USE_DEFAULT, default=None, metavar="SPEC",
                    # argparse %-formats help texts: the spec's percent signs must be doubled
                    help=f"inject faults into every WorkerPool; without SPEC the default mix {DEFAULT_SPEC!r}"
                         .replace("%", "%%"))
    group.addoption("--mp-chaos-seed", dest="mp_chaos_seed", default=None, metavar="N",
                    help="seed of the chaos decisions (default: random, printed in the header)")
    group.addoption("--mp-chaos-report", dest="mp_chaos_report", default=None, metavar="PATH",
                    help="write the journal of injected faults and per-test outcomes as JSON, or for a .html "
                         "PATH a page with a timeline of every test that saw a fault")
    parser.addini("mp_chaos", "chaos spec for every WorkerPool ('default' for the default mix)", default="")
    parser.addini("mp_chaos_seed", "seed of the chaos decisions", default="")
    parser.addini("mp_chaos_report", "path of the chaos report (.json, or .html for timelines)", default="")


def _looks_like_a_path(value: str) -> bool:
    return "=" not in value and (os.path.exists(value) or value.endswith(".py") or "/" in value or "::" in value)


def _resolve_spec(config: pytest.Config) -> str | None:
    value = config.getoption("mp_chaos")
    if value is None:
        value = config.getini("mp_chaos").strip() or None
    if value is None:
        return None
    if value in (_USE_DEFAULT, "default", "true", "1"):
        return DEFAULT_SPEC
    if _looks_like_a_path(value):
        raise pytest.UsageError(
            f"--mp-chaos took {value!r} as its fault spec, but that looks like a test path. "
            f"Write --mp-chaos=SPEC (with '='), or put --mp-chaos after the test paths."
        )
    return value


def _resolve_seed(config: pytest.Config) -> int:
    from mpire_fault.chaos import parse_seed

    worker_input = getattr(config, "workerinput", None)
    if worker_input and "mp_chaos_seed" in worker_input:
        return worker_input["mp_chaos_seed"]
    raw, name = config.getoption("mp_chaos_seed"), "--mp-chaos-seed"
    if raw is None:
        raw, name = config.getini("mp_chaos_seed").strip() or None, "mp_chaos_seed (ini)"
    if raw is None:
        return int.from_bytes(os.urandom(4), "big")
    try:
        return parse_seed(raw, name)
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None


def _resolve_report(config: pytest.Config) -> str | None:
    """The report path, absolute, checked now: a bad one is a usage error before anything runs."""
    raw, name = config.getoption("mp_chaos_report"), "--mp-chaos-report"
    if raw is None:
        raw, name = config.getini("mp_chaos_report").strip() or None, "mp_chaos_report (ini)"
    if raw is None:
        return None
    path = os.path.join(str(config.invocation_params.dir), os.path.expanduser(raw))  # tests may chdir
    problem = None
    if not raw.strip() or raw.endswith(os.sep):
        problem = "expected a file name"
    elif os.path.isdir(path):
        problem = "is a directory; expected a file name"
    elif os.path.exists(path) and not os.access(path, os.W_OK):
        problem = "exists and is not writable"
    else:
        folder = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(folder):
            problem = f"its directory {folder} does not exist"
        elif not os.access(folder, os.W_OK | os.X_OK):
            problem = f"its directory {folder} is not writable"
    if problem:
        raise pytest.UsageError(f"{name}={raw}: {problem}")
    return os.path.abspath(path)


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "mp_chaos(spec): run this test with chaos SPEC injected into every mpire_fault WorkerPool, "
        "with or without --mp-chaos",
    )
    spec = _resolve_spec(config)
    if spec is not None:
        from mpire_fault.chaos import parse_spec
        from mpire_fault.errors import ChaosSpecError

        try:
            spec = str(parse_spec(spec))
        except ChaosSpecError as exc:
            raise pytest.UsageError(f"--mp-chaos: {exc}") from None
    seed = _resolve_seed(config)
    report = _resolve_report(config)  # every check before the run directory is made: a usage error leaves nothing
    worker_input = getattr(config, "workerinput", None)
    if worker_input and "mp_chaos_run_dir" in worker_input:
        run_dir, owns = worker_input["mp_chaos_run_dir"], False
    else:
        from mpire_fault.chaos.rundir import make_run_dir

        run_dir, owns = make_run_dir("mp-chaos-run-"), True  # swept by a later run if this one is killed
    state = RunState(spec, seed, run_dir, owns, report)
    state.reproduce = lambda: _reproduce(config, state)  # the hang verdict's rerun line (foreign.py)
    config.stash[_STATE] = state
    config.pluginmanager.register(_OutcomeRecorder(state), "mp_chaos_outcomes")


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """pytest-xdist controller: every worker gets the same seed and the same run directory."""
    state = node.config.stash[_STATE]
    node.workerinput["mp_chaos_seed"] = state.seed
    node.workerinput["mp_chaos_run_dir"] = state.run_dir


def _test_spec(item: pytest.Item, state: RunState) -> str | None:
    marker = item.get_closest_marker("mp_chaos")
    if marker is None:
        return state.spec
    value = marker.args[0] if marker.args else marker.kwargs.get("spec", DEFAULT_SPEC)
    from mpire_fault.chaos import parse_spec
    from mpire_fault.errors import ChaosSpecError

    try:
        return str(parse_spec(value))
    except ChaosSpecError as exc:
        raise pytest.UsageError(f"@pytest.mark.mp_chaos on {item.nodeid}: {exc}") from None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: Any) -> Iterator[None]:
    state = item.config.stash[_STATE]
    spec = _test_spec(item, state)
    if spec is None:
        yield
        return
    from mpire_fault.chaos import env as environment
    from mpire_fault.events import EVENTS_DIR_ENV

    saved = {name: os.environ.get(name) for name in (*environment.NAMES, EVENTS_DIR_ENV)}
    # Made by the first Chaos that uses it (Chaos.__init__): a test that starts no pool costs no directory.
    state_dir = os.path.join(state.run_dir, f"state-{keys.node_key(item.nodeid)}")
    os.environ.update({
        environment.SPEC: spec,
        environment.SEED: str(state.test_seed(item.nodeid)),
        environment.STATE: state_dir,
        environment.JOURNAL: state.journal_path(item.nodeid),
    })
    if state.events_dir is not None:
        os.makedirs(state.events_dir, exist_ok=True)
        os.environ[EVENTS_DIR_ENV] = state.events_dir
    item.stash[_SPEC] = spec
    if spec != state.spec:  # the summary says what ran, and the controller of xdist workers reads it here
        with open(state.marker_spec_path(item.nodeid), "w", encoding="utf-8") as handle:
            handle.write(spec)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any) -> Generator[None, Any, None]:
    outcome = yield
    report = outcome.get_result()
    if report.failed and item.stash.get(_SPEC, None) is not None:
        entries = read_entries(item.config.stash[_STATE].journal_path(item.nodeid))
        if entries:
            lines = [f"{e.site}={e.action} (task {e.task_index}, worker {e.worker_id}, pid {e.pid})" for e in entries]
            report.sections.append(("mp-chaos: faults injected in this test", "\n".join(lines)))


class _OutcomeRecorder:
    """Per-test outcomes, also those xdist workers send to the controller."""

    def __init__(self, state: RunState) -> None:
        self.state = state

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "call" or report.failed or (report.when == "setup" and report.skipped):
            self.state.outcomes[report.nodeid] = report.outcome


def pytest_report_header(config: pytest.Config) -> list[str]:
    state = config.stash.get(_STATE, None)
    if state is None or state.spec is None:
        return []
    return [f"mp-chaos: spec={state.spec!r} seed={state.seed} (rerun with --mp-chaos-seed={state.seed})"]


@pytest.fixture
def mp_chaos(request: pytest.FixtureRequest) -> ChaosJournal:
    """The faults injected into worker pools during the current test (read live)."""
    state = request.config.stash[_STATE]
    spec = request.node.stash.get(_SPEC, None)
    return ChaosJournal(state.journal_path(request.node.nodeid), spec, state.test_seed(request.node.nodeid))


@pytest.fixture
def chaos_pool(request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh two-worker WorkerPool under this test's chaos (terminated afterwards)."""
    from mpire_fault import WorkerPool

    pool = WorkerPool(n_jobs=2)
    try:
        yield pool
    finally:
        pool.terminate()


def _collect(state: RunState) -> tuple[list[dict], dict[str, str]]:
    by_file = {os.path.basename(state.journal_path(nodeid)): nodeid for nodeid in state.outcomes}
    entries = []
    for name in sorted(os.listdir(state.run_dir)) if os.path.isdir(state.run_dir) else []:
        if name.endswith(".jsonl"):
            nodeid = by_file.get(name, "?")
            for entry in read_entries(os.path.join(state.run_dir, name)):
                entries.append(dict(entry.to_dict(), nodeid=nodeid))
    entries.sort(key=lambda e: e["time"])
    return entries, dict(state.outcomes)


def _reproduce(config: pytest.Config, state: RunState) -> str:
    """The command line of this run with the chaos options replaced by the spec and seed it used."""
    given = list(config.invocation_params.args)
    args, index = [], 0
    while index < len(given):
        arg = given[index]
        index += 1
        if arg == "--":
            args += given[index - 1:]
            break
        if arg in ("--mp-chaos-seed", "--mp-chaos-report"):
            index += 1  # and its value
        elif arg == "--mp-chaos":
            # nargs="?": the next word was taken as SPEC when it is not an option (it is then the spec in use)
            if index < len(given) and not given[index].startswith("-") and given[index] == config.option.mp_chaos:
                index += 1
        elif not arg.startswith(("--mp-chaos=", "--mp-chaos-seed=", "--mp-chaos-report=")):
            args.append(arg)
    # chaos from markers only: the markers are in the code, the seed is all a rerun needs
    chaos = ([f"--mp-chaos={state.spec}"] if state.spec is not None else []) + [f"--mp-chaos-seed={state.seed}"]
    if "--" in args:
        at = args.index("--")
        args[at:at] = chaos
    else:
        args += chaos
    return "pytest " + " ".join(shlex.quote(a) for a in args)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    state = config.stash.get(_STATE, None)
    if state is None or getattr(config, "workerinput", None) is not None:
        return
    entries, outcomes = _collect(state)
    markers = state.marker_specs()
    write = terminalreporter.write_line
    if state.spec is None and not markers:
        if state.report:  # asked for a report of a run without chaos: an empty report needs saying why
            terminalreporter.section("mp-chaos")
            write(f"no chaos ran, so the report {state.report} records no faults: pass --mp-chaos[=SPEC] "
                  "or mark tests with @pytest.mark.mp_chaos(SPEC)", yellow=True)
        return
    terminalreporter.section("mp-chaos")
    shown = state.spec if state.spec is not None else "none on the command line; markers only"
    write(f"spec: {shown}   seed: {state.seed}")
    for spec, tests in sorted(markers.items()):
        write(f"  @pytest.mark.mp_chaos({spec!r}): {tests} {_plural(tests, 'test')}")
    kinds = Counter((e["site"], e["action"]) for e in entries)
    write(f"faults injected: {len(entries)}")
    for (site, action), count in sorted(kinds.items()):
        write(f"  {count:5d}  {site}={action}")
    seen = Counter(e["nodeid"] for e in entries)
    for nodeid, count in sorted(seen.items()):
        write(f"  {outcomes.get(nodeid, '?').upper():8} {nodeid}: {count} {_plural(count, 'fault')}")
    write(f"reproduce: {_reproduce(config, state)}")


def _plural(n: int, word: str) -> str:
    return word if n == 1 else f"{word}s"


def pytest_unconfigure(config: pytest.Config) -> None:
    state = config.stash.get(_STATE, None)
    if state is None or getattr(config, "workerinput", None) is not None:
        return
    if state.report:
        entries, outcomes = _collect(state)
        reproduce = _reproduce(config, state) if state.spec or state.marker_specs() else None
        from .foreign import test_extras  # foreign pools: kinds struck, what callers saw, hang verdicts

        try:
            if state.events_dir is not None:
                from .html_report import write_html_report

                write_html_report(state.report, spec=state.spec, seed=state.seed, reproduce=reproduce,
                                  journal=entries, outcomes=outcomes, events_dir=state.events_dir,
                                  extras=test_extras(state.run_dir))
            else:
                faults = Counter(e["nodeid"] for e in entries)
                extras = test_extras(state.run_dir)
                data = {
                    "spec": state.spec,
                    "seed": state.seed,
                    "reproduce": reproduce,
                    "marker_specs": dict(state.marker_specs()),
                    "journal": entries,
                    "tests": [{"nodeid": n, "outcome": o, "faults": faults.get(n, 0), **extras.get(n, {})}
                              for n, o in sorted(outcomes.items())],
                }
                with open(state.report, "w", encoding="utf-8") as handle:
                    json.dump(data, handle, indent=2)
        except OSError as exc:  # checked at the start; the folder may have gone since: say so, no INTERNALERROR
            sys.stderr.write(f"mp-chaos: cannot write the report {state.report}: {exc.strerror or exc}\n")
    if state.owns_dir:
        shutil.rmtree(state.run_dir, ignore_errors=True)
