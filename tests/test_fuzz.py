"""Fuzzing the faces: every bad command line (the cases the issues list, then generated ones) is a
one-line error naming the value, exit code 2, no traceback, nothing written; bad values given to
the library are NasforgeErrors with short one-line messages."""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fuzz_cases import BAD_ARCHS, GENERATED_OPTIONS, LISTED, Sandbox
from nasforge.errors import MAX_MESSAGE, NasforgeError

FAST = settings(deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, database=None)


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    return Sandbox(tmp_path_factory.mktemp("fuzz"))


def _assert_clean(box, argv, expect):
    out = box.run(argv, expect)
    shown = " ".join(box.fill(a) for a in argv)[:300]
    assert out.kind == "clean", f"{shown}: {out.kind}, exit {out.code}, stderr: {out.err[-1500:]}"
    assert not out.wrote, f"{shown} wrote {out.wrote}"


@pytest.mark.parametrize("case", LISTED, ids=lambda c: f"{c.source}:{' '.join(c.argv)[:60]}")
def test_listed_bad_command_lines_are_one_line_errors(sandbox, case):
    _assert_clean(sandbox, case.argv, case.expect)


def test_nothing_is_created_by_refused_commands(sandbox):
    root = sandbox.root
    assert not (root / "missing").exists()
    assert not (root / "scratch" / "does_not_exist.db").exists() and not (root / "scratch" / "new.db").exists()
    assert list((root / "scratch").iterdir()) == []  # the working folder of every case
    assert not (root.parent / "x").exists()  # --study ../../x


@settings(FAST, max_examples=120)
@given(st.sampled_from(GENERATED_OPTIONS), st.data())
def test_generated_bad_options_are_one_line_errors(sandbox, option, data):
    prefix, flag, values = option
    value = data.draw(st.sampled_from(values))
    if value == "" and flag in ("--strategy", "--metric", "--report", "--dataset", "--workdir"):
        return  # an empty name means "not given" for these (the default is used)
    # the message names the value, or the option (argparse, for a value it takes for an option)
    # (an empty value is named as the setting it fills, e.g. "space ''" for --space '')
    # (a folder given where a file or a dataset is expected is named by its path)
    expect = (flag, _named(value)) if value != "" else (flag, f"{flag.lstrip('-').replace('-', '_')} ''")
    _assert_clean(sandbox, (*prefix, flag, value), expect)


def _named(value: str) -> str:
    """What the message must contain: the value as the user typed it (its start when long)."""
    return value[:40].split("\n")[0]


@settings(FAST, max_examples=25)
@given(st.sampled_from(BAD_ARCHS) | st.text(max_size=40).filter(lambda t: not t.startswith("-")))
def test_architecture_strings_for_cost(sandbox, text):
    out = sandbox.run(("cost", text, "--C", "2", "--N", "1", "--input-size", "8"))
    if out.code == 0:  # a random string that happens to be a valid cell is fine
        return
    assert out.kind in ("clean", "other") and out.code == 2 and "Traceback" not in out.err, out.err[-800:]
    assert len(out.err.strip().splitlines()) == 1 and not out.wrote


# --- the library ---------------------------------------------------------------------------------
_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
    | st.sampled_from(["nb201:", "nb201:cifar10+", "nbgraph:nope", ":", "x" * 700_000, "|none~0|", "none"]),
    lambda c: st.lists(c, max_size=6) | st.tuples(c, c) | st.dictionaries(st.text(max_size=4), c, max_size=3),
    max_leaves=12)


def _one_line(call):
    try:
        call()
    except NasforgeError as exc:
        msg = str(exc)
        assert "\n" not in msg and 0 < len(msg) <= MAX_MESSAGE + 100, msg[:300]
        return "refused"
    return "accepted"


@settings(FAST, max_examples=150)
@given(_VALUES)
def test_api_inputs_are_refused_with_short_one_line_errors(value):
    from nasforge.estimation import load_benchmark
    from nasforge.spaces import get_space
    from nasforge.strategies import get_strategy
    from nasforge.study import get_storage

    space = get_space("nb201")
    _one_line(lambda: space.coerce(value))
    _one_line(lambda: space.parse(value))
    _one_line(lambda: get_space(value))
    _one_line(lambda: get_strategy(value, space))
    if not (isinstance(value, str) and value.startswith(("nb201", "nbgraph"))):
        _one_line(lambda: load_benchmark(value, data_dir="/nonexistent-nasforge-data"))
    if not isinstance(value, str) or "://" not in value:
        _one_line(lambda: get_storage(value) if value is not None and value != ":memory:" else None)


def test_the_reported_api_cases():
    from nasforge.errors import NotAnArchitecture
    from nasforge.estimation import load_benchmark
    from nasforge.spaces import get_space

    for bad in (None, 123, [1, 2]):
        with pytest.raises(NasforgeError, match="named by a string"):
            load_benchmark(bad)
    with pytest.raises(NotAnArchitecture, match="is not an NB201 architecture"):
        get_space("nb201").coerce([["none"]] * 6)
    with pytest.raises(TypeError):  # still a TypeError for code that caught one
        get_space("nb201").coerce([["none"]] * 6)
    with pytest.raises(NasforgeError) as info:
        load_benchmark("x" * 630_000)
    assert len(str(info.value)) < 1000 and "630,000 characters" in str(info.value)


@pytest.mark.parametrize("value", [math.nan, math.inf, -1.0, "x", True])
def test_budgets_of_optimize_are_checked(value):
    from nasforge.spaces import get_space
    from nasforge.study import Study

    study = Study("b", get_space("nb201"), "acc")
    with pytest.raises(NasforgeError, match="max_cost"):
        study.optimize(None, lambda a: None, max_cost=value)
