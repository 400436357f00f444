"""The spec grammar under hostile input: printing round-trips for every valid spec, and nothing but
ChaosSpecError ever comes out of the parser (no OverflowError, no int() digit-limit ValueError)."""
from __future__ import annotations

import pickle
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mpire_fault import ChaosSpecError
from mpire_fault.chaos import ACTIONS, SELECTORS, SITES, Chaos, Rule, Spec, Term, parse_spec
from mpire_fault.chaos import spec as spec_module
from mpire_fault.chaos.spec import MAX_SECONDS, MAX_WHOLE, total_memory

# ---------------------------------------------------------------------------
# The reported cases, one by one.


@pytest.mark.parametrize("text, normal", [
    ("task.start=0.00001%sigkill", "task.start=0.00001%sigkill"),
    ("task.start=0.0000100%sigkill", "task.start=0.00001%sigkill"),
    ("task.start=0.000000000000000000001%exit(2)", "task.start=0.000000000000000000001%exit(2)"),
    ("idle=99.99999999999999%off", "idle=99.99999999999999%off"),
    ("idle=100.000%off", "idle=off"),
    ("task.start=0.1%7*sleep(0.5)", "task.start=0.1%7*sleep(0.5)"),
])
def test_small_percentages_print_without_an_exponent(text, normal):
    parsed = parse_spec(text)
    assert str(parsed) == normal
    assert "e" not in str(parsed).split("=", 1)[1].split("%")[0]
    assert parse_spec(str(parsed)) == parsed


def test_a_term_built_in_code_prints_back_too():
    spec = Spec((Rule("task.start", (), (Term("sigkill", percent=1e-05),)),))
    assert str(spec) == "task.start=0.00001%sigkill"
    assert parse_spec(str(spec)) == spec


def test_a_chaos_object_with_a_tiny_percentage_crosses_to_spawn_workers():
    chaos = Chaos("task.start=0.00001%sigkill", seed=3)
    try:
        clone = pickle.loads(pickle.dumps(chaos))  # what a spawn/forkserver worker does
        assert clone.rules == chaos.rules and clone.seed == 3
    finally:
        chaos.close()


HUGE = "9" * 400
BAD_NUMBERS = [  # (spec, words in the message, position)
    (f"task.start=oom({HUGE})", "far more bytes than any machine has", 15),
    (f"task.start=oom({'9' * 305})", "far more bytes than any machine has", 15),
    (f"task.start=oom({HUGE}.5GiB)", "far more bytes than any machine has", 15),
    (f"task.start={'1' * 5000}*exit", "count", 11),
    (f"task.start={'1' * 5000}%exit", "percentage", 11),
    (f"task.start=50%{'1' * 5000}*exit", "count", 14),
    (f"task.start[task={'1' * 5000}]=exit", "task= must be a whole number from 0 to", 16),
    (f"task.start[worker={'7' * 4400}]=exit", "worker= must be a whole number", 18),
    (f"task.start[attempt={2**63}]=exit", "attempt= must be a whole number", 19),
    (f"task.start={2**63}*exit", "count", 11),
    (f"task.start=exit({'1' * 5000})", "exit code from 0 to 255", 16),
    ("task.start=os_exit(256)", "exit code from 0 to 255", 19),
    ("task.start=exit(-1)", "exit code from 0 to 255", 16),
    (f"task.start=sleep({HUGE})", f"at most {MAX_SECONDS} seconds", 17),
    (f"task.start=hang({MAX_SECONDS + 1})", f"at most {MAX_SECONDS} seconds", 16),
    ("task.start=٣*exit", "unknown action", 11),  # other scripts' digits are not numbers here
    ("task.start[task=٣]=exit", "task= takes a non-negative integer", 16),
    ("task.start=exit(٣)", "takes an integer exit code", 16),
]


@pytest.mark.parametrize("text, words, position", BAD_NUMBERS, ids=lambda v: v[:40] if isinstance(v, str) else v)
def test_out_of_range_numbers_are_spec_errors_at_their_position(text, words, position):
    with pytest.raises(ChaosSpecError) as info:
        parse_spec(text)
    assert words in str(info.value)
    assert info.value.position == position
    assert len(str(info.value).splitlines()[0]) < 300  # a 5000-digit number is cut short in the message


def test_the_largest_whole_numbers_still_parse():
    spec = parse_spec(f"task.start[task={MAX_WHOLE},worker=0007]={MAX_WHOLE}*exit(255)")
    assert spec.rules[0].selectors == (("task", MAX_WHOLE), ("worker", 7))
    assert spec.rules[0].terms[0].count == MAX_WHOLE
    assert parse_spec(str(spec)) == spec


def test_oom_larger_than_the_machine_is_refused_at_parse_time(monkeypatch):
    total = total_memory()
    assert total and total > 2**20
    with pytest.raises(ChaosSpecError, match="more than this machine's"):
        parse_spec(f"task.start=oom({total + 1})")
    assert parse_spec(f"task.start=oom({total})").rules[0].terms[0].arg == total
    monkeypatch.setattr(spec_module, "total_memory", lambda: 100 * 2**20)
    with pytest.raises(ChaosSpecError, match="oom\\(200MiB\\) asks for 209715200 bytes") as info:
        parse_spec("task.start=oom(200MiB)")
    assert info.value.position == 15


# ---------------------------------------------------------------------------
# Properties: specs written from the grammar, and text that is not.

_SPACE = st.sampled_from(["", "", "", " ", "  ", "\t"])
_WHOLE = st.one_of(st.integers(0, 1000), st.integers(0, MAX_WHOLE), st.just(MAX_WHOLE))


