"""Scenario files that are not what they should be: each is INVALID naming the file and the key, the gate
exits 2, and nothing crashes, hangs or prints a traceback."""
from __future__ import annotations

import argparse
import contextlib
import io
import math
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from mpire_fault.scenario import ScenarioInvalid, cli, load_scenario

ROOT = Path(__file__).resolve().parents[2]
WORKLOAD = '[workload]\nfunction = "mpire_fault.scenario.workloads:square"\n'
GOOD = WORKLOAD + "n_tasks = 2\n"
NINES = "9" * 5000

# (file body, the key the problem must name (None: the whole file), words in the message)
HOSTILE = [
    (b'name = "caf\xe9"\n' + GOOD.encode(), "name", "not UTF-8 text: byte 0xe9 at line 1, column 12"),
    (GOOD.encode() + b"[expect]\nsucceeded = 2\nmax_seconds = \xff\n", "expect.max_seconds", "byte 0xff at line 6"),
    (b"\xff\xfe\x00\x00" + GOOD.encode(), None, "not UTF-8 text: byte 0xff at line 1, column 1"),
    (("a = " + "[" * 3000 + "]" * 3000 + "\n" + GOOD).encode(), "a", "nested too deep (at line 1)"),
    ((WORKLOAD + "args = " + "[" * 3000 + "]" * 3000 + "\n").encode(), "workload.args", "nested too deep (at line 3)"),
    ((GOOD + "kwargs = " + "{a = " * 3000 + "1" + "}" * 3000 + "\n").encode(), "workload.kwargs", "nested too deep"),
    ((WORKLOAD + "args = " + "[" * 40 + "]" * 40 + "\n").encode(), "workload.args", "nested more than 32 levels"),
    ((GOOD + f"[expect]\nsucceeded = {NINES}\n").encode(), "expect.succeeded", "a number with thousands of digits"),
    ((WORKLOAD + f"args = [1, {NINES}]\n").encode(), "workload.args", "a number with thousands of digits"),
    ((GOOD + f"[pool]\nn_jobs = {2**63}\n").encode(), "pool.n_jobs", "does not fit in 64 bits"),
    ((GOOD + f"[pool]\nn_jobs = {2**63 - 1}\n").encode(), "pool.n_jobs", "expected an integer from 1 to 512"),
    ((WORKLOAD + f"n_tasks = {2**63}\n").encode(), "workload.n_tasks", "does not fit in 64 bits"),
    ((WORKLOAD + f"n_tasks = {2**63 - 1}\n").encode(), "workload.n_tasks", "expected an integer from 0 to 100000"),
    ((GOOD + f"[chaos]\nspec = \"idle=off\"\nseed = {-2**63 - 1}\n").encode(), "chaos.seed", "does not fit"),
    ((GOOD + f'[expect]\nfailures = {{ {NINES[:30]} = "E" }}\n').encode(), f"expect.failures.{NINES[:30]}",
     "expected a task index"),
    (("timeout = inf\n" + GOOD).encode(), "timeout", "(not inf or nan), got float inf"),
    (("timeout = -inf\n" + GOOD).encode(), "timeout", "got float -inf"),
    (("timeout = nan\n" + GOOD).encode(), "timeout", "nan"),
    (("timeout = 0.0\n" + GOOD).encode(), "timeout", "a number of seconds > 0"),
    (("timeout = -3\n" + GOOD).encode(), "timeout", "a number of seconds > 0"),
    (("timeout = 1e300\n" + GOOD).encode(), "timeout", "<= 604800"),
    ((GOOD + "[pool]\ntask_timeout = inf\n").encode(), "pool.task_timeout", "got float inf"),
    ((GOOD + "[expect]\nmax_seconds = nan\n").encode(), "expect.max_seconds", "nan"),
    ((GOOD + "[expect]\nvalues = [0, nan]\n").encode(), "expect.values", "nan"),
    ((GOOD + f'[pool]\nmax_worker_memory = "{"9" * 400}GiB"\n').encode(), "pool.max_worker_memory",
     "expected a size"),
    ((GOOD + f'[expect]\nmax_peak_memory = "{"9" * 30}"\n').encode(), "expect.max_peak_memory", "expected a size"),
    ((GOOD + "[expect\n").encode(), "expect", "not valid TOML"),
    (b"\x00\x01\x02", None, "not valid TOML"),
]


def _write(tmp_path: Path, body: bytes) -> Path:
    path = tmp_path / "hostile.toml"
    path.write_bytes(body)
    return path


@pytest.mark.parametrize("body, key, words", HOSTILE, ids=[f"{i}-{k}" for i, (_, k, _) in enumerate(HOSTILE)])
def test_a_hostile_file_is_invalid_at_its_key(tmp_path, body, key, words):
    path = _write(tmp_path, body)
    with pytest.raises(ScenarioInvalid) as info:
        load_scenario(path)
    problems = info.value.problems
    assert any(p.key == key and words in p.message for p in problems), problems
    for problem in problems:
        assert problem.path == str(path) and str(path) in str(problem)
        assert len(problem.message) < 600


