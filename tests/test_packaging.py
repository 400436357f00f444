"""What `pip install mpire_fault` gives a user: a wheel built from this tree, in a fresh venv without the test extras.

The wheel must hold every module (the package list in pyproject.toml is written out by hand, because the
plugin's folder installs under another name), install its runtime dependencies by itself, and be enough for
`mpire-fault verify`, `mpire-fault run` and `pytest --mp-chaos`; a peer pool that is not installed is named
with the extra that brings it.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# the wheel's import name for each source folder
SOURCES = {"mpire_fault": "mpire_fault", "pytest_plugin": "mpire_fault_pytest"}
# what pip prints when it cannot reach a package index at all
OFFLINE = ("NewConnectionError", "Temporary failure in name resolution", "Network is unreachable",
           "Max retries exceeded", "No matching distribution found for setuptools")

CHAOS_SUITE = """
from mpire_fault import WorkerPool, WorkerDiedError
import pytest

def test_a_death_reaches_the_caller(mp_chaos):
    with WorkerPool(2) as pool:
        with pytest.raises(WorkerDiedError):
            pool.apply(abs, (1,))
    assert [entry.action for entry in mp_chaos] == ["sigkill"]
"""


def _run(command: list[str], cwd: Path, env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def _pip(command: list[str], cwd: Path, env: dict[str, str]) -> None:
    done = _run(command, cwd, env)
    if done.returncode != 0:
        output = done.stdout + done.stderr
        if os.environ.get("CI") != "true" and any(marker in output for marker in OFFLINE):
            pytest.skip(f"no package index reachable for {command[3]!r} (outside CI): {output.strip()[-300:]}")
        raise AssertionError(f"{' '.join(command)} failed:\n{output[-3000:]}")


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, Path, dict[str, str]]:
    """(the venv's bin folder, a folder outside the tree to run in, the environment) with only the wheel."""
    work = tmp_path_factory.mktemp("packaging")
    env = {key: value for key, value in os.environ.items()
           if key not in ("PYTHONPATH", "VIRTUAL_ENV") and not key.startswith(("MP_CHAOS", "PYTEST_"))}
    source = work / "source"  # a clean copy: building in the tree would race the editable install
    source.mkdir()
    # the build hook and the start-up hook that put mpire_fault_chaos.pth in site-packages live at the root
    for name in ("pyproject.toml", "README.md", "_build_pth.py", "_mpire_fault_chaos_hook.py", "mpire_fault_chaos.pth"):
        shutil.copy2(ROOT / name, source / name)
    for folder in SOURCES:
        shutil.copytree(ROOT / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    wheels = work / "wheels"
    _pip([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(source)], work, env)
    (wheel,) = wheels.glob("mpire_fault-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    expected = {f"{SOURCES[path.parts[0]]}/{'/'.join(path.parts[1:])}"
                for folder in SOURCES for path in (p.relative_to(ROOT) for p in (ROOT / folder).rglob("*.py"))
                if "__pycache__" not in path.parts}
    assert expected - names == set(), "modules missing from the wheel (add the package to pyproject.toml)"
    assert "mpire_fault/py.typed" in names
    assert not any(name.startswith("pytest_plugin/") for name in names)
    assert {"mpire_fault_chaos.pth", "_mpire_fault_chaos_hook.py"} <= names  # chaos for foreign pools in subprocesses

    venv = work / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], work, env, timeout=120).check_returncode()
    bin_dir = venv / "bin"
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    _pip([str(bin_dir / "python"), "-m", "pip", "install", "-q", str(wheel)], work, env)
    done = _run([str(bin_dir / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], work, env)
    assert (Path(done.stdout.strip()) / "mpire_fault_chaos.pth").is_file(), "the .pth must land in site-packages"
    outside = work / "elsewhere"  # neither the tree nor the wheel's folder is on sys.path here
    outside.mkdir()
    return bin_dir, outside, env


@pytest.mark.timeout(300)
def test_the_wheel_alone_runs_the_kit_the_gate_and_the_plugin(installed):
    bin_dir, cwd, env = installed
    python = str(bin_dir / "python")

    done = _run([str(bin_dir / "mpire-fault"), "verify", "--help"], cwd, env)
    assert done.returncode == 0 and "--pool" in done.stdout, done.stderr

    done = _run([str(bin_dir / "mpire-fault"), "verify", "--pool", "mpire_fault", "--examples", "2",
                 "--guarantee", "apply-isolation", "--guarantee", "map-abort"], cwd, env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "| apply-isolation | pass |" in done.stdout

    # without the dask extra a Dask scenario is skipped with the line that installs it, and the gate passes
    done = _run([str(bin_dir / "mpire-fault"), "run", str(ROOT / "scenarios" / "map_clean_spawn.toml"),
                 str(ROOT / "scenarios" / "dask_apply_exit_isolated.toml")], cwd, env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert 'SKIP' in done.stdout and 'pip install "mpire_fault[dask]"' in done.stdout

    done = _run([python, "-c", "import mpire_fault_pytest.plugin, mpire_fault.verify"], cwd, env)
    assert done.returncode == 0, done.stderr
    done = _run([python, "-c", "import pytest_plugin"], cwd, env)
    assert "No module named 'pytest_plugin'" in done.stderr, "the plugin must not install under a generic name"

    # the peers are an extra: asking for one names it
    for pool in ("mpire", "loky", "pebble"):
        done = _run([str(bin_dir / "mpire-fault"), "verify", "--pool", pool], cwd, env)
        assert done.returncode == 2, done.stdout + done.stderr
        assert "pip install 'mpire_fault[peers]'" in done.stderr


@pytest.mark.timeout(300)
def test_the_wheel_registers_the_pytest_plugin(installed):
    bin_dir, cwd, env = installed
    suite = cwd / "suite"
    suite.mkdir()
    (suite / "test_chaos.py").write_text(CHAOS_SUITE)
    done = _run([str(bin_dir / "python"), "-m", "pytest", "-p", "no:cacheprovider",
                 "--mp-chaos=task.start=sigkill", "--mp-chaos-seed=3", str(suite)], cwd, env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "mp-chaos: spec='task.start=sigkill' seed=3" in done.stdout  # the plugin's header
    assert "1 passed" in done.stdout


def _readme_blocks(language: str) -> list[str]:
    text = (ROOT / "README.md").read_text()
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.S)


def test_the_readme_ci_snippets_install_what_resolves():
    # mpire_fault is not on PyPI: a CI job must install it from a git URL or a path, not by its bare name
    installs = [line for block in _readme_blocks("yaml") for line in block.splitlines() if "pip install" in line
                and not line.lstrip().startswith("#")]
    assert installs
    for line in installs:
        assert "git+" in line or " ./" in line or " ." in line, line


def test_the_readme_states_no_scenario_count_that_drifts():
    shipped = len(list((ROOT / "scenarios").glob("*.toml")))
    for stated in re.findall(r"\b(\d+) scenarios\b", (ROOT / "README.md").read_text()):
        assert int(stated) == shipped, f"README says {stated} scenarios; {shipped} ship"
