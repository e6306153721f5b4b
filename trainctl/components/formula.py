"""Safe arithmetic formulas from configs (`scheduler=lambda scheduler.formula="0.5 ** (epoch // 10)"`).

Parsed with `ast` and evaluated by walking the tree: numbers, the named variables, + - * / // % **, unary
signs, and a few math functions. No attribute access, no calls to anything else, no `eval`: a config file
can never run code.
"""

from __future__ import annotations

import ast
import math
import operator
from typing import Callable

from trainctl.errors import UserError

OPERATORS = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow,
    ast.USub: operator.neg, ast.UAdd: operator.pos,
}
FUNCTIONS = {"cos": math.cos, "sin": math.sin, "exp": math.exp, "log": math.log, "sqrt": math.sqrt,
             "min": min, "max": max, "abs": abs, "floor": math.floor, "ceil": math.ceil}
CONSTANTS = {"pi": math.pi, "e": math.e}


def compile_formula(text: str, variables: tuple[str, ...], key: str) -> Callable[..., float]:
    """A function of `variables` (as keyword arguments) computing `text`; UserError names `key` if invalid."""
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as e:
        raise UserError(f"{key}={text!r} is not a formula: {e.msg}") from None

    def check(node: ast.AST) -> None:
        if isinstance(node, ast.Expression):
            return check(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
            return None
        if isinstance(node, ast.Name) and (node.id in variables or node.id in CONSTANTS):
            return None
        if isinstance(node, ast.BinOp) and type(node.op) in OPERATORS:
            return check(node.left) or check(node.right)
        if isinstance(node, ast.UnaryOp) and type(node.op) in OPERATORS:
            return check(node.operand)
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in FUNCTIONS
                and not node.keywords):
            return [check(a) for a in node.args] and None
        allowed = ", ".join([*variables, *CONSTANTS, *FUNCTIONS])
        raise UserError(f"{key}={text!r}: '{ast.unparse(node)}' is not allowed in a formula "
                        f"(numbers, + - * / // % **, and {allowed})")

    check(tree)

    def evaluate(node: ast.AST, env: dict[str, float]) -> float:
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            return env[node.id] if node.id in env else CONSTANTS[node.id]
        if isinstance(node, ast.BinOp):
            return OPERATORS[type(node.op)](evaluate(node.left, env), evaluate(node.right, env))
        if isinstance(node, ast.UnaryOp):
            return OPERATORS[type(node.op)](evaluate(node.operand, env))
        return FUNCTIONS[node.func.id](*(evaluate(a, env) for a in node.args))

    def formula(**env: float) -> float:
        try:
            return float(evaluate(tree.body, env))
        except (ArithmeticError, ValueError) as e:
            raise UserError(f"{key}={text!r} failed at {env}: {e}") from None

    formula(**{v: 0 for v in variables})  # fail now, not in epoch 37
    return formula
