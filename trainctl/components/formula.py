"""Safe arithmetic formulas from configs (`scheduler=lambda scheduler.formula="0.5 ** (epoch // 10)"`).

Parsed with `ast` and compiled, node by node, into plain closures: numbers, the named variables,
+ - * / // % **, unary signs, and the `math` module's real functions and constants, by their bare name (`cos`) or
as Python writes them (`math.cos`). No other attribute access, no calls to anything else, no `eval`: a config
file can never run code.

Evaluation time is bounded by construction, not by a clock (a timer would fail a run on a slow machine):
every value is a float, so each operation is O(1) (Python's integers would make `9 ** 9 ** 9` compute a
number with hundreds of millions of digits), powers are refused before computing when their result would
pass `LIMIT`, and a formula has at most `MAX_NODES` nodes.
"""

from __future__ import annotations

import ast
import math
import operator
from typing import Callable

from trainctl.errors import UserError

MAX_LENGTH = 1000  # characters; also keeps the parser's and the compiler's recursion shallow
MAX_NODES = 200
MAX_EXPONENT = 1024  # a fixed exponent on a variable base: 2 ** 1024 is past the largest float
LIMIT = 1e300  # the largest magnitude a power may produce (floats end near 1.8e308)

Value = Callable[[dict[str, float]], float]
FIX = "Change the formula so that it gives a finite number for every value it is given (min() and max() bound it)"


def power(base: float, exponent: float) -> float:
    """`base ** exponent` over the reals, refused before computing when it would pass LIMIT."""
    if base < 0 and not exponent.is_integer():
        raise ValueError(f"{base:g} ** {exponent:g} is not a real number (a negative base to a fractional power)")
    if base == 0 and exponent < 0:
        raise ZeroDivisionError(f"0 ** {exponent:g} divides by zero")
    if base != 0 and math.isfinite(base) and math.isfinite(exponent):
        digits = exponent * math.log10(abs(base))
        if digits > math.log10(LIMIT):
            raise OverflowError(f"{base:g} ** {exponent:g} would be about 1e{digits:.0f}, beyond the {LIMIT:g} "
                                "a formula may reach")
    return math.pow(base, exponent)


OPERATORS = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: power,
    ast.USub: operator.neg, ast.UAdd: operator.pos,
}
# name: (function, fewest arguments, most arguments or None for any number)
# The math functions of one or two real arguments, each O(1) on floats (factorial, comb and the like, which work
# on integers of any size, are left out: their time grows with their argument).
MATH_FUNCTIONS: dict[str, tuple[Callable[..., float], int, int | None]] = {
    **{name: (getattr(math, name), 1, 1) for name in (
        "cos", "sin", "tan", "acos", "asin", "atan", "cosh", "sinh", "tanh", "acosh", "asinh", "atanh", "exp",
        "expm1", "log10", "log2", "log1p", "sqrt", "fabs", "floor", "ceil", "trunc", "degrees", "radians", "erf",
        "erfc", "gamma", "lgamma")},
    **{name: (getattr(math, name), 2, 2) for name in ("atan2", "copysign", "fmod", "remainder")},
    "log": (math.log, 1, 2), "pow": (lambda a, b: power(a, b), 2, 2), "hypot": (math.hypot, 1, None),
}
FUNCTIONS: dict[str, tuple[Callable[..., float], int, int | None]] = {
    **MATH_FUNCTIONS, "min": (lambda *a: min(a), 1, None), "max": (lambda *a: max(a), 1, None), "abs": (abs, 1, 1),
}
MATH_CONSTANTS = {"pi": math.pi, "e": math.e, "tau": math.tau}
CONSTANTS = MATH_CONSTANTS


def _arity(name: str) -> str:
    low, high = FUNCTIONS[name][1:]
    if high is None:
        return f"at least {low} argument{'s' * (low != 1)}"
    if low == high:
        return f"exactly {low} argument{'s' * (low != 1)}"
    return f"{low} to {high} arguments"


def _format_env(env: dict[str, float]) -> str:
    return ", ".join(f"{k}={v}" for k, v in env.items())


def _past_exponent(node: ast.BinOp) -> bool:
    """`epoch ** 99999999999` is finite at epochs 0 and 1 only: a fixed exponent past what a float holds for a
    base of 2, on a base that varies, is refused when the formula is read, whatever the run's length."""
    exponent = node.right.operand if isinstance(node.right, ast.UnaryOp) else node.right
    return (isinstance(node.op, ast.Pow) and isinstance(exponent, ast.Constant)
            and isinstance(exponent.value, (int, float)) and not isinstance(node.left, ast.Constant)
            and abs(exponent.value) > MAX_EXPONENT)


