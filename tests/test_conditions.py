"""The analysis condition evaluator: what it computes, and what it refuses to run."""

from __future__ import annotations

import math

import pytest

from models.conditions import ConditionError, evaluate, parse


@pytest.mark.parametrize("text, result, expected", [
    ("result >= 0.95", 0.97, True),
    ("result >= 0.95", 0.9, False),
    ("result[0] < 0.05", [0.01, 0.2], True),
    ("all(result) and len(result) == 2", [1.0, 2.0], True),
    ("0.9 <= result[0] <= 1", [0.95], True),
    ("not (result > 3) or result == 10", 10, True),
    ("max(result) - min(result) < 0.1", [0.5, 0.55], True),
    ("isNaN(result)", math.nan, True),
    ("default(result, 0) > 1", math.nan, False),
    ("result * 100 % 7 == 1", 0.5, True),
    ("-result < 0", 2, True),
])
def test_conditions_evaluate(text, result, expected):
    assert evaluate(text, result) is expected


@pytest.mark.parametrize("text, words", [
    ("__import__('os').system('true')", "can be called"),
    ("result.__class__", "Attribute is not allowed"),
    ("open('/etc/passwd')", "can be called"),
    ("[x for x in result]", "ListComp is not allowed"),
    ("lambda: 1", "Lambda is not allowed"),
    ("result >=", "not an expression"),
    ("result ** 99999999", "Pow"),
    ("x > 1", "unknown name 'x'"),
])
def test_unsafe_or_invalid_conditions_are_refused(text, words):
    with pytest.raises(ConditionError) as error:
        parse(text)
    assert words in str(error.value)


def test_a_condition_that_does_not_fit_the_result_is_an_error_not_a_pass():
    with pytest.raises(ConditionError):
        evaluate("result[3] > 1", [1.0])
    with pytest.raises(ConditionError):
        evaluate("result > 1", None)
