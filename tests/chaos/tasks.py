"""Importable task functions for chaos tests (spawn workers import them)."""
import os
import time


def square(x):
    return x * x


def marked(directory, x):
    with open(os.path.join(directory, f"{x}.{os.getpid()}.{time.monotonic_ns()}"), "w"):
        pass
    return x * x


def tiny_sleep(x):
    import time

    time.sleep(0.001)
    return x
