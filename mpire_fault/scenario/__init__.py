"""Declarative resilience scenarios (``scenarios/*.toml``) and the gate that runs them.

``mpire-fault run PATH...`` validates each file (``loader``), runs it in a
process of its own with a hard timeout (``runner`` -> ``execute``), judges
what happened against ``[expect]`` (``expect``) and reports a table, JUnit
XML and JSON (``report``). The format is documented in docs/scenarios.md and
``scenarios/schema.json`` (made from ``schema.SECTIONS``).
"""
from .expect import Check, evaluate
from .loader import Matcher, Problem, Scenario, ScenarioInvalid, discover, load_scenario
from .runner import ScenarioResult, run_scenario, run_scenarios
from .schema import json_schema

__all__ = [
    "Check",
    "Matcher",
    "Problem",
    "Scenario",
    "ScenarioInvalid",
    "ScenarioResult",
    "discover",
    "evaluate",
    "json_schema",
    "load_scenario",
    "run_scenario",
    "run_scenarios",
]
