"""What the issue-23 probe found silently accepted, unclear, a traceback or a hang: each refused cleanly now, and
the formulas it tried (corpus: bad_cases.py)."""

from __future__ import annotations

import pytest

from trainctl.errors import UserError

from conftest import run_cli

from bad_cases import assert_refused_cleanly


HUGE = "9" * 150  # an integer no 64-bit number holds


LR_SEARCH = ["train", "-m", "hydra/sweeper=optuna", "experiment=smoke", "optimizer.lr=interval(0.01,0.1)",
             "hydra.sweeper.n_trials=1"]


PROBE_CASES = [
    (["train", "experiment=smoke", "+hydra.foo=1"], "hydra.foo is not a setting of hydra"),
    (["train", "experiment=smoke", "+hydra.job.nme=x"], "hydra.job.nme is not a setting of hydra.job; did you mean"),
    (["train", "+model=lenet"], "+model=lenet: model already has a choice in trainctl's defaults"),
    (["train", "experiment=smoke", "+model=mlp"], "write model=mlp (without +)"),
    (["train", "--", "experiment=smoke"], "`--` is not an override"),
    (["train", "experiment=smoke", "--", "trainer.epochs=1"], "remove the `--`"),
    (["train", "experiment=smoke", "hparams_search=nosuch"], "unknown hparams_search 'nosuch'"),
    (["train", "experiment=smoke", "@=1"], "the override '@=1' names no config group before '@'"),
    (["train", "experiment=smoke", "~experiment"], "~experiment: it drops the experiment=smoke you gave"),
    (["train", "~experiment"], "~experiment: experiment is empty unless you choose one"),
    (["train", "experiment=smoke", f"trainer.epochs={HUGE}"], "trainer.epochs=99999999999999999999...(150 characters) "
                                                               "is out of range: it must be <= 100000"),
    (["train", "experiment=smoke", f"model.hidden=[{HUGE}]"], "is too large: an integer setting holds at most"),
    (["summary", f"model.hidden=[{HUGE}]"], "model.hidden=[9999999999999999999...(152 characters) is too large"),
    (["summary", "model=torchvision", "model.weights=BOGUS"],
     "model.weights=BOGUS names no pretrained weights of mobilenet_v3_small: use one of IMAGENET1K_V1, DEFAULT"),
    (["train", "experiment=smoke", "scheduler=lambda", "scheduler.formula=epoch ** 99999999999", "trainer.epochs=3"],
     "failed at epoch=2: 2 ** 1e+11 would be about 1e30102999566, beyond the 1e+300 a formula may reach. Change "
     "the formula"),
    ([*LR_SEARCH, "hydra.sweeper.storage=sqlite:///no/such/dir/x.db"],
     "hydra.sweeper.storage=sqlite:///no/such/dir/x.db: the folder no/such/dir does not exist: create it first"),
    ([*LR_SEARCH, "hydra.sweeper.storage=journal:missing/j.log"], "/missing does not exist"),
    ([*LR_SEARCH, "objective=[val/acc,val/loss]", "hydra.sweeper.direction=maximize"],
     "hydra.sweeper.direction=maximize is one direction: give one per metric, e.g. "
     "hydra.sweeper.direction=[maximize,minimize]"),
]


@pytest.mark.slow
@pytest.mark.parametrize(("args", "culprit"), PROBE_CASES, ids=[" ".join(a)[:80] for a, _ in PROBE_CASES])
def test_what_the_probe_found_is_refused_cleanly(tmp_path, args, culprit):
    proc = run_cli(args, tmp_path, timeout=120)  # ~experiment trained the default config: it looked like a hang
    assert_refused_cleanly(proc, culprit)
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no run, sweep or storage folder


def test_formulas_take_the_math_module_by_its_name():
    from trainctl.components.formula import compile_formula

    formula = compile_formula("math.cos(epoch) + 1", ("epoch",), "scheduler.formula")
    assert formula(epoch=2) == pytest.approx(__import__("math").cos(2) + 1)
    both = compile_formula("math.pi * hypot(3, epoch) + math.tanh(0) + pow(2, epoch)", ("epoch",), "k")
    assert both(epoch=4) == pytest.approx(__import__("math").pi * 5 + 16)
    for text in ("math.factorial(epoch)", "math.__dict__", "math.cos.__call__(1)", "os.cos(1)"):
        with pytest.raises(UserError, match="is not allowed in a formula"):
            compile_formula(text, ("epoch",), "k")
    with pytest.raises(UserError, match=r"failed at epoch=3: math range error\. Change the formula"):
        compile_formula("math.exp(1000 * epoch)", ("epoch",), "k")(epoch=3)


@pytest.mark.slow
def test_a_formula_with_math_functions_trains(tmp_path):
    proc = run_cli(["train", "experiment=smoke", "trainer.epochs=1", "scheduler=lambda",
                    "scheduler.formula='math.cos(epoch) + 1'"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
