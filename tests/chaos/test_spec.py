"""The chaos spec parser: every malformed spec is a positioned ChaosSpecError; printing round-trips."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mpire_fault import ChaosSpecError
from mpire_fault.chaos import ACTIONS, SELECTORS, SITES, Chaos, Rule, Spec, parse_size, parse_spec

from .test_spec_fuzz import check_only_spec_errors

GOOD = [
    ("task.start[task=3]=sigkill", "task.start[task=3]=sigkill"),
    ("task.start=10%exit(1)", "task.start=10%exit(1)"),
    ("init[worker=0]=1*raise(RuntimeError)", "init[worker=0]=1*raise(RuntimeError)"),
    ("task.start=5%oom(300MiB);idle=1%sigkill", "task.start=5%oom(300MiB);idle=1%sigkill"),
    (" task.start = 50% 2*exit( 3 ) -> off ;", "task.start=50%2*exit(3)->off"),
    ("args.unpickle[task=1,attempt=0]=os_exit(0)", "args.unpickle[task=1,attempt=0]=os_exit(0)"),
    ("result.pickle=0.5%hang->sleep(0.25)", "result.pickle=0.5%hang->sleep(0.25)"),
]

BAD = [  # (spec, words the message must contain, position)
    ("", "empty chaos spec", 0),
    ("   ", "empty chaos spec", 0),
    ("task.strt=exit", "unknown site 'task.strt'", 0),
    ("task.start=explode", "unknown action 'explode'", 11),
    ("task.start=0%exit", "percentage 0%", 11),
    ("task.start=101%exit", "percentage 101%", 11),
    ("task.start=x%exit", "unknown action 'x'", 11),
    ("task.start=0*exit", "count 0*", 11),
    ("task.start=oom(12XB)", "bad size '12XB'", 15),
    ("task.start=oom", "oom needs an argument", 14),
    ("task.start[bob=1]=exit", "unknown selector 'bob'", 11),
    ("task.start[task=-1]=exit", "task= takes a non-negative integer", 16),
    ("task.start;idle=off", "expected '=' between the site and its action", 10),
    ("task.start=exit;;idle=off", "empty rule", 16),
    ("task.start=raise(NotABuiltin)", "'NotABuiltin' is not a builtin exception", 17),
    ("task.start=raise(print)", "'print' is not a builtin exception", 17),
    ("task.start=sigkill(9)", "sigkill takes no argument", 19),
    ("task.start=exit(x)", "takes an integer exit code", 16),
    ("task.start=hang(soon)", "takes a number of seconds", 16),
    ("task.start=exit(", "unclosed '('", 15),
    ("task.start=5", "'N%' (chance) or 'N*' (count)", 11),
    ("task.start=exit junk", "unexpected 'j'", 16),
]


@pytest.mark.parametrize("text, normal", GOOD)
def test_good_specs_parse_and_print_normalized(text, normal):
    assert str(parse_spec(text)) == normal
    assert parse_spec(normal) == parse_spec(text)


@pytest.mark.parametrize("text, words, position", BAD)
def test_bad_specs_name_the_problem_and_point_at_it(text, words, position):
    with pytest.raises(ChaosSpecError) as info:
        parse_spec(text)
    error = info.value
    assert isinstance(error, ValueError)
    assert words in str(error)
    assert error.spec == text and error.position == position
    if text:
        assert text in str(error) and "^" in str(error)


def test_sizes():
    assert parse_size("300MiB") == 300 * 2**20
    assert parse_size("1.5GB") == 1_500_000_000
    assert parse_size("4096") == 4096
    assert parse_size("300mib") == parse_size("300 MIB") == 300 * 2**20  # the scenario files' rule too
    for bad in ("12XB", "MiB", "0MiB", "-1MiB"):
        with pytest.raises(ValueError, match="bad size"):
            parse_size(bad)
    with pytest.raises(ChaosSpecError, match="B, KB, MB, GB, KiB, MiB or GiB"):
        parse_spec("task.start=oom(300 mebibytes)")


def test_seeds_must_be_non_negative_integers():
    assert Chaos("idle=off", seed=7).seed == 7
    for bad in (-1, "x", 1.5, True):
        with pytest.raises(ValueError, match="non-negative integer"):
            Chaos("idle=off", seed=bad)


def test_env_seed_error_names_the_variable():
    with pytest.raises(ValueError, match="MP_CHAOS_SEED"):
        Chaos.from_env({"MP_CHAOS": "idle=off", "MP_CHAOS_SEED": "seven"})
    assert Chaos.from_env({"MP_CHAOS": "  "}) is None
    assert Chaos.from_env({"MP_CHAOS": "idle=off", "MP_CHAOS_SEED": "3"}).seed == 3


_ARGS = {
    "int": st.integers(0, 255).map(str),
    "seconds": st.sampled_from(["0", "0.25", "3", "1.5"]),
    "size": st.sampled_from(["1MiB", "300MiB", "2GB", "4096", "12KiB"]),
    "exception": st.sampled_from(["ValueError", "RuntimeError", "KeyError", "MemoryError", "SystemExit"]),
}


@st.composite
def terms(draw):
    action = draw(st.sampled_from(sorted(ACTIONS)))
    kind, required = ACTIONS[action]
    arg_text = None
    if kind is not None and (required or draw(st.booleans())):
        arg_text = draw(_ARGS[kind])
    percent = draw(st.sampled_from([100.0, 50.0, 1.0, 0.5, 12.5]))
    count = draw(st.none() | st.integers(1, 50))
    text = (f"{percent:g}%" if percent != 100 else "") + (f"{count}*" if count else "") + action
    text += f"({arg_text})" if arg_text is not None else ""
    return parse_spec(f"idle={text}").rules[0].terms[0]


@st.composite
def specs(draw):
    rules = []
    for _ in range(draw(st.integers(1, 4))):
        names = draw(st.lists(st.sampled_from(SELECTORS), unique=True, max_size=3))
        selectors = tuple((name, draw(st.integers(0, 20))) for name in names)
        rule_terms = tuple(draw(st.lists(terms(), min_size=1, max_size=3)))
        rules.append(Rule(draw(st.sampled_from(SITES)), selectors, rule_terms))
    return Spec(tuple(rules))


@settings(max_examples=200, deadline=None)
@given(specs())
def test_every_printed_spec_parses_back_to_the_same_records(spec):
    assert parse_spec(str(spec)) == spec


_ALPHABET = st.sampled_from(list("task.startidleinitexitresultpickleargsunpickle[]=,;%*->()0123456789 "
                                 "sigkilloomMiBraiseValueError"))


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=_ALPHABET, max_size=40) | st.text(max_size=30))
def test_garbage_only_ever_raises_chaos_spec_error(text):
    check_only_spec_errors(text)
