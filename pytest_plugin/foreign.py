"""``pytest --mp-chaos`` for pools that never heard of us: multiprocessing, concurrent.futures, loky/joblib, mpire.

For each test that runs with chaos, ``mpire_fault.chaos.patching`` wraps
the submit boundary of the pool kinds ``--mp-chaos-pools`` names (default:
every installed kind) with the test's chaos, and undoes it after the test.
``MP_CHAOS_POOLS`` carries the kinds to the test's subprocesses, where the
``.pth`` start-up hook patches the same way, and to our own pools (which
leave ``MP_CHAOS`` alone when ``mpire_fault`` is not listed). The hang
watchdog (``hang.py``) turns a pool that never returns after a fault into a
failure. After each such test a small ``foreign-<crc>.json`` in the run
directory says which kinds of pool were struck, what their callers saw and
the hang verdict, for the terminal summary and the reports (read back by
``test_extras``, also on the xdist controller).
"""
from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Generator, Iterator
from typing import Any

import pytest

from . import hang, keys

DEFAULT_HANG_AFTER = 30.0
_SETTINGS = pytest.StashKey["ForeignSettings"]()
_WATCH = pytest.StashKey["hang.Watch"]()
_SAW = pytest.StashKey[str]()


class ForeignSettings:
    def __init__(self, kinds: tuple[str, ...], hang_after: float) -> None:
        self.kinds = kinds
        self.hang_after = hang_after


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("mp-chaos")
    group.addoption("--mp-chaos-pools", dest="mp_chaos_pools", default=None, metavar="KINDS",
                    help="the kinds of pool chaos strikes, a comma list of multiprocessing, concurrent.futures, "
                         "loky, mpire, mpire_fault (default: every installed kind)")
    group.addoption("--mp-chaos-hang-after", dest="mp_chaos_hang_after", default=None, metavar="SECONDS",
                    help=f"fail a test still running SECONDS after the latest fault it caused, with a hang "
                         f"verdict (default {DEFAULT_HANG_AFTER:g}; 0 turns the watchdog off)")
    parser.addini("mp_chaos_pools", "the kinds of pool chaos strikes (comma list)", default="")
    parser.addini("mp_chaos_hang_after", "seconds after a fault before a still-running test is a hang", default="")


def _hang_after(config: pytest.Config) -> float:
    raw, name = config.getoption("mp_chaos_hang_after"), "--mp-chaos-hang-after"
    if raw is None:
        raw, name = config.getini("mp_chaos_hang_after").strip() or None, "mp_chaos_hang_after (ini)"
    if raw is None:
        return DEFAULT_HANG_AFTER
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value >= 0 or value == float("inf"):
        raise pytest.UsageError(f"{name} must be a number of seconds >= 0, got {raw!r}")
    return value


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    from mpire_fault.chaos.patching import parse_kinds

    raw, name = config.getoption("mp_chaos_pools"), "--mp-chaos-pools"
    if raw is None:
        raw, name = config.getini("mp_chaos_pools").strip() or None, "mp_chaos_pools (ini)"
    try:
        kinds = parse_kinds(raw, name)
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None
    config.stash[_SETTINGS] = ForeignSettings(kinds, _hang_after(config))


def _run_state(config: pytest.Config) -> Any:
    return config.stash.get(keys.STATE, None)


def _test_spec(item: pytest.Item) -> str | None:
    return item.stash.get(keys.SPEC, None)


def summary_path(run_dir: str, nodeid: str) -> str:
    return os.path.join(run_dir, f"foreign-{keys.node_key(nodeid)}.json")


# trylast: inside the plugin's own wrapper, which has set the test's MP_CHAOS* variables (and restores them)
@pytest.hookimpl(hookwrapper=True, trylast=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: Any) -> Iterator[None]:
    settings = item.config.stash.get(_SETTINGS, None)
    state = _run_state(item.config)
    if settings is None or state is None or _test_spec(item) is None:
        yield
        return
    from mpire_fault.chaos import env as environment
    from mpire_fault.chaos.patching import FOREIGN_KINDS, Patches

    os.environ[environment.POOLS] = ",".join(settings.kinds) or "none"
    patches = Patches(None, [kind for kind in settings.kinds if kind in FOREIGN_KINDS]).install()
    watch = None
    if settings.hang_after > 0 and hang.supported():
        journal = state.journal_path(item.nodeid)
        watch = hang.start(hang.Watch(item.nodeid, journal, settings.hang_after, patches.pools, state.reproduce))
        item.stash[_WATCH] = watch
    try:
        yield
    finally:
        pools = patches.pools()
        patches.uninstall()
        if watch is not None:
            hang.stop(watch)
            if watch.verdict is not None:
                watch.killed.extend(hang.reap(pools))
            del item.stash[_WATCH]  # pytest keeps every item to the end: a watch kept would keep its patches too
        _write_summary(item, state, watch)


