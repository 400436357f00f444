"""Arguments and results travel as they do in MPIRE (whose worker unpacks them and whose queues pickle them)."""
from __future__ import annotations

import numpy as np
import pytest

from mpire_fault import WorkerPool

from . import tasks

pytestmark = pytest.mark.timeout(120)

APPLY_ARGS = [
    (range(2), ((0, 1), {})),
    (frozenset([1]), ((1,), {})),
    ({"a": 1}, (("a",), {})),  # MPIRE's worker unpacks a dict given as args (with kwargs given) into its keys
    ([1, 2], ((1, 2), {})),
    ((3,), ((3,), {})),
    ("ab", (("ab",), {})),  # str and bytes are one argument
    (b"ab", ((b"ab",), {})),
    (7, ((7,), {})),
]


@pytest.mark.parametrize("module", ["mpire", "mpire_fault"])
def test_apply_args_are_unpacked_as_mpire_unpacks_them(module):
    pool_class = pytest.importorskip(module).WorkerPool
    with pool_class(1, start_method="fork") as pool:
        for args, expected in APPLY_ARGS:
            assert pool.apply(tasks.show_call, args) == expected, args
        array = np.arange(3)
        got_args, _ = pool.apply(tasks.show_call, array)
        assert len(got_args) == 1 and list(got_args[0]) == [0, 1, 2]  # an array is one argument


@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_a_bytearray_item_is_unpacked_and_dict_views_travel_as_lists(start_method):
    with WorkerPool(1, start_method=start_method) as pool:
        assert pool.map(tasks.show_call, [bytearray(b"ab")]) == [((97, 98), {})]
        assert pool.map(tasks.show_call, [{"a": 1}.keys()]) == [(("a",), {})]
        assert pool.map(tasks.view_of, [("items", 2), ("values", 3), ("keys", 1)]) == [
            [(0, 0), (1, 1)], [0, 1, 4], [0]]
        assert pool.apply(tasks.view_of, ("items", 1)) == [(0, 0)]
        with pytest.raises(TypeError, match="pickle"):  # what even multiprocessing cannot send still fails
            pool.apply(tasks.view_of, ("generator", 1))
