"""The environment variables that carry chaos into every pool a process (and its children) creates.

They live outside the chaos package, so a pool reads them without importing the chaos layer.

``pytest --mp-chaos`` sets them around each test; the scenario runner clears
them so a scenario's own ``[chaos]`` is the only chaos it meets.
"""
from __future__ import annotations

SPEC = "MP_CHAOS"  # the spec; empty or unset: no chaos
SEED = "MP_CHAOS_SEED"
STATE = "MP_CHAOS_STATE"  # the directory of COUNT budgets and visit counters every process of a run shares
JOURNAL = "MP_CHAOS_JOURNAL"  # a second journal file each fault is also written to (the plugin's, per test)
# Which kinds of pool MP_CHAOS strikes: a comma list of multiprocessing, concurrent.futures, loky, mpire,
# mpire_fault (chaos.patching.KINDS); unset or empty: every kind that is installed.
POOLS = "MP_CHAOS_POOLS"
# "0" keeps the start-up hook (the _mpire_fault_chaos.pth file) from patching foreign pools in a new
# interpreter even though MP_CHAOS is set; unset or anything else: it patches them.
SUBPROCESS = "MP_CHAOS_SUBPROCESS"
NAMES = (SPEC, SEED, STATE, JOURNAL, POOLS, SUBPROCESS)