@pytest.mark.timeout(120)
@pytest.mark.parametrize("index", [0, 3, 7, 9, 11, 15])
def test_the_gate_says_invalid_and_exits_2_without_a_traceback(tmp_path, index):
    body, key, _ = HOSTILE[index]
    path = _write(tmp_path, body)
    proc = subprocess.run([sys.executable, "-m", "mpire_fault", "run", "-q", str(path)], capture_output=True,
                          timeout=90, cwd=ROOT)
    out, err = proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace")
    assert proc.returncode == 2, out + err
    assert "INVALID" in out and f"{path}: {key}: " in out
    assert "CRASH" not in out and "Traceback" not in out + err


def test_a_run_with_an_invalid_scenario_exits_2_even_when_the_others_pass(tmp_path, capsys):
    (tmp_path / "a_bad.toml").write_text("timeout = inf\n" + GOOD)
    code = cli.main(argparse.Namespace(paths=[str(tmp_path)], junit=None, json=None, jobs=1, quiet=True))
    assert code == 2
    assert "timeout: expected a number of seconds" in capsys.readouterr().out


def test_finite_timeouts_are_kept_as_written(tmp_path):
    scenario = load_scenario(_write(tmp_path, ("timeout = 604800\n" + GOOD).encode()))
    assert scenario.timeout == 604800.0 and math.isfinite(scenario.timeout)


# ---------------------------------------------------------------------------
# Whatever the bytes: INVALID with the file (and a key where one is written), or a valid scenario.

_KEYS = ["name", "timeout", "n_jobs", "n_tasks", "args", "kwargs", "function", "spec", "seed", "failures",
         "max_seconds", "values", "max_worker_memory", "a", "workload", "pool", "expect", "chaos"]
_VALUES = ["inf", "-inf", "nan", "+nan", "0", "-1", "1e300", str(2**63), str(2**63 - 1), "9" * 4400, "1.5",
           '"x"', '"300MiB"', "[1, 2]", "[" * 50 + "]" * 50, "{a = 1}", "true",
           '"mpire_fault.scenario.workloads:square"',
           "'idle=off'", '"task.start=1e-05%sigkill"', "1979-05-27", '"\\u0000"']


@st.composite
def tomlish(draw) -> bytes:
    lines = []
    for _ in range(draw(st.integers(0, 8))):
        kind = draw(st.sampled_from(["header", "pair", "pair", "pair", "junk"]))
        if kind == "header":
            lines.append(f"[{draw(st.sampled_from(_KEYS))}]")
        elif kind == "pair":
            value = draw(st.sampled_from(_VALUES) | st.text(max_size=8).map(repr))
            lines.append(f"{draw(st.sampled_from(_KEYS))} = {value}")
        else:
            lines.append(draw(st.text(max_size=20)))
    text = "\n".join(lines).encode("utf-8", "surrogatepass")
    if draw(st.booleans()):  # splice in raw bytes
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(st.binary(max_size=6)) + text[at:]
    return text


def _only_invalid_or_valid(path: Path) -> bool:
    try:
        load_scenario(path)
    except ScenarioInvalid as error:
        assert error.problems
        for problem in error.problems:
            assert problem.path == str(path)
            assert problem.key is None or isinstance(problem.key, str)
            assert problem.key or "line" in problem.message or "missing" in problem.message or \
                "cannot read" in problem.message, problem
        return False
    return True


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.binary(max_size=200) | tomlish())
def test_any_bytes_are_invalid_at_a_key_or_a_valid_scenario(tmp_path, body):
    _only_invalid_or_valid(_write(tmp_path, body))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=tomlish())
def test_the_gate_exits_2_on_any_invalid_file_and_never_prints_a_traceback(tmp_path, body):
    path = _write(tmp_path, body)
    assume(not _only_invalid_or_valid(path))  # a valid one would run a real scenario: not what this test is for
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(argparse.Namespace(paths=[str(path)], junit=str(tmp_path / "j.xml"),
                                           json=str(tmp_path / "r.json"), jobs=1, quiet=False))
    assert code == 2
    assert "INVALID" in out.getvalue() and str(path) in out.getvalue()
    assert "Traceback" not in out.getvalue() + err.getvalue() and "CRASH" not in out.getvalue()


def test_control_characters_in_a_key_are_escaped_in_the_problem(tmp_path):
    path = _write(tmp_path, ('"\\u0001\\u001b[31m" = 1\n' + GOOD).encode())
    with pytest.raises(ScenarioInvalid) as info:
        load_scenario(path)
    (problem,) = info.value.problems
    assert problem.key == "\\x01\\x1b[31m" and "unknown key" in problem.message
