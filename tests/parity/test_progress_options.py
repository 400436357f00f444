"""``progress_bar_options`` and the default style, against MPIRE 2.10.2.

The same call on both pools: the same warnings (``total`` and ``leave`` are
overridden), the same errors (a non-dict, an unknown tqdm option, ``position``
with the rich style), the same defaults, a final ``N/N`` bar that stays, and
``tqdm_utils.PROGRESS_BAR_DEFAULT_STYLE`` read at call time.
"""
from __future__ import annotations

import io
import re
import types
import warnings

import pytest
from tqdm.std import TqdmKeyError

import mpire_fault
import mpire_fault.pool
import mpire_fault.tqdm_utils
from mpire_fault._core.progress import bar_options

from . import tasks

mpire = pytest.importorskip("mpire")
mpire_params = pytest.importorskip("mpire.params")
mpire_tqdm_utils = pytest.importorskip("mpire.tqdm_utils")

pytestmark = pytest.mark.timeout(60)

POOLS = {"mpire": (mpire.WorkerPool, mpire_tqdm_utils), "mpire_fault": (mpire_fault.WorkerPool, mpire_fault.tqdm_utils)}
both = pytest.mark.parametrize("which", sorted(POOLS))


def _map(which: str, n: int = 5, **kwargs):
    pool_class, _ = POOLS[which]
    with pool_class(2) as pool:
        return pool.map(tasks.square, range(n), **kwargs)


def _last_frame(text: str) -> str:
    """What the bar shows last: the text after the last carriage return."""
    return text.rstrip("\n").rsplit("\r", 1)[-1]


def _runtime_warnings(record: list) -> list[str]:
    return [str(w.message) for w in record if issubclass(w.category, RuntimeWarning)]


@both
@pytest.mark.parametrize("progress_bar", [True, False])
def test_total_and_leave_warn_and_are_overridden(which, progress_bar):
    out = io.StringIO()
    options = {"file": out, "total": 99, "leave": False}
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        assert _map(which, progress_bar=progress_bar, progress_bar_options=options) == [x * x for x in range(5)]
    messages = _runtime_warnings(record)
    assert any("'total'" in m for m in messages) and any("'leave'" in m for m in messages), messages
    assert options == {"file": out, "total": 99, "leave": False}  # the caller's dict is left alone
    if progress_bar:  # total is the number of tasks, and leave=False is ignored: the bar stays on its line
        text = out.getvalue()
        assert "5/5" in _last_frame(text) and "100%" in _last_frame(text), text
        # no frame counts to the caller's total of 99 (a plain "99" also matched a rate such as 399.47it/s)
        assert re.search(r"\d/99\b", text) is None, text
        assert text.endswith("\n")


def test_the_warnings_name_the_callers_line():
    with pytest.warns(RuntimeWarning, match="'total'") as record:
        _map("mpire_fault", progress_bar_options={"total": 3, "file": io.StringIO()})
    assert {w.filename for w in record if "'total'" in str(w.message)} == {__file__}


@both
@pytest.mark.parametrize("method", ["map", "imap", "imap_unordered", "map_unordered"])
def test_every_map_form_builds_a_finished_bar(which, method):
    out = io.StringIO()
    pool_class, _ = POOLS[which]
    with pool_class(2) as pool:
        results = list(getattr(pool, method)(tasks.square, range(7), progress_bar=True,
                                             progress_bar_options={"file": out, "desc": "Processing"}))
    assert sorted(results) == [x * x for x in range(7)]
    last = _last_frame(out.getvalue())
    assert last.startswith("Processing: 100%") and "7/7" in last, out.getvalue()


@both
@pytest.mark.parametrize("value", ["desc", [("desc", "x")], 3, types.MappingProxyType({"desc": "x"})],
                         ids=["str", "list", "int", "mappingproxy"])
@pytest.mark.parametrize("progress_bar", [True, False])
def test_a_non_dict_raises_type_error(which, value, progress_bar):
    with pytest.raises(TypeError, match="progress_bar_options should be a dictionary"):
        _map(which, progress_bar=progress_bar, progress_bar_options=value)


