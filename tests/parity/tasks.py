"""Module-level task functions, importable by spawn workers."""
import os
import time


def square(x):
    return x * x


def pid_of(_x):
    time.sleep(0.005)
    return os.getpid()


def with_id(worker_id, x):
    return worker_id, x


def count_calls(worker_state, x):
    worker_state["n"] = worker_state.get("n", 0) + 1
    return worker_state["n"]


def init_state(worker_state):
    worker_state["n"] = 100


def exit_state(worker_state):
    return worker_state.get("n", 0)


def read_shared(shared, i):
    return shared[i]


def affinity(_x):
    return sorted(os.sched_getaffinity(0))


def sleepy_init():
    time.sleep(30)


def sleepy_exit():
    time.sleep(30)


def make_array(n):
    import numpy

    return numpy.arange(n)


# ---------------------------------------------------------------- drop-in suite
def ident_state(worker_id, shared, worker_state, x):
    worker_state["n"] = worker_state.get("n", 0) + 1
    return worker_id, id(shared), worker_state["n"], x * 2


def shared_identity(shared, _x):
    return id(shared)


def raise_value_error():
    raise ValueError("hook says no")


def spin(seconds):
    """Busy Python code: a soft interrupt lands within a bytecode, in a process or a thread."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        pass


def spin_init():
    spin(30)


def spin_exit():
    spin(30)
    return "unreachable"


def interrupted_task(marker_dir, seconds):
    """Overruns its timeout; its finally block leaves a marker, proving it was interrupted, not killed."""
    try:
        spin(seconds)
    finally:
        with open(os.path.join(marker_dir, f"finally-{os.getpid()}-{time.monotonic_ns()}"), "w"):
            pass
    return "finished"


def pid_and_thread(_x=None):
    import threading

    return os.getpid(), threading.get_ident()


def wait_on_event(event, timeout):
    return event.wait(timeout)


def exit_value(worker_id):
    return ("bye", worker_id)


def tag_init(tag_dir, tag):
    """worker_init that records which tag ran in which worker (process and thread)."""
    import threading

    global _TAG
    _TAG = tag
    with open(os.path.join(tag_dir, f"{tag}-{os.getpid()}-{threading.get_ident()}"), "w"):
        pass


def read_tag(_x):
    import threading

    time.sleep(0.01)
    return _TAG, os.getpid(), threading.get_ident()


_TAG = None


def worker_of(worker_id, _x):
    return worker_id


def chunk_shape(chunk):
    return chunk.shape


def double(x):
    return x * 2


def use_sync(shared, i):
    event, lock, value, array = shared
    with lock:
        value.value += 1
    array[i % len(array)] = i
    return event.is_set()


def proxy_put(shared, i):
    shared[i] = i * i
    return i


def exit_now(code):
    import sys

    sys.exit(code)


def maybe_nested_pool(_x):
    from mpire_fault import WorkerPool

    with WorkerPool(2) as pool:
        return pool.map(square, [1, 2])


def stubborn(seconds):
    """Swallows the soft timeout and goes on: only the kill after the grace period ends it."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            spin(0.05)
        except TimeoutError:
            pass
    return "outlasted"


def mark_life(directory):
    """worker_init that leaves one marker per worker life (threads reuse idents, so names are unique)."""
    with open(os.path.join(directory, f"life-{time.monotonic_ns()}-{os.getpid()}"), "w"):
        pass


def sleep_then(seconds, value):
    time.sleep(seconds)
    return value


def state_counter(worker_state, x):
    worker_state["seen"] = worker_state.get("seen", 0) + 1
    return x * 10


def shared_lookup(shared, key):
    return shared[key]


def exit_pid():
    return os.getpid()


def nap_first(*args, **kwargs):
    """Sleep for the ``nap`` keyword or the first argument: the insights' longest tasks are then known."""
    seconds = kwargs.get("nap", args[0] if args else 0.0)
    time.sleep(seconds)
    return seconds


def nap_square(x):
    time.sleep(0.002 * (x % 4))
    return x * x


def caller_name(_x=None):
    """The name of the frame that called the task function (``timed`` when insights wrap it)."""
    import sys

    return sys._getframe(1).f_code.co_name


def die_once(directory, x):
    """SIGKILL the worker the first time ``x`` runs (a marker file remembers); return x*x after."""
    import signal

    try:
        os.close(os.open(os.path.join(directory, f"died-{x}"), os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return x * x
    os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(10)


# ---------------------------------------------------------------- worker_lifespan
def life_token(worker_state, _x):
    """A token of this worker life (a new process, or a new thread under threading, gets a new one)."""
    return worker_state.setdefault("life", os.urandom(8).hex())


def load_model(worker_state):
    worker_state["model"] = 42


def use_model(worker_state, x):
    return worker_state["model"] + x


def use_model_where(worker_state, x):
    time.sleep(0.02)
    return worker_state["model"] + x, os.getpid()


def start_sum(worker_state):
    worker_state["sum"] = 0


def add_to_sum(worker_state, x):
    worker_state["sum"] += x
    return x


def report_sum(marker_dir, worker_state):
    """worker_exit: the sum of the items this life ran, and a marker per run (counts the executions)."""
    with open(os.path.join(marker_dir, f"exit-{time.monotonic_ns()}-{os.getpid()}"), "w"):
        pass
    return worker_state["sum"]


def report_tagged_sum(worker_state):
    return "tagged", worker_state["sum"]


def refuse_exit():
    raise ValueError("exit says no")


def noop(*_args):
    return None


def nap_pid(seconds):
    time.sleep(seconds)
    return os.getpid()


def zero_spins_others_square(worker_id, events, x):
    """MPIRE's test_defunct_processes_kill_apply: worker 0 spins once every other worker ran something."""
    if worker_id == 0 and not events[0].is_set():
        for event in events[1:]:
            event.wait(30)
        events[0].set()
        while True:
            pass
    events[worker_id].set()
    time.sleep(0.01)  # long enough that no worker runs every task before the others are up
    return x * x


def show_call(*args, **kwargs):
    return args, kwargs


def view_of(kind, n):
    """A dict view as a task's result: MPIRE's queues send it as a list (a generator they cannot send)."""
    if kind == "generator":
        return (i for i in range(n))
    return getattr({i: i * i for i in range(n)}, kind)()
