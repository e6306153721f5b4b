"""`trainctl eval` builds the model exactly as training does and checks overrides as `train` does."""

import json

import pytest

from conftest import run_cli, run_dirs

pytestmark = pytest.mark.slow

RUN = ["experiment=smoke", "trainer.epochs=3", "trainer.ema_decay=0.9"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("eval")
    proc = run_cli(["train", *RUN], cwd)
    assert proc.returncode == 0, proc.stderr
    [run] = run_dirs(cwd)
    return cwd, run


def test_eval_on_val_reproduces_the_best_epochs_validation(trained):
    cwd, run = trained
    proc = run_cli(["eval", f"ckpt={run / 'checkpoints' / 'best.pt'}", "split=val"], cwd)
    assert proc.returncode == 0, proc.stderr
    evaluated = json.loads((run / "eval_val.json").read_text())
    metrics = json.loads((run / "metrics.json").read_text())
    # The EMA weights, the same split and the same step settings: the very numbers validation logged.
    assert evaluated["val/loss"] == metrics["val/loss"] and evaluated["val/acc"] == metrics["val/acc"]
    lines = proc.stdout.splitlines()
    assert any(line.strip() == "eval: val split" for line in lines)  # a title that says what was evaluated
    assert f"checkpoint: {run / 'checkpoints' / 'best.pt'}" in lines  # the path whole, on its own line
    assert "val accuracy per class" in proc.stdout
    for name, acc in evaluated["val/acc_per_class"].items():
        assert any(line.startswith(f"│ {name} ") and f"{acc:.4f}" in line for line in lines), name


@pytest.mark.parametrize(("override", "message"), [
    ("trainer.precision=fp8", "trainer.precision='fp8' is not allowed: choose one of 32, bf16, fp16"),
    ("trainer.eval_batch_size=0", "trainer.eval_batch_size=0 is out of range: it must be >= 1"),
    ("model.foo=1", "foo"),
    ("model.hidden=abc", "hidden"),
])
def test_eval_rejects_bad_overrides_naming_the_key(trained, override, message):
    cwd, run = trained
    proc = run_cli(["eval", f"ckpt={run / 'checkpoints' / 'best.pt'}", override, "out=bad.json"], cwd)
    assert proc.returncode == 2
    assert message in " ".join(proc.stderr.split())
    assert "Traceback" not in proc.stderr
    assert not (cwd / "bad.json").exists()


def test_eval_without_arguments_is_a_usage_error(tmp_path):
    proc = run_cli(["eval"], tmp_path)
    assert proc.returncode == 2 and "which checkpoint?" in proc.stderr


def test_a_missing_checkpoint_says_what_a_run_directory_means(tmp_path):
    proc = run_cli(["eval", "ckpt=runs/nope"], tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "ckpt=runs/nope: no such file or directory" in proc.stderr and "checkpoints/best.pt" in proc.stderr
