"""Task functions of the example suite (module level, so every start method can import them)."""


def square(x: int) -> int:
    return x * x
