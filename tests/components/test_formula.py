"""Safe formulas: arithmetic only, bounded work, and every failure a UserError naming the key."""

import time

import pytest

from trainctl.components.formula import MAX_LENGTH, MAX_NODES, compile_formula
from trainctl.errors import UserError


def formula(text):
    return compile_formula(text, ("epoch",), "scheduler.formula")


@pytest.mark.parametrize(("text", "value"), [("0.95 ** epoch", 0.95**3), ("cos(pi * epoch / 6)", 0.0),
                                             ("max(0.1, 1 - epoch / 10)", 0.7), ("-epoch // 2 + 5", 3),
                                             ("min(epoch)", 3), ("log(8, 2)", 3), ("floor(epoch / 2)", 1),
                                             ("(-2) ** 3", -8), ("0 ** 0", 1)])
def test_formula_values(text, value):
    result = formula(text)(epoch=3)
    assert result == pytest.approx(value, abs=1e-12) and type(result) is float


@pytest.mark.parametrize("text", ["__import__('os').system('true')", "epoch.__class__", "open('x')",
                                  "[1, 2]", "lambda: 1", "x + 1", "epoch if epoch else 1", "max(*epoch)",
                                  "cos(x=1)", "True + 1"])
def test_formula_refuses_anything_but_arithmetic(text):
    with pytest.raises(UserError, match="not allowed in a formula|is not a formula"):
        formula(text)


@pytest.mark.parametrize(("text", "message"), [
    ("min()", r"min\(\) takes at least 1 argument, not 0 \(in 'min\(\)'\)"),
    ("cos(epoch, 1)", r"cos\(\) takes exactly 1 argument, not 2 \(in 'cos\(epoch, 1\)'\)"),
    ("log(1, 2, 3)", r"log\(\) takes 1 to 2 arguments, not 3"),
])
def test_wrong_number_of_arguments_is_named(text, message):
    with pytest.raises(UserError, match=rf"^scheduler\.formula='.*': {message}"):
        formula(text)


@pytest.mark.parametrize(("text", "message"), [
    ("9**9**9**9", r"9 \*\* 3.8742e\+08 would be about 1e369693100, beyond the 1e\+300"),
    ("10 ** 400", "would be about 1e400"),
    ("0.5 ** -2000", "would be about 1e602"),
    ("floor(1e300) ** 3", "would be about 1e900"),
    ("1" + "0" * 400, "is too large"),
])
def test_huge_powers_are_refused_before_computing(text, message):
    started = time.perf_counter()
    with pytest.raises(UserError, match=message):
        formula(text)
    assert time.perf_counter() - started < 1


def test_formula_size_is_bounded():
    with pytest.raises(UserError, match=rf"^scheduler\.formula='-{{77}}\.\.\.': .* at most {MAX_LENGTH} characters"):
        formula("-" * 100_000 + "1")  # the message shows the formula's start, not all of it
    with pytest.raises(UserError, match=f"at most {MAX_NODES} parts, this one has {2 * MAX_NODES - 1}"):
        formula("+".join(["1"] * MAX_NODES))


@pytest.mark.parametrize(("text", "message"), [
    ("1 / epoch", "failed at epoch=0: float division by zero"),
    ("(epoch - 3) ** 0.5", r"failed at epoch=0: -3 \*\* 0.5 is not a real number"),
    ("0 ** (epoch - 1)", r"failed at epoch=0: 0 \*\* -1 divides by zero"),
    ("log(0)", "failed at epoch=0: math domain error"),
    ("exp(1000)", "failed at epoch=0: math range error"),
    ("1e308 * 10", "failed at epoch=0: the result is inf, not a finite number"),
    ("1 % 0", "failed at epoch=0: float modulo"),
])
def test_formula_errors_surface_at_build_time(text, message):
    with pytest.raises(UserError, match=rf"^scheduler\.formula='[^']*': {message}"):
        formula(text)