def _phase(item: pytest.Item) -> Iterator[None]:
    """One phase of a watched test: the watchdog may interrupt it with the hang verdict."""
    watch = item.stash.get(_WATCH, None)
    armed = hang.arm(watch)
    try:
        yield
    finally:
        if armed:
            assert watch is not None
            hang.disarm(watch)


# trylast: innermost, so our SIGALRM handler goes on top of pytest-timeout's (set in its own wrappers)
@pytest.hookimpl(hookwrapper=True, trylast=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    yield from _phase(item)


@pytest.hookimpl(hookwrapper=True, trylast=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    yield from _phase(item)


@pytest.hookimpl(hookwrapper=True, trylast=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: Any) -> Iterator[None]:
    yield from _phase(item)


def pytest_unconfigure(config: pytest.Config) -> None:
    hang.release()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any) -> Generator[None, Any, None]:
    outcome = yield
    report = outcome.get_result()
    if report.failed and call.excinfo is not None and _SAW not in item.stash:
        item.stash[_SAW] = call.excinfo.typename  # the first failure: what the test itself ran into


def _write_summary(item: pytest.Item, state: Any, watch: hang.Watch | None) -> None:
    """What foreign pools did in this test, for the summary and the reports (nothing when nothing happened)."""
    from mpire_fault.chaos.journal import read
    from mpire_fault.chaos.patching import read_seen

    entries = read(state.journal_path(item.nodeid))
    pools = Counter(entry.pool or "mpire_fault" for entry in entries)
    verdict = watch.verdict if watch is not None else None
    if not any(kind != "mpire_fault" for kind in pools) and verdict is None:
        return  # no foreign pool was struck: exceptions its callers saw are the test's own business
    state_dir = os.environ.get("MP_CHAOS_STATE") or ""
    seen = sorted({f"{record['pool']}: {record['seen']}" for record in read_seen(state_dir)}) if state_dir else []
    if verdict is not None:
        caller_saw = "hang verdict"
    elif seen:
        caller_saw = "; ".join(seen)
    else:
        caller_saw = item.stash.get(_SAW, "nothing")
    data = {
        "nodeid": item.nodeid,
        "pools": dict(sorted(pools.items())),
        "caller_saw": caller_saw,
        "hang_verdict": verdict.splitlines()[0] if verdict else None,
        "killed": sorted(set(watch.killed)) if watch is not None else [],
    }
    try:
        with open(summary_path(state.run_dir, item.nodeid), "w", encoding="utf-8") as handle:
            json.dump(data, handle)
    except OSError:
        pass


def test_extras(run_dir: str) -> dict[str, dict[str, Any]]:
    """Per test id, what foreign pools did (``pools``, ``caller_saw``, ``hang_verdict``), from the run directory."""
    extras: dict[str, dict[str, Any]] = {}
    try:
        names = sorted(os.listdir(run_dir))
    except OSError:
        return extras
    for name in names:
        if name.startswith("foreign-") and name.endswith(".json"):
            try:
                with open(os.path.join(run_dir, name), encoding="utf-8") as handle:
                    data = json.load(handle)
                extras[data.pop("nodeid")] = data
            except (OSError, ValueError, KeyError):
                continue
    return extras


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    state = _run_state(config)
    if state is None or getattr(config, "workerinput", None) is not None:
        return
    extras = test_extras(state.run_dir)
    if not extras:
        return
    write = terminalreporter.write_line
    terminalreporter.section("mp-chaos: foreign pools")
    for nodeid, data in sorted(extras.items()):
        struck = ", ".join(f"{kind} x{count}" for kind, count in data.get("pools", {}).items()) or "no fault"
        outcome = state.outcomes.get(nodeid, "?").upper()
        write(f"  {outcome:8} {nodeid}: {struck}; caller saw: {data.get('caller_saw')}")
        if data.get("hang_verdict"):
            write(f"           {data['hang_verdict']}")
