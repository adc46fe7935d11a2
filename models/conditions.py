"""Analysis conditions (`successCondition`, `failureCondition`): small expressions over `result`,
parsed with Python's `ast` and evaluated by walking a whitelist of node types — never `eval()`.

Allowed: numbers, strings, True/False, `result` (a number, or a list of numbers for a vector),
indexing `result[0]`, arithmetic `+ - * / %`, comparisons (chained too), `and` / `or` / `not`,
and the functions `len`, `min`, `max`, `sum`, `abs`, `all`, `any`, `isNaN`, `default(x, fallback)`.
"""

from __future__ import annotations

import ast
import math
import operator
from typing import Any

_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
           ast.Mod: operator.mod}
_COMPARE = {ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
            ast.Gt: operator.gt, ast.GtE: operator.ge}
_FUNCTIONS = {
    "len": len, "min": min, "max": max, "sum": sum, "abs": abs, "all": all, "any": any,
    "isNaN": lambda x: isinstance(x, float) and math.isnan(x),
    "default": lambda x, fallback: fallback if x is None or (isinstance(x, float) and math.isnan(x)) else x,
}
MAX_LENGTH = 500


class ConditionError(ValueError):
    """The expression is not allowed, or cannot be evaluated on this result."""


def parse(text: str) -> ast.Expression:
    """Parse and check a condition; raises ConditionError naming what is not allowed."""
    if len(text) > MAX_LENGTH:
        raise ConditionError(f"longer than {MAX_LENGTH} characters")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as error:
        raise ConditionError(f"not an expression: {error.msg}") from None
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id not in ("result", *_FUNCTIONS):
            raise ConditionError(f"unknown name {node.id!r} (only result and {', '.join(_FUNCTIONS)})")
        if isinstance(node, ast.Call) and not (isinstance(node.func, ast.Name) and node.func.id in _FUNCTIONS):
            raise ConditionError("only the functions " + ", ".join(_FUNCTIONS) + " can be called")
        if not isinstance(node, _ALLOWED):
            raise ConditionError(f"{type(node).__name__} is not allowed in a condition")
    return tree


_ALLOWED = (ast.Expression, ast.Constant, ast.Name, ast.Load, ast.Subscript, ast.BinOp, ast.UnaryOp, ast.USub,
            ast.Not, ast.BoolOp, ast.And, ast.Or, ast.Compare, ast.Call, ast.List, ast.Tuple,
            *_BINARY, *_COMPARE)


def evaluate(text: str, result: Any) -> bool:
    """The condition's truth for `result`; ConditionError when it cannot be evaluated."""
    try:
        return bool(_eval(parse(text).body, result))
    except ConditionError:
        raise
    except (IndexError, TypeError, ZeroDivisionError, KeyError) as error:
        raise ConditionError(f"{text!r} on result {result!r}: {error}") from None


def _eval(node: ast.AST, result: Any) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        return result if node.id == "result" else _FUNCTIONS[node.id]
    if isinstance(node, ast.Subscript):
        return _eval(node.value, result)[_eval(node.slice, result)]
    if isinstance(node, ast.BinOp):
        return _BINARY[type(node.op)](_eval(node.left, result), _eval(node.right, result))
    if isinstance(node, ast.UnaryOp):
        value = _eval(node.operand, result)
        return -value if isinstance(node.op, ast.USub) else not value
    if isinstance(node, ast.BoolOp):
        values = (_eval(v, result) for v in node.values)
        return all(values) if isinstance(node.op, ast.And) else any(values)
    if isinstance(node, ast.Compare):
        left = _eval(node.left, result)
        for op, right_node in zip(node.ops, node.comparators, strict=True):
            right = _eval(right_node, result)
            if not _COMPARE[type(op)](left, right):
                return False
            left = right
        return True
    if isinstance(node, ast.Call):
        return _eval(node.func, result)(*(_eval(a, result) for a in node.args))
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_eval(e, result) for e in node.elts]
    raise ConditionError(f"{type(node).__name__} is not allowed in a condition")
