"""Every error a user can cause: one clear message, non-zero exit, no traceback, nothing written."""

import pytest

from trainctl.device import available_devices

from conftest import NO_SYSTEM_DATA, run_cli

pytestmark = pytest.mark.slow

ABSENT_DEVICE = next(d for d in ("mps", "cuda") if d not in available_devices())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["model=cnnn"], "unknown model 'cnnn'; did you mean 'cnn'?"),
        (["-m", "model=mlp,lenett"], "unknown model 'lenett'; did you mean 'lenet'?"),
        (["optimizer=adamm"], "unknown optimizer 'adamm'; did you mean 'adam'?"),
        (["optimizer.lrr=0.1"], "optimizer.lrr"),
        (["trainer.epochs=abc"], "trainer.epochs"),
        (["optimizer.lr=-1"], "optimizer.lr=-1.0 is out of range: it must be > 0"),
        (["trainer.batch_size=0"], "trainer.batch_size=0 is out of range: it must be >= 1"),
        (["dataset.val_fraction=1.5"], "dataset.val_fraction=1.5 is out of range: it must be < 1"),
        (["objective=val/f1"], "objective='val/f1' is not a metric trainctl computes"),
        ([f"device={ABSENT_DEVICE}"], f"no {ABSENT_DEVICE} device is available"),
        (["device=cuda:99"], "device=cuda:99 was asked for but"),
        (["device=cuda:x"], "device=cuda:x: the part after ':' must be a device number, e.g. device=cuda:0"),
        (["device=cpu:0"], "device=cpu:0: the CPU is one device and takes no index"),
        (["dataset.root=nowhere", NO_SYSTEM_DATA], "dataset 'fashionmnist' not found"),
        (["model=cnn", "dataset=blobs"], "model 'cnn' needs images"),
        (["-m", "experiment=smoke", "optimizer.lr=-2"], "optimizer.lr=-2.0 is out of range"),
    ],
)
def test_user_errors(tmp_path, args, message):
    proc = run_cli(["train", *args], tmp_path)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert message in " ".join(output.split()), output
    assert "Traceback" not in output
    # Errors found before training leave no runs/ at all; those found while building the model leave it empty.
    assert not list((tmp_path / "runs").rglob("*"))  # no run directory, config copy, log or checkpoint


def test_bad_swept_value_removes_its_job_directory(tmp_path):
    proc = run_cli(["train", "-m", "experiment=smoke", "optimizer.lr=-1,0.01"], tmp_path)
    assert proc.returncode == 2
    assert "optimizer.lr=-1.0 is out of range" in proc.stderr
    assert not list((tmp_path / "runs").rglob("checkpoints"))
    assert not list((tmp_path / "runs").rglob(".hydra"))


def test_missing_data_message_lists_places_and_fixes(tmp_path):
    proc = run_cli(["train", "dataset=mnist", "dataset.root=mine", NO_SYSTEM_DATA], tmp_path)
    text = " ".join(proc.stderr.split())
    assert proc.returncode == 2
    assert "mine/MNIST/raw" in text and "dataset.download=true" in text
    assert "dataset-mnist" not in text  # Debian has no MNIST package: the hint names where the files come from
    assert "ossci-datasets.s3.amazonaws.com/mnist" in text
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [(["trian"], "unknown command 'trian'; did you mean 'train'?"),
     (["list", "modle"], "unknown group 'modle'; did you mean 'model'?")],
)
def test_cli_usage_errors(tmp_path, args, message):
    proc = run_cli(args, tmp_path)
    assert proc.returncode == 2
    assert message in proc.stderr and "Traceback" not in proc.stderr
