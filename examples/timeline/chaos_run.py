"""The chaos run drawn in the README (docs/timeline.png): 4 workers, apply tasks and a map, seeded faults.

Run it with `python examples/timeline/chaos_run.py`; it writes events.jsonl and run.html in the current
folder and prints where.
"""
import os
import time

from mpire_fault import WorkerDiedError, WorkerPool
from mpire_fault.events import read_events
from mpire_fault.timeline import write_timeline


def apply_all(pool, items):
    """Submit every item, then wait for each; an injected fault fails only its own task."""
    results = [pool.apply_async(work, (i,)) for i in items]
    for result in results:
        try:
            result.get(30)
        except (WorkerDiedError, ValueError):  # the faults the spec injects
            pass


def work(x):
    time.sleep(0.02 + (x % 5) * 0.01)
    return x * x

if __name__ == "__main__":
    spec = "task.start=6%sigkill;task.start=4%exit(3);task.start=4%raise(ValueError)"
    with WorkerPool(4, event_log="events.jsonl", chaos=spec, chaos_seed=11) as pool:
        apply_all(pool, range(120))
        try:
            pool.map(work, range(200), chunk_size=2)
        except (WorkerDiedError, ValueError) as exc:
            print("map aborted:", type(exc).__name__)
        apply_all(pool, range(40))
    events = read_events("events.jsonl")
    write_timeline(events, "run.html", "A real chaos run: 4 workers, SIGKILL, exit(3) and raise injected at random")
    print(f"{len(events)} events in {os.path.abspath('events.jsonl')}")
    print(f"timeline written to {os.path.abspath('run.html')}: open it in a browser")
