"""The filter language (hpctrack.query): every allowed construct, every refused one, and how values compare."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from hpctrack.errors import ConfigError
from hpctrack.query import MAX_FILTER_LENGTH, Expr, FilterError, filter_frame, matches, parse


@pytest.fixture
def frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "job": [0, 1, 2, 3, 4],
            "optimizer.lr": [0.1, 0.01, 0.001, 0.1, float("nan")],
            "optimizer.name": ["adam", "sgd", "adam", None, "sgd"],
            "val/loss": [1.0, 0.5, 0.25, 2.0, float("nan")],
            "val/acc:max": [0.8, 0.9, 0.95, 0.5, float("nan")],
            "loss:at=100": [3.0, 2.0, 1.0, 4.0, 5.0],
            "state": ["COMPLETED", "COMPLETED", "FAILED", "COMPLETED", "RUNNING"],
            "mixed": [1, "a", 2.5, None, "b"],
            "flag": [True, False, True, False, True],
            "a": [1, 2, 3, 4, 5],
            "b": [5, 4, 3, 2, 1],
            "model__depth": [2, 4, 2, 4, 8],
        }
    )


def jobs(frame: pd.DataFrame, text: str) -> list:
    return filter_frame(frame, text)["job"].tolist()


def refused(frame: pd.DataFrame, text: str) -> str:
    with pytest.raises(FilterError) as info:
        filter_frame(frame, text)
    message = str(info.value)
    assert "\n" not in message and message, message
    return message


# -- allowed constructs --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("job == 1", [1]),
        ("job != 1", [0, 2, 3, 4]),
        ("job < 2", [0, 1]),
        ("job <= 2", [0, 1, 2]),
        ("job > 2", [3, 4]),
        ("job >= 2", [2, 3, 4]),
        ("1 < job <= 3", [2, 3]),  # a chain is an and
        ("job > 1 and job < 4", [2, 3]),
        ("job < 1 or job > 3", [0, 4]),
        ("job > 1 & job < 4", [2, 3]),
        ("job < 1 | job > 3", [0, 4]),
        ("not job == 1", [0, 2, 3, 4]),
        ("~(job == 1)", [0, 2, 3, 4]),
        ("not not job == 1", [1]),
        ("job in [1, 3]", [1, 3]),
        ("job not in [1, 3]", [0, 2, 4]),
        ("job in []", []),
        ("job in [-1, 0]", [0]),
        ("state in ['FAILED', \"RUNNING\"]", [2, 4]),
        ("a + b == 6", [0, 1, 2, 3, 4]),
        ("a - b > 0", [3, 4]),
        ("a-b > 0", [3, 4]),  # a minus b: both are columns
        ("a * 2 == 6", [2]),
        ("a / 2 == 1.5", [2]),
        ("a // 2 == 1", [1, 2]),
        ("a % 2 == 0", [1, 3]),
        ("a ** 2 == 9", [2]),
        ("-a == -3", [2]),
        ("+a == 3", [2]),
        ("-2 ** 2 == -4 and job == 0", [0]),  # as in Python: -(2**2)
        ("2 ** -1 == 0.5 and job == 0", [0]),
        ("(a + b) * 2 == 12 and a == 1", [0]),
        ("a + b * 2 == 11", [0]),  # * before +
        ("flag", [0, 2, 4]),
        ("not flag", [1, 3]),
        ("flag == true", [0, 2, 4]),
        ("flag == True and job > 0", [2, 4]),
        ("flag != false", [0, 2, 4]),
        ("1e-2 == optimizer.lr", [1]),
        (".1 == optimizer.lr", [0, 3]),
        ("job == 1 or true", [0, 1, 2, 3, 4]),
        ("a > inf or a < -inf", []),
        ("model__depth == 4", [1, 3]),  # a column with a double underscore is data
        ("`optimizer.lr` == 0.1", [0, 3]),
        ("`val/loss` < 1", [1, 2]),
    ],
)
def test_allowed(frame, text, expected):
    assert jobs(frame, text) == expected


def test_precedence_not_and_or(frame):
    # not binds tighter than and, and tighter than or.
    assert jobs(frame, "not job == 0 and job < 2") == [1]
    assert jobs(frame, "job == 0 or job == 1 and job == 2") == [0]
    assert jobs(frame, "(job == 0 or job == 1) and job == 1") == [1]
    assert jobs(frame, "not (job == 0 or job == 1)") == [2, 3, 4]
    assert jobs(frame, "not job in [0, 1]") == [2, 3, 4]


def test_dotted_slashed_and_selector_names_bare(frame):
    assert jobs(frame, "optimizer.lr == 0.1") == [0, 3]
    assert jobs(frame, "optimizer.lr==0.1") == [0, 3]
    assert jobs(frame, "val/loss < 1") == [1, 2]
    assert jobs(frame, "val/acc:max > 0.85") == [1, 2]
    assert jobs(frame, "loss:at=100 >= 3") == [0, 3, 4]
    assert jobs(frame, "optimizer.name == 'adam' and val/acc:max > 0.9") == [2]
    assert parse("optimizer.lr < 0.1 and val/loss > 0", frame.columns).columns == ["optimizer.lr", "val/loss"]


def test_unknown_column_names_the_columns(frame):
    message = refused(frame, "nosuch > 1")
    assert "unknown column 'nosuch'" in message and "optimizer.lr" in message
    assert "unknown column 'val/nosuch'" in refused(frame, "val/nosuch > 1")


def test_strings_quotes_and_escapes(frame):
    assert jobs(frame, "state == 'FAILED'") == [2]
    assert jobs(frame, 'state == "FAILED"') == [2]
    assert jobs(frame, "state == 'with \\'quote'") == []
    assert jobs(frame, "state != 'FAILED'") == [0, 1, 3, 4]
    assert "unclosed string" in refused(frame, "state == 'FAILED")
    assert "unclosed `" in refused(frame, "`state == 1")


# -- missing values and kinds ------------------------------------------------------------------


def test_missing_values(frame):
    # NaN and None match no ==, <, in; they match != and not in; == null selects them.
    assert jobs(frame, "optimizer.lr < 1") == [0, 1, 2, 3]
    assert jobs(frame, "optimizer.lr != 0.1") == [1, 2, 4]
    assert jobs(frame, "optimizer.lr == null") == [4]
    assert jobs(frame, "optimizer.lr == nan") == [4]
    assert jobs(frame, "optimizer.lr != None") == [0, 1, 2, 3]
    assert jobs(frame, "null == optimizer.lr") == [4]
    assert jobs(frame, "optimizer.name == null") == [3]
    assert jobs(frame, "optimizer.name in ['adam', null]") == [0, 2, 3]
    assert jobs(frame, "optimizer.name not in ['adam']") == [1, 3, 4]
    assert jobs(frame, "optimizer.name < 'b'") == [0, 2]
    assert jobs(frame, "not optimizer.lr < 1") == [4]
    assert "only be compared with == or !=" in refused(frame, "optimizer.lr < null")


def test_numbers_against_strings(frame):
    # A number never equals text, nor orders with it: such rows do not match, and nothing raises.
    assert jobs(frame, "job == '1'") == []
    assert jobs(frame, "job != '1'") == [0, 1, 2, 3, 4]
    assert jobs(frame, "state > 1") == []
    assert jobs(frame, "mixed > 1") == [2]
    assert jobs(frame, "mixed == 'a'") == [1]
    assert jobs(frame, "mixed < 'c'") == [1, 4]
    assert jobs(frame, "mixed in [1, 'b']") == [0, 4]
    assert "arithmetic (+) on a column that holds text" in refused(frame, "state + 1 > 0")
    assert "arithmetic (*) needs numbers" in refused(frame, "job * 'x' > 0")


def test_division_by_zero_and_huge_powers_stay_numbers(frame):
    assert jobs(frame, "a / 0 > 1000") == [0, 1, 2, 3, 4]  # inf
    assert jobs(frame, "1 / 0 > 1 and job == 0") == []  # a scalar division by zero is NaN
    assert jobs(frame, "10 ** 10 ** 10 > 0 and job == 0") == [0]  # float overflow to inf, not a hang
    assert jobs(frame, "a ** 1000 > 1e300") == [1, 2, 3, 4]  # 5 ** 1000 is inf in floats


def test_matches_one_record():
    assert matches({"optimizer.lr": 0.1, "state": "COMPLETED"}, "optimizer.lr < 0.5 and state == 'COMPLETED'")
    assert not matches({"optimizer.lr": None}, "optimizer.lr < 0.5")
    expr = parse("x > 1")  # without columns: every name is a column
    assert isinstance(expr, Expr) and expr.columns == ["x"]
    assert matches({"x": 2}, expr) and not matches({"y": 2}, expr)


# -- refused constructs ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, says",
    [
        ("@json.codecs.sys.modules.get('os').system('id') == 0", "'@' (a Python variable) is not allowed"),
        ("job == @x", "'@'"),
        ("len(state) > 1", "function calls are not allowed"),
        ("nosuch(1) == 1", "function calls are not allowed"),
        ("state.upper() == 'A'", "not allowed"),
        ("state.str.len() > 1", "not allowed"),
        ("optimizer.lr.real > 0", "attribute access (.real) is not allowed"),
        ("'abc'.upper() == state", "attribute access ('.upper'"),
        ("(job).real > 0", "attribute access"),
        ("state[0] == 'C'", "subscripts are not allowed"),
        ("'abc'[0] == state", "subscripts are not allowed"),
        ("(state)[0] == 'C'", "subscripts are not allowed"),
        ("(job)(1) == 0", "function calls are not allowed"),
        ("__import__('os') == 0", "dunder names are not allowed"),
        ("job.__class__ == 0", "dunder names are not allowed"),
        ("__builtins__ == 0", "dunder names are not allowed"),
        ("`__class__` == 0", "dunder names are not allowed"),
        ("job = 1", "assignment ('=' at position 4) is not allowed in a filter; write '==' to compare"),
        ("(x := 1) == 1", "assignment (':='"),
        ("lambda: 1", "lambdas are not allowed"),
        ("job in [x for x in [1]]", "comprehensions are not allowed"),
        ("job == (1 if true else 2)", "'if' is not allowed"),
        ("job is None", "'is' is not allowed in a filter; write == or !="),
        ("import os", "'import' is not allowed"),
        ("state == f'{job}'", "f-strings are not allowed"),
        ('state == F"x"', "F-strings are not allowed"),
        ("state == b'x'", "b-strings are not allowed"),
        ("state == rb'x'", "rb-strings are not allowed"),
        ("job == 1; job == 2", "unexpected ';'"),
        ("job == {1: 2}", "unexpected '{'"),
        ("job in job", "'in' takes a [list]"),
        ("job in 'abc'", "'in' takes a [list]"),
        ("job == [1, 2]", "a [list] goes after 'in' or 'not in'"),
        ("job in [a]", "literal values only"),
        ("job in [1 + 1]", "literal values only"),
        ("job", "must be a condition"),
        ("state", "must be a condition"),
        ("job + 1", "must be a condition"),
        ("job and flag", "and/or/not combine conditions"),
        ("not job", "and/or/not combine conditions"),
        ("", "the filter is empty"),
        ("   ", "the filter is empty"),
        ("job ==", "the filter ends too soon"),
        ("(job == 1", "expected ')'"),
        ("job == 1)", "unexpected ')'"),
        ("job == 1 2", "unexpected 2"),
        ("job \x1b[31m == 1", "control character '\\x1b' at position 4: remove it"),
        ("job == 1\x00", "control character '\\x00'"),
        ("job \x9b== 1", "control character '\\x9b'"),
        ("job == " + "9" * 5000, "number at position 7 is too long"),
    ],
)
def test_refused(frame, text, says):
    message = refused(frame, text)
    assert says in message, message


def test_refusals_are_config_errors_that_say_what_is_allowed(frame):
    with pytest.raises(ConfigError) as info:
        filter_frame(frame, "len(state) > 1")
    assert "comparisons (== != < <= > >= in, not in)" in str(info.value)


def test_deep_nesting_and_long_filters_are_refused_in_one_line(frame):
    assert "nests deeper than" in refused(frame, "(" * 500 + "job == 1" + ")" * 500)
    assert "nests deeper than" in refused(frame, "not " * 500 + "job == 1")
    assert "nests deeper than" in refused(frame, "-" * 500 + "job == 1")
    assert jobs(frame, "(" * 50 + "job == 1" + ")" * 50) == [1]
    assert f"at most {MAX_FILTER_LENGTH}" in refused(frame, "job == 1 or " * 2000 + "job == 1")


def test_keywords_and_refused_words_as_column_names():
    frame = pd.DataFrame({"job": [0, 1], "in": [1, 2], "class": [3, 4], "null": [5, 6]})
    assert jobs(frame, "`in` == 2") == [1]
    assert jobs(frame, "class == 3") == [0]  # a column of that name is data
    assert jobs(frame, "`null` == 6") == [1]
    assert jobs(frame, "null == 6") == []  # the keyword: null is never 6


def test_not_a_string():
    with pytest.raises(FilterError, match="a filter is text, got int"):
        parse(1)  # type: ignore[arg-type]


def test_duplicate_column_names_are_a_message_not_a_traceback():
    frame = pd.DataFrame([[0, 1, 2]], columns=["job", "x", "x"])
    assert "appears 2 times" in refused(frame, "x == 1")


def test_nothing_reaches_python_eval(frame, monkeypatch):
    """The evaluator works on data: builtins eval/exec and DataFrame.query/eval are never called."""
    import builtins

    def forbidden(*args, **kwargs):
        raise AssertionError("the filter reached eval")

    monkeypatch.setattr(builtins, "eval", forbidden)
    monkeypatch.setattr(builtins, "exec", forbidden)
    monkeypatch.setattr(pd.DataFrame, "query", forbidden)
    monkeypatch.setattr(pd.DataFrame, "eval", forbidden)
    monkeypatch.setattr(pd, "eval", forbidden)
    assert jobs(frame, "optimizer.lr < 0.1 and state == 'COMPLETED' or a ** 2 in [16]") == [1, 3]
    assert math.isnan(frame["optimizer.lr"][4])


def test_long_and_or_chains_evaluate_without_deep_recursion(frame):
    # 500 clauses: well under the length limit, and a left-deep tree would overflow Python's stack.
    text = " or ".join(["job == 0"] * 500)
    assert len(filter_frame(frame, text)) == len(frame[frame.job == 0])
    assert len(filter_frame(frame, " and ".join(["job >= 0"] * 500))) == len(frame)


def test_a_long_arithmetic_chain_is_one_line_not_a_recursion_error(frame):
    with pytest.raises(FilterError, match="nests deeper") as err:
        filter_frame(frame, " + ".join(["job"] * 900) + " > 0")
    assert "\n" not in str(err.value)


def test_an_overlong_filter_is_not_echoed_whole():
    from hpctrack.aggregate import _filter

    with pytest.raises(FilterError) as err:
        _filter(pd.DataFrame({"seed": [0]}), "x" * 1_000_000)
    assert len(str(err.value)) < 400 and "1000000 characters" in str(err.value)


@pytest.mark.parametrize("op", ["==", "!=", "<", "<=", ">", ">="])
def test_text_columns_compare_as_row_by_row(op):
    """A text column against a text literal (one array operation) decides each row as a row-by-row compare would."""
    from hpctrack.query import _COMPARE, _compare_one

    values = ["adamw", None, "sgd", float("nan"), "adam", "", "b"]
    frame = pd.DataFrame({"opt": pd.Series(values, dtype=object)})
    for literal, text in (("adam", f"opt {op} 'adam'"), ("adam", f"'adam' {op} opt")):
        got = filter_frame(frame, text)["opt"].tolist()
        flip = text.startswith("'")
        want = [v for v in values
                if _compare_one(_COMPARE[op], op, *((literal, v) if flip else (v, literal)))]  # fmt: skip
        assert [str(v) for v in got] == [str(v) for v in want], text
