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
