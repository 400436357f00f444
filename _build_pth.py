"""Build-time only (not installed): ship ``mpire_fault_chaos.pth`` to the root of site-packages.

setuptools has no setting for a file at the root of the wheel, so two
commands are extended (``[tool.setuptools.cmdclass]`` in pyproject.toml):
``build_py`` copies it next to the packages of a normal build, and
``editable_wheel`` (``pip install -e .``, PEP 660, which never runs
``build_py``'s output into the wheel) writes it into the editable wheel.
Files at a wheel's root land in site-packages, and pip removes them on
uninstall like any other file of the distribution.
"""
from __future__ import annotations

import os
from typing import Any

from setuptools.command.build_py import build_py
from setuptools.command.editable_wheel import editable_wheel

PTH = "mpire_fault_chaos.pth"
HERE = os.path.dirname(os.path.abspath(__file__))


class BuildPy(build_py):
    def run(self) -> None:
        super().run()
        if not getattr(self, "editable_mode", False):
            self.copy_file(os.path.join(HERE, PTH), os.path.join(self.build_lib, PTH), preserve_mode=False)

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        outputs = list(super().get_outputs(include_bytecode))
        if not getattr(self, "editable_mode", False):
            outputs.append(os.path.join(self.build_lib, PTH))
        return outputs


class _WithPth:
    """An editable-wheel strategy that also writes our .pth file into the wheel."""

    def __init__(self, strategy: Any) -> None:
        self.strategy = strategy

    def __enter__(self) -> Any:
        self.strategy.__enter__()
        return self

    def __exit__(self, *exc_info: Any) -> Any:
        return self.strategy.__exit__(*exc_info)

    def __call__(self, wheel: Any, files: list[str], mapping: dict[str, str]) -> None:
        self.strategy(wheel, files, mapping)
        with open(os.path.join(HERE, PTH), encoding="utf-8") as handle:
            wheel.writestr(PTH, handle.read())


class EditableWheel(editable_wheel):
    def _select_strategy(self, *args: Any, **kwargs: Any) -> Any:
        return _WithPth(super()._select_strategy(*args, **kwargs))
