"""What fails once a run has started: a batch norm left a batch of one, a user's callback that raises, a verdict
that fails, a signal before training or during eval. Each is one message and the documented exit code, and
costs the run nothing it had already saved."""

from __future__ import annotations

import pytest

from trainctl.config.compose import compose

from conftest import run_cli

from bad_cases import no_runs


@pytest.mark.slow
def test_batch_norm_on_a_batch_of_one_is_refused_before_training(tmp_path):
    proc = run_cli(["train", "experiment=smoke", "model.batch_norm=true", "dataset.n_train=20",
                    "trainer.batch_size=15"], tmp_path)
    assert proc.returncode == 2 and "batch norm cannot train on a batch of one sample" in proc.stderr
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_a_callback_whose_constructor_raises_is_named(tmp_path):
    (tmp_path / "mymod.py").write_text(
        "from trainctl.callbacks import Callback\n"
        "class Bad(Callback):\n    def __init__(self):\n        raise RuntimeError('no budget left\\nmore')\n")
    proc = run_cli(["train", "experiment=smoke", "+callbacks.x._target_=mymod.Bad"], tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    assert "callbacks.x: mymod.Bad() raised RuntimeError: no budget left." in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mymod.py"]  # no run directory


@pytest.mark.slow
def test_a_callback_that_fails_at_fit_end_costs_the_run_nothing(tmp_path):
    proc = run_cli(["train", "experiment=smoke", "trainer.epochs=1"], tmp_path, TRAINCTL_FAULTS="raise_at_fit_end=1")
    assert proc.returncode == 0, proc.stderr[-2000:]
    [run] = list((tmp_path / "runs").iterdir())
    assert (run / "metrics.json").is_file() and "test/acc" in (run / "metrics.json").read_text()
    said = " ".join((proc.stdout + proc.stderr).split())  # the log's console handler: stdout off a terminal
    assert "callback FailAtFitEnd.on_fit_end failed (RuntimeError: injected failure at fit end); the run's " \
           "metrics are saved" in said and "Traceback" not in proc.stdout + proc.stderr
    assert "Traceback" in (run / "train.log").read_text()  # for whoever debugs it


def test_a_verdict_that_fails_leaves_the_metrics(tmp_path, monkeypatch, caplog):
    import json

    import trainctl.engine.fit as fit_module
    from trainctl.api import train

    def broken(*args, **kwargs):
        raise ZeroDivisionError("float division by zero")

    monkeypatch.setattr(fit_module, "diagnose", broken)
    cfg = compose(["experiment=smoke", "trainer.epochs=1"])
    with caplog.at_level("WARNING", logger="trainctl"):
        result = train(cfg, run_dir=tmp_path / "run")
    assert result["diagnosis"]["verdict"] == "unknown" and "test/acc" in result
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["diagnosis"]["verdict"] == "unknown"
    assert "the verdict failed (ZeroDivisionError: float division by zero)" in caplog.text


def _start(args, cwd):
    import subprocess
    import sys

    from conftest import with_test_device

    return subprocess.Popen([sys.executable, "-m", "trainctl", *with_test_device(args)], cwd=cwd, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _wait_for(condition, timeout=60.0):
    import time

    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.01)


@pytest.mark.slow
@pytest.mark.parametrize("signum", [2, 15], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("when", ["imports", "run dir made"])
def test_a_signal_before_training_exits_with_its_code_and_leaves_nothing(tmp_path, signum, when):
    import time

    proc = _start(["train", "experiment=smoke", "trainer.epochs=50"], tmp_path)
    if when == "imports":
        time.sleep(0.5)
    else:  # the moment Hydra has made the run directory: data, model and the loop are still to come
        _wait_for(lambda: (tmp_path / "runs").is_dir() and any((tmp_path / "runs").iterdir()))
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signum, err[-2000:]
    assert "Traceback" not in err and f"stopped by {'SIGINT (Ctrl-C)' if signum == 2 else 'SIGTERM'}" in err
    assert no_runs(tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("signum", [2, 15], ids=["SIGINT", "SIGTERM"])
def test_a_signal_during_eval_or_twice_exits_with_its_code(tmp_path, signum):
    import time

    (tmp_path / "not-read-yet.pt").write_bytes(b"\0" * 64)  # exists: eval goes on to import torch, then is stopped
    proc = _start(["eval", "ckpt=not-read-yet.pt"], tmp_path)
    time.sleep(0.3)
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signum and "Traceback" not in err, err[-2000:]
    proc = _start(["train", "experiment=smoke", "trainer.epochs=50"], tmp_path)
    time.sleep(0.5)
    proc.send_signal(signum)
    time.sleep(0.05)
    proc.send_signal(signum)  # a second Ctrl-C: out at once, with the same code
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signum and "Traceback" not in err, err[-2000:]
