"""The real `trainctl` command (run by `run_cli`, in-process unless a process is needed), in a temp dir: happy paths."""

import json
import subprocess
import sys

import pytest
import torch
import yaml

from conftest import NO_SYSTEM_DATA, run_cli, run_dirs
from trainctl.cli import COMMANDS

pytestmark = pytest.mark.slow

RUN_FILES = (".hydra/config.yaml", "train.log", "metrics.json", "checkpoints/last.pt", "checkpoints/best.pt")


def assert_complete_run(run):
    for name in RUN_FILES:
        assert (run / name).is_file(), f"{run} lacks {name}"
    assert list(run.glob("events.out.tfevents.*")), f"{run} has no TensorBoard events"


def test_help_is_fast_and_does_not_import_torch():
    code = "import sys; from trainctl.cli import main; main(['--help']); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "train [overrides]" in out and "list [GROUP [OPT]]" in out and "doctor" in out
    assert out.strip().endswith("False"), "trainctl --help imported torch"


def test_smoke_experiment(tmp_path):
    proc = run_cli(["train", "experiment=smoke"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    [run] = run_dirs(tmp_path)
    assert_complete_run(run)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test/acc"] >= 0.9 and metrics["epochs"] == 2
    assert "test/acc" in proc.stdout  # the summary table
    saved = yaml.safe_load((run / ".hydra" / "config.yaml").read_text())
    assert saved["model"]["name"] == "mlp" and saved["dataset"]["name"] == "blobs"


def test_runs_never_share_a_directory(tmp_path):
    for _ in range(2):
        assert run_cli(["train", "experiment=smoke", "trainer.epochs=1"], tmp_path).returncode == 0
    assert len(run_dirs(tmp_path)) == 2


def test_cnn_on_idx_files(tmp_path, fake_fashion):
    proc = run_cli(["train", "model=cnn", "dataset=fashionmnist", f"dataset.root={fake_fashion}", NO_SYSTEM_DATA,
                    "trainer.epochs=2"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    [run] = run_dirs(tmp_path)
    assert_complete_run(run)
    assert "cnn-fashionmnist" in run.name
    assert json.loads((run / "metrics.json").read_text())["test/acc"] > 0.5  # 10 classes: chance is 0.1
    state = torch.load(run / "checkpoints" / "best.pt", weights_only=True)
    assert state["config"]["dataset"]["root"] == str(fake_fashion)


def test_two_job_multirun(tmp_path):
    proc = run_cli(["train", "-m", "experiment=smoke", "optimizer.lr=0.01,0.05"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    [sweep] = run_dirs(tmp_path)
    assert sweep.name.startswith("sweep_")
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir())
    assert [j.name for j in jobs] == ["0_optimizer.lr=0.01", "1_optimizer.lr=0.05"]
    lrs = []
    for job in jobs:
        assert_complete_run(job)
        lrs.append(yaml.safe_load((job / ".hydra" / "config.yaml").read_text())["optimizer"]["lr"])
    assert lrs == [0.01, 0.05]
    assert (sweep / "multirun.yaml").is_file() and (sweep / "results.csv").is_file()


def test_cfg_job_prints_the_config_and_writes_nothing(tmp_path):
    proc = run_cli(["train", "--cfg", "job", "model=lenet", "optimizer=sgd", "optimizer.lr=0.05"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "objective: val/acc" in proc.stdout and "${" not in proc.stdout  # values, not interpolations
    cfg = yaml.safe_load(proc.stdout)
    assert cfg["model"]["name"] == "lenet" and cfg["optimizer"] == {
        "name": "sgd", "no_decay_bias_norm": False, "lr": 0.05, "momentum": 0.0, "nesterov": False,
        "dampening": 0.0, "weight_decay": 0.0}
    assert not (tmp_path / "runs").exists()


def test_hydra_help_lists_groups(tmp_path):
    proc = run_cli(["train", "--help"], tmp_path)
    assert proc.returncode == 0
    for group in ("model", "dataset", "optimizer", "scheduler", "loss", "device", "experiment", "sweep", "debug"):
        assert f"\n{group}: " in proc.stdout
    assert "model: cnn, cnn1d, gru, lenet" in proc.stdout
    assert "schema/" not in proc.stdout  # the typed schemas are internal, not options to choose


def test_list_shows_every_component(tmp_path):
    proc = run_cli(["list"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    for name in ("mlp", "cnn", "lenet", "fashionmnist", "mnist", "blobs", "sgd", "adam", "none", "step", "cosine",
                 "plateau", "cross_entropy", "mse", "auto", "cuda", "mps"):
        assert name in proc.stdout
    assert "hidden=[512, 512]" in proc.stdout  # main parameters come from the option's YAML
    only_models = run_cli(["list", "model"], tmp_path).stdout
    assert "lenet" in only_models and "fashionmnist" not in only_models


def test_list_off_a_terminal_cuts_no_value_whatever_the_columns(tmp_path):
    from trainctl.config.compose import option_description

    proc = run_cli(["list", "model"], tmp_path, COLUMNS="60")
    assert proc.returncode == 0, proc.stderr
    [cnn] = [line for line in proc.stdout.splitlines() if line.startswith("│ cnn ")]
    assert option_description("model", "cnn") in cnn  # one line, whole, however long
    assert "channels=[16, 32]" in cnn


def test_list_of_one_option_shows_each_key_with_its_help(tmp_path):
    proc = run_cli(["list", "model", "cnn"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    text = " ".join(proc.stdout.replace("│", " ").split())
    for key in ("model.channels [16, 32]", "model.activation relu", "model.norm null", "model.norm_groups null",
                "model.pool max", "model.dropout2d 0.0", "model.dropout 0.0", "model.batch_norm false"):
        assert key in text
    assert "GroupNorm(1, C)" in text and "one of none|batch|layer|group|instance|null" in text
    rnn = " ".join(run_cli(["list", "model", "rnn"], tmp_path).stdout.split())
    assert "model.nonlinearity" in rnn and "one of tanh|relu" in rnn and "model.bias" in rnn
    proc = run_cli(["list", "model", "cnnn"], tmp_path)
    assert proc.returncode == 2 and "unknown model 'cnnn'; did you mean 'cnn'?" in proc.stderr


def test_doctor_reports_versions_devices_and_data(tmp_path, fake_fashion):
    (tmp_path / "data").symlink_to(fake_fashion)  # the default dataset.root is ./data
    proc = run_cli(["doctor"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    for text in ("torch", "torchvision", "hydra-core", "optuna", "python", "device=auto chooses:",
                 "blobs", "generated"):
        assert text in proc.stdout
    assert "found in data" in proc.stdout.replace("\n", "")


@pytest.mark.parametrize(("line", "expected"), [("trainctl ", " ".join(COMMANDS)), ("trainctl tr", "train"),
                                                 ("trainctl e", " ".join(c for c in COMMANDS if c.startswith("e")))])
def test_shell_completion_offers_the_subcommands_first(tmp_path, line, expected):
    proc = run_cli(["-sc", "query=bash"], tmp_path, COMP_LINE=line)
    assert proc.returncode == 0 and proc.stdout.split() == expected.split()


def test_shell_completion(tmp_path):
    proc = run_cli(["-sc", "query=bash"], tmp_path, COMP_LINE="trainctl train model=")
    assert proc.returncode == 0, proc.stderr
    assert {"model=cnn", "model=mlp", "model=lenet"} <= set(proc.stdout.split())
    proc = run_cli(["-sc", "query=bash"], tmp_path, COMP_LINE="trainctl train optimizer.l")
    assert proc.stdout.split() == ["optimizer.lr="]
    install = run_cli(["-sc", "install=bash"], tmp_path).stdout
    assert "complete -p trainctl 2>" in install