@both
@pytest.mark.parametrize("value", [None, {}, [], ""], ids=["None", "empty-dict", "empty-list", "empty-str"])
def test_a_falsy_value_means_no_options(which, value):
    # MPIRE reads ``progress_bar_options or {}``: an empty list passes too
    assert _map(which, progress_bar_options=value) == [x * x for x in range(5)]


@both
@pytest.mark.parametrize("progress_bar", [True, False])
def test_an_unknown_tqdm_option_fails_before_the_call(which, progress_bar):
    with pytest.raises(TqdmKeyError, match="bogus") as info:
        _map(which, progress_bar=progress_bar, progress_bar_options={"bogus": 1, "file": io.StringIO()})
    assert isinstance(info.value.__cause__, ValueError)


@both
def test_position_is_refused_for_the_rich_style(which):
    # checked before the style is loaded, so this needs no rich package
    with pytest.raises(NotImplementedError, match="position"):
        _map(which, progress_bar_style="rich", progress_bar_options={"position": 1})


@pytest.mark.parametrize("options", [None, {}, {"desc": "x", "position": 2, "mininterval": 1.0},
                                     {"dynamic_ncols": False, "maxinterval": 2.0, "unit": "items"},
                                     {"total": 4, "leave": False, "colour": "green"}])
@pytest.mark.parametrize("n_tasks", [10, None])
def test_the_bar_options_are_mpires(options, n_tasks):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        expected = mpire_params.check_progress_bar_options(options, n_tasks, "std")
        assert bar_options(options, n_tasks, "std") == expected
    assert expected["leave"] is True and expected["total"] == n_tasks


def test_the_pool_builds_its_bar_with_those_options(monkeypatch):
    seen = []
    real = mpire_fault.pool.make_progress_bar

    def spy(style, options):
        seen.append((style, dict(options)))
        return real(style, options)

    monkeypatch.setattr(mpire_fault.pool, "make_progress_bar", spy)
    out = io.StringIO()
    _map("mpire_fault", n=6, progress_bar=True, progress_bar_options={"file": out, "mininterval": 0.5})
    assert seen == [("std", {"position": 0, "dynamic_ncols": True, "mininterval": 0.5, "maxinterval": 0.5,
                             "file": out, "total": 6, "leave": True})]


@both
def test_the_bar_goes_to_stderr_by_default(which, capsys):
    _map(which, progress_bar=True)
    err = capsys.readouterr().err
    assert "5/5" in _last_frame(err), err


@both
def test_the_default_style_is_std(which):
    assert POOLS[which][1].PROGRESS_BAR_DEFAULT_STYLE == "std"


@both
def test_the_default_style_is_read_at_call_time(which, monkeypatch):
    _, utils = POOLS[which]
    monkeypatch.setattr(utils, "PROGRESS_BAR_DEFAULT_STYLE", "dashboard")
    out = io.StringIO()
    _map(which, progress_bar=True, progress_bar_options={"file": out})
    assert out.getvalue() == ""  # the dashboard style draws nothing in the terminal
    _map(which, progress_bar=True, progress_bar_style="std", progress_bar_options={"file": out})
    assert "5/5" in _last_frame(out.getvalue())  # an explicit style still wins


@both
def test_an_invalid_default_style_raises_value_error(which, monkeypatch):
    _, utils = POOLS[which]
    monkeypatch.setattr(utils, "PROGRESS_BAR_DEFAULT_STYLE", "bogus")
    with pytest.raises(ValueError, match="bogus"):
        _map(which)


@both
@pytest.mark.parametrize("method", ["map", "imap_unordered"])
def test_an_input_of_unknown_length_ends_as_n_of_n(which, method):
    out = io.StringIO()
    pool_class, _ = POOLS[which]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # MPIRE warns that it cannot size the chunks
        with pool_class(2) as pool:
            results = list(getattr(pool, method)(tasks.square, iter(range(9)), progress_bar=True,
                                                 progress_bar_options={"file": out}))
    assert sorted(results) == [x * x for x in range(9)]
    assert "9/9" in _last_frame(out.getvalue()), out.getvalue()