def compile_formula(text: str, variables: tuple[str, ...], key: str) -> Callable[..., float]:
    """A function of `variables` (as keyword arguments) computing `text` as a finite float; UserError names
    `key` if the formula is invalid, or when it cannot be computed for the values it is given."""

    shown = repr(text if len(text) <= 80 else text[:77] + "...")

    def refuse(reason: str) -> UserError:
        return UserError(f"{key}={shown}: {reason}")

    if len(text) > MAX_LENGTH:
        raise refuse(f"a formula may have at most {MAX_LENGTH} characters, this one has {len(text)}")
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, RecursionError, MemoryError) as e:
        reason = e.msg if isinstance(e, SyntaxError) else "nested too deeply"
        raise UserError(f"{key}={shown} is not a formula: {reason}") from None
    nodes = sum(isinstance(n, ast.expr) for n in ast.walk(tree.body))  # numbers, names, operations, calls
    if nodes > MAX_NODES:
        raise refuse(f"a formula may have at most {MAX_NODES} parts, this one has {nodes}: simplify it")

    def math_name(node: ast.AST) -> str | None:
        """`math.cos` as `cos` (what `import math` code writes); None for any other attribute."""
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "math"
                and (node.attr in MATH_FUNCTIONS or node.attr in MATH_CONSTANTS)):
            return node.attr
        return None

    def build(node: ast.AST) -> Value:
        if (name := math_name(node)) is not None and name in MATH_CONSTANTS:
            constant = MATH_CONSTANTS[name]
            return lambda env: constant
        if isinstance(node, ast.Call) and (name := math_name(node.func)) is not None:
            node = ast.Call(func=ast.Name(id=name, ctx=ast.Load()), args=node.args, keywords=node.keywords)
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
            try:
                number = float(node.value)
            except OverflowError:
                raise refuse(f"the number {node.value} is too large") from None
            return lambda env: number
        if isinstance(node, ast.Name) and node.id in variables:
            name = node.id
            return lambda env: env[name]
        if isinstance(node, ast.Name) and node.id in CONSTANTS:
            constant = CONSTANTS[node.id]
            return lambda env: constant
        if isinstance(node, ast.BinOp) and type(node.op) in OPERATORS:
            if _past_exponent(node):
                too_large.append(node)
            op, left, right = OPERATORS[type(node.op)], build(node.left), build(node.right)
            return lambda env: op(left(env), right(env))
        if isinstance(node, ast.UnaryOp) and type(node.op) in OPERATORS:
            op, operand = OPERATORS[type(node.op)], build(node.operand)
            return lambda env: op(operand(env))
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in FUNCTIONS
                and not node.keywords and not any(isinstance(a, ast.Starred) for a in node.args)):
            function, low, high = FUNCTIONS[node.func.id]
            if not low <= len(node.args) <= (high if high is not None else len(node.args)):
                raise refuse(f"{node.func.id}() takes {_arity(node.func.id)}, not {len(node.args)} "
                             f"(in '{ast.unparse(node)}')")
            args = [build(a) for a in node.args]
            return lambda env: float(function(*(a(env) for a in args)))  # floor/ceil give ints: keep floats
        allowed = ", ".join([*variables, *CONSTANTS, *FUNCTIONS])
        raise refuse(f"'{ast.unparse(node)}' is not allowed in a formula (numbers, + - * / // % **, and {allowed}; "
                     "math.NAME works too)")

    too_large: list[ast.BinOp] = []
    compute = build(tree.body)

    def formula(**env: float) -> float:
        try:
            value = compute({k: float(v) for k, v in env.items()})
        except (ArithmeticError, ValueError) as e:
            raise refuse(f"failed at {_format_env(env)}: {e}. {FIX}") from None
        if not math.isfinite(value):
            raise refuse(f"failed at {_format_env(env)}: the result is {value}, not a finite number. {FIX}")
        return value

    formula(**{v: 0 for v in variables})  # fail now, not in epoch 37
    if too_large:  # what it gives at 2, the smallest base it overflows from; else (it vanishes) the rule itself
        formula(**{v: 2 for v in variables})
        raise refuse(f"the exponent in '{ast.unparse(too_large[0])[:80]}' is beyond +-{MAX_EXPONENT}: the power "
                     f"overflows (or vanishes) for every base from 2 (or below 0.5). Use an exponent within "
                     f"+-{MAX_EXPONENT}")
    return formula