def _zeros(draw, digits: str) -> str:
    return "0" * draw(st.integers(0, 2)) + digits if draw(st.booleans()) else digits


def _decimal(value: float) -> str:
    """A float written out in full (no exponent), as the grammar wants it."""
    return format(Decimal(value), "f")  # the exact binary expansion: reads back as the same float


@st.composite
def _percent(draw) -> str:
    value = draw(st.one_of(
        st.sampled_from([1e-05, 0.00001, 0.5, 1.0, 12.5, 99.99999999999999, 100.0, 5e-324, 1e-300, 2.5e-08]),
        st.floats(min_value=5e-324, max_value=100.0, allow_nan=False, allow_infinity=False),
    ))
    short = format(Decimal(repr(value)), "f")
    return draw(st.sampled_from([short, _decimal(value)]))


@st.composite
def _argument(draw, kind: str) -> str:
    if kind == "int":
        return _zeros(draw, str(draw(st.integers(0, 255))))
    if kind == "seconds":
        value = draw(st.one_of(st.sampled_from([0.0, 1e-05, 0.5, 100.0, float(MAX_SECONDS)]),
                               st.floats(0, MAX_SECONDS, allow_nan=False)))
        return draw(st.sampled_from([format(Decimal(repr(value)), "f"), str(int(value))]))
    if kind == "size":
        unit = draw(st.sampled_from(["", "B", "KB", "KiB", "MB", "MiB", "GB", "GiB", "kib", "mb"]))
        scale = {"": 1, "b": 1, "kb": 10**3, "kib": 2**10, "mb": 10**6, "mib": 2**20, "gb": 10**9, "gib": 2**30}
        limit = max(1, min(2**33, total_memory() or 2**30) // scale[unit.lower()])
        number = str(draw(st.integers(1, limit)))
        if draw(st.booleans()) and limit > 2:
            number = str(draw(st.integers(1, limit - 1))) + "." + str(draw(st.integers(0, 999)))
        return number + draw(_SPACE) + unit
    return draw(st.sampled_from(["ValueError", "RuntimeError", "KeyError", "MemoryError", "SystemExit",
                                 "ZeroDivisionError"]))


@st.composite
def _term_text(draw) -> str:
    action = draw(st.sampled_from(sorted(ACTIONS)))
    kind, required = ACTIONS[action]
    text = draw(_SPACE)
    if draw(st.booleans()):
        text += draw(_percent()) + draw(_SPACE) + "%" + draw(_SPACE)
    if draw(st.booleans()):
        text += _zeros(draw, str(max(1, draw(_WHOLE)))) + draw(_SPACE) + "*" + draw(_SPACE)
    text += action
    if kind is not None and (required or draw(st.booleans())):
        text += draw(_SPACE) + "(" + draw(_SPACE) + draw(_argument(kind)) + draw(_SPACE) + ")"
    return text + draw(_SPACE)


@st.composite
def spec_texts(draw) -> str:
    rules = []
    for _ in range(draw(st.integers(1, 3))):
        rule = draw(_SPACE) + draw(st.sampled_from(SITES)) + draw(_SPACE)
        names = draw(st.lists(st.sampled_from(SELECTORS), unique=True, max_size=3))
        if names:
            rule += "[" + ",".join(f"{draw(_SPACE)}{n}{draw(_SPACE)}={draw(_SPACE)}{_zeros(draw, str(draw(_WHOLE)))}"
                                   for n in names) + "]"
        rule += "=" + "->".join(draw(st.lists(_term_text(), min_size=1, max_size=3)))
        rules.append(rule)
    return ";".join(rules) + draw(st.sampled_from(["", ";", " ; "]))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec_texts())
def test_every_valid_spec_prints_to_text_that_parses_back_the_same(text):
    parsed = parse_spec(text)
    printed = str(parsed)
    assert parse_spec(printed) == parsed
    assert str(parse_spec(printed)) == printed  # printing is a fixed point
    assert "e-" not in printed.replace("RuntimeError", "").replace("ValueError", "")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(SITES),
                          st.floats(min_value=5e-324, max_value=100.0, allow_nan=False),
                          st.one_of(st.none(), st.integers(1, MAX_WHOLE))), min_size=1, max_size=3))
def test_records_built_in_code_print_back_too(rows):
    spec = Spec(tuple(Rule(site, (("task", count or 0),), (Term("off", percent=percent, count=count),))
                      for site, percent, count in rows))
    assert parse_spec(str(spec)) == spec


def check_only_spec_errors(text: str) -> None:
    """Parsing ``text`` either fails with a ChaosSpecError inside the text or round-trips."""
    try:
        parsed = parse_spec(text)
    except ChaosSpecError as error:
        assert 0 <= error.position <= len(text)
    else:
        assert parse_spec(str(parsed)) == parsed


_NASTY = ["9" * 400, "1" * 5000, "٣", "²", "1e-05", "-", "inf", "nan", "0" * 50, ".", "%", "*", "(", ")", "[", "]",
          "=", ";", "->", " ", "\x00", "\u2028", "𝟗"]


@st.composite
def mutated_specs(draw) -> str:
    text = draw(spec_texts())
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(text)))
        how = draw(st.sampled_from(["insert", "delete", "replace"]))
        piece = draw(st.sampled_from(_NASTY) | st.text(max_size=3))
        if how == "insert":
            text = text[:at] + piece + text[at:]
        elif how == "delete":
            text = text[:at] + text[at + draw(st.integers(1, 5)):]
        else:
            text = text[:at] + piece + text[at + len(piece):]
    return text


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=60) | mutated_specs())
def test_any_text_is_either_a_spec_or_a_spec_error(text):
    check_only_spec_errors(text)
