"""Scenario files are validated before anything runs: every problem names the file, the key and what was expected."""
from __future__ import annotations

import json
import textwrap
import tomllib
from pathlib import Path

import pytest

from mpire_fault.chaos.sizes import parse_size
from mpire_fault.scenario import ScenarioInvalid, load_scenario
from mpire_fault.scenario.loader import check_imports, discover
from mpire_fault.scenario.schema import ACTIONS, APPLY_MODES, json_schema

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted((ROOT / "scenarios").glob("*.toml"))

GOOD = """
[workload]
function = "mpire_fault.scenario.workloads:square"
n_tasks = 4
"""


def write(tmp_path: Path, text: str, name: str = "case.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def problems(tmp_path: Path, text: str) -> dict[str | None, str]:
    path = write(tmp_path, text)
    with pytest.raises(ScenarioInvalid) as info:
        load_scenario(path)
    for problem in info.value.problems:
        assert problem.path == str(path)
        assert str(path) in str(problem)
    return {p.key: p.message for p in info.value.problems}


def test_a_minimal_scenario_gets_every_default(tmp_path):
    scenario = load_scenario(write(tmp_path, GOOD))
    assert scenario.name == "case"
    assert scenario.timeout == 30.0
    assert scenario.pool == {"n_jobs": 2, "start_method": "fork", "max_task_retries": 0, "use_dill": False,
                             "keep_alive": False}
    assert scenario.workload["mode"] == "apply_async"
    assert scenario.workload["args"] == [0, 1, 2, 3]
    assert scenario.chaos is None
    assert scenario.expect["nothing_lost"] and scenario.expect["no_duplicates"]
    assert scenario.expect["pool_usable_after"]
    assert scenario.expect["max_executions_per_task"] == 1


def test_retries_raise_the_default_execution_bound(tmp_path):
    scenario = load_scenario(write(tmp_path, GOOD + "[pool]\nmax_task_retries = 2\n"))
    assert scenario.expect["max_executions_per_task"] == 3


def test_unknown_keys_are_named_with_a_suggestion(tmp_path):
    found = problems(tmp_path, GOOD + "[pool]\nn_job = 2\n[expect]\nfailurs = {}\n")
    assert "did you mean 'n_jobs'" in found["pool.n_job"]
    assert "did you mean 'failures'" in found["expect.failurs"]
    found = problems(tmp_path, "[pol]\nn_jobs = 2\n" + GOOD)
    assert "did you mean 'pool'" in found["pol"]


def test_wrong_types_say_what_was_expected(tmp_path):
    found = problems(tmp_path, GOOD + """
        [pool]
        n_jobs = "two"
        start_method = "thread"
        max_worker_memory = "12 parsecs"
        task_timeout = -1
        [expect]
        max_seconds = "fast"
        error_types = "WorkerDiedError"
        """)
    assert found["pool.n_jobs"] == "expected an integer from 1 to 512, got string 'two'"
    assert "one of 'fork', 'spawn', 'forkserver'" in found["pool.start_method"]
    assert "300MiB" in found["pool.max_worker_memory"]
    assert "seconds > 0" in found["pool.task_timeout"]
    assert "seconds > 0" in found["expect.max_seconds"]
    assert "array of strings" in found["expect.error_types"]


def test_booleans_are_not_integers(tmp_path):
    found = problems(tmp_path, GOOD + "[pool]\nn_jobs = true\n")
    assert "got boolean True" in found["pool.n_jobs"]


def test_missing_and_conflicting_workload_keys(tmp_path):
    found = problems(tmp_path, "[workload]\nmode = 'map'\n")
    assert "missing" in found["workload.function"]
    found = problems(tmp_path, "[workload]\nfunction = 'a:b'\n")
    assert "n_tasks" in found["workload.n_tasks"]
    found = problems(tmp_path, "[workload]\nfunction = 'a:b'\nn_tasks = 2\nargs = [1, 2]\n")
    assert "not both" in found["workload.args"]
    found = problems(tmp_path, "name = 'x'\n")
    assert "missing section [workload]" in found["workload"]
    found = problems(tmp_path, "[workload]\nfunction = 'not a reference'\nn_tasks = 1\n")
    assert "module:function" in found["workload.function"]


def test_expectations_must_fit_the_mode(tmp_path):
    found = problems(tmp_path, GOOD + "[expect]\nmap_aborted = true\n")
    assert "only for map modes" in found["expect.map_aborted"]
    text = GOOD.replace("n_tasks = 4", "n_tasks = 4\nmode = 'map'") + "[expect]\nfailures = {1 = 'ValueError'}\n"
    assert "only for apply modes" in problems(tmp_path, text)["expect.failures"]
    assert load_scenario(write(tmp_path, GOOD + "[expect]\nfailed = 1\n")).expect["failed"] == 1


def test_failure_matchers_are_checked_key_by_key(tmp_path):
    found = problems(tmp_path, GOOD + """
        [expect]
        failures = { 1 = { error = "WorkerDiedError", signl = "SIGKILL" }, 2 = { oom = true }, 9 = "ValueError", \
                     x = "E" }
        """)
    assert "unknown key" in found["expect.failures.1.signl"]
    assert "missing" in found["expect.failures.2.error"]
    assert "out of range" in found["expect.failures.9"]
    assert "task index" in found["expect.failures.x"]


def test_contradictions_and_bounds(tmp_path):
    found = problems(tmp_path, GOOD + "[expect]\nmin_restarts = 3\nmax_restarts = 1\nvalues = [0]\ninjected = 1\n")
    assert "above max_restarts" in found["expect.min_restarts"]
    assert "one value per task (4)" in found["expect.values"]
    assert "[chaos]" in found["expect.injected"]


def test_invalid_toml_names_the_line(tmp_path):
    found = problems(tmp_path, "[workload\nfunction = 1\n")
    assert "not valid TOML" in found["workload"] and "line 1" in found["workload"]  # and the key written there


def test_every_problem_of_a_file_is_reported_at_once(tmp_path):
    found = problems(tmp_path, "bogus = 1\n[pool]\nn_jobs = 0\n[workload]\nfunction = 3\nn_tasks = -1\n")
    assert {"bogus", "pool.n_jobs", "workload.function", "workload.n_tasks"} <= set(found)


def test_an_unimportable_function_is_a_problem_of_its_key(tmp_path):
    scenario = load_scenario(write(tmp_path, GOOD.replace("mpire_fault.scenario.workloads:square",
                                                          "no_such_module_for_mpire_fault:f")))
    (problem,) = check_imports(scenario)
    assert problem.key == "workload.function"
    assert "ModuleNotFoundError" in problem.message and "module:function" in problem.message
    scenario = load_scenario(write(tmp_path, GOOD.replace(":square", ":no_such_function")))
    (problem,) = check_imports(scenario)
    assert "AttributeError" in problem.message


def test_a_bad_chaos_spec_is_a_problem_of_chaos_spec(tmp_path):
    chaos = pytest.importorskip("mpire_fault.chaos")
    if not hasattr(chaos, "Chaos"):
        pytest.skip("the chaos layer has not landed yet")
    scenario = load_scenario(write(tmp_path, GOOD + "[chaos]\nspec = 'task.start=explode'\n"))
    (problem,) = check_imports(scenario)
    assert problem.key == "chaos.spec"
    assert "task.start=explode" in problem.message


def test_sizes():
    assert parse_size("300MiB") == parse_size("300mib") == parse_size("300 MIB") == 300 * 2**20
    assert parse_size("1.5 GB") == parse_size("1.5gb") == 1_500_000_000
    assert parse_size(4096) == parse_size("4096") == parse_size("4096b") == 4096
    for bad, words in [("lots", "B, KB, MB, GB, KiB, MiB or GiB"), ("12XB", "'12XB'"), ("0MiB", "more than zero"),
                       (0, "more than zero"), ("-1MiB", "'-1MiB'"), ("1" * 40 + "GiB", "far more bytes"),
                       (True, "integer number of bytes"), ("٣MiB", "'٣MiB'")]:
        with pytest.raises(ValueError, match="bad size") as info:
            parse_size(bad)
        assert words in str(info.value)


def test_scenario_sizes_follow_the_chaos_rule(tmp_path):
    # One rule for both readers: what oom(...) takes, max_worker_memory takes, and the JSON Schema says the same
    import re

    from mpire_fault.chaos import parse_spec
    from mpire_fault.chaos.sizes import PATTERN

    for text in ("300mib", "300 MiB", "2GIB", "512kb", "1.5GB", "4096"):
        scenario = load_scenario(write(tmp_path, GOOD + f'[pool]\nmax_worker_memory = "{text}"\n'))
        assert scenario.pool["max_worker_memory"] == parse_size(text)
        assert parse_spec(f"task.start=oom({text})").rules[0].terms[0].arg == parse_size(text)
        assert re.match(PATTERN, text)
    found = problems(tmp_path, GOOD + '[pool]\nmax_worker_memory = "300 mebibytes"\n')
    assert "KiB, MiB or GiB (any case)" in found["pool.max_worker_memory"]
    assert not re.match(PATTERN, "300 mebibytes")


def test_discover_takes_files_and_folders(tmp_path):
    write(tmp_path, GOOD, "b.toml")
    write(tmp_path, GOOD, "a.toml")
    (tmp_path / "notes.txt").write_text("not a scenario")
    assert [Path(p).name for p in discover([str(tmp_path), str(tmp_path / "a.toml")])] == ["a.toml", "b.toml"]
    with pytest.raises(FileNotFoundError, match="no such file or folder"):
        discover([str(tmp_path / "missing")])


# ---------------------------------------------------------------------------
# The JSON Schema and the shipped scenarios


def test_schema_json_is_generated_from_the_table():
    shipped = json.loads((ROOT / "scenarios" / "schema.json").read_text())
    assert shipped == json_schema(), (
        "scenarios/schema.json is stale; regenerate it with: python -c \"from mpire_fault.scenario.schema "
        "import write_schema; write_schema('scenarios/schema.json')\"")


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_shipped_scenarios_are_valid_for_both_readers(path):
    jsonschema = pytest.importorskip("jsonschema")
    load_scenario(path)
    jsonschema.validate(tomllib.loads(path.read_text()), json_schema())


def test_the_json_schema_rejects_what_the_validator_rejects():
    jsonschema = pytest.importorskip("jsonschema")
    validator = jsonschema.Draft202012Validator(json_schema())
    good = tomllib.loads(GOOD)
    assert validator.is_valid(good)
    for bad in ({**good, "pol": {}}, {"workload": {**good["workload"], "args": [1]}},
                {**good, "pool": {"n_jobs": 0}}, {**good, "expect": {"failures": {"x": "E"}}},
                {**good, "expect": {"map_error": {"signal": "SIGKILL"}}}, {"pool": {}}):
        assert not validator.is_valid(bad), bad


def test_shipped_scenarios_cover_every_chaos_action_and_both_kinds_of_mode():
    scenarios = [load_scenario(p) for p in SHIPPED]
    assert len(scenarios) >= 12
    specs = " ".join(s.chaos["spec"] for s in scenarios if s.chaos)
    missing = [action for action in ACTIONS if f"{action}" not in specs]
    assert not missing, f"no shipped scenario uses the chaos actions {missing}"
    modes = {s.workload["mode"] for s in scenarios}
    assert modes & set(APPLY_MODES) and modes - set(APPLY_MODES)
    assert {"apply_async", "apply", "map", "imap", "imap_unordered", "map_unordered"} <= modes
    assert any(s.pool.get("task_timeout") and "hang" in (s.chaos or {}).get("spec", "") for s in scenarios)
    assert {s.pool["start_method"] for s in scenarios} == {"fork", "spawn", "forkserver"}


def test_the_original_report_is_shipped():
    scenario = load_scenario(ROOT / "scenarios" / "original_report.toml")
    assert scenario.workload["mode"] == "apply_async" and scenario.n_tasks == 10
    failures = scenario.expect["failures"]
    assert sorted(failures) == [2, 5, 7]
    assert [failures[i].error for i in (2, 5, 7)] == ["WorkerDiedError", "ValueError", "WorkerDiedError"]
    assert failures[7].signal == "SIGKILL"
    assert scenario.expect["succeeded"] == 7
