"""The verification kit: Hypothesis state machines that grade any pool against docs/guarantees.md §4.

    from mpire_fault.verify import PoolMachine, machine_for, ADAPTERS
    TestOurPool = machine_for(ADAPTERS["mpire_fault"]).TestCase    # in a pytest file
"""
from .adapters import ADAPTERS, Adapter, Hang, available
from .conformance import Verdict, check, grade, markdown, table
from .machines import GUARANTEES, REQUIRES, PoolHang, PoolMachine, machine_for

__all__ = ["ADAPTERS", "GUARANTEES", "REQUIRES", "Adapter", "Hang", "PoolHang", "PoolMachine", "Verdict", "available",
           "check", "grade", "machine_for", "markdown", "table"]
