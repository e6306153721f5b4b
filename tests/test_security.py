"""A checkpoint or a run directory someone else made is data: loading it never runs code. Each test plants a
payload that would create a file if it ran, drives the real CLI, and asserts the file never appears."""

import pickle
import shutil

import pytest
import torch
import yaml

from conftest import run_cli

pytestmark = pytest.mark.slow

SMOKE = ["experiment=smoke", "trainer.epochs=1", "tensorboard.figures=false"]  # figures: tests/callbacks


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("honest")
    proc = run_cli(["train", *SMOKE], cwd)
    assert proc.returncode == 0, proc.stderr
    [run] = sorted((cwd / "runs").iterdir())
    return run


def planted(tmp_path, trained_run):
    run = tmp_path / "runs" / "shared"
    shutil.copytree(trained_run, run)
    return run, tmp_path / "PWNED"


def with_stored_config(path, edit):
    state = torch.load(path, weights_only=True)
    edit(state["config"])
    torch.save(state, path)


@pytest.mark.parametrize("group", ["model", "loss"])
def test_a_target_stored_in_a_checkpoint_is_refused_by_eval(tmp_path, trained_run, group):
    run, payload = planted(tmp_path, trained_run)
    for name in ("best.pt", "last.pt"):
        with_stored_config(run / "checkpoints" / name,
                           lambda cfg: cfg.update({group: {"_target_": "os.system", "command": f"touch {payload}"}}))
    proc = run_cli(["eval", f"ckpt={run}"], tmp_path)
    assert proc.returncode == 2
    message = " ".join(proc.stderr.split())
    assert f"names code to run ({group}._target_=os.system)" in message and "trust_targets=true" in message
    assert not payload.exists()
    # Even when trusted, os.system is no class that builds a module: refused before anything is called.
    proc = run_cli(["eval", f"ckpt={run}", "trust_targets=true"], tmp_path)
    assert proc.returncode == 2 and "does not build a torch.nn.Module" in proc.stderr
    assert not payload.exists()


def test_a_target_replayed_from_a_run_directory_is_refused_by_resume(tmp_path, trained_run):
    run, payload = planted(tmp_path, trained_run)
    overrides = yaml.safe_load((run / ".hydra" / "overrides.yaml").read_text())
    overrides += ["+loss._target_=os.system", f"+loss.command='touch {payload}'"]
    (run / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    proc = run_cli(["train", f"resume={run}", "trainer.epochs=2"], tmp_path)
    assert proc.returncode == 2
    assert "names code to run (loss._target_=os.system)" in " ".join(proc.stderr.split())
    assert not payload.exists()
    proc = run_cli(["train", f"resume={run}", "trainer.epochs=2", "trust_targets=true"], tmp_path)
    assert proc.returncode == 2 and "does not build a torch.nn.Module" in proc.stderr
    assert not payload.exists()


def test_a_target_on_the_users_own_command_line_is_checked_too(tmp_path):
    payload = tmp_path / "PWNED"
    proc = run_cli(["train", *SMOKE, "+loss._target_=os.system", f"+loss.command='touch {payload}'"], tmp_path)
    assert proc.returncode == 2 and "loss._target_=os.system does not build a torch.nn.Module" in proc.stderr
    assert not payload.exists()
    assert not (tmp_path / "runs").exists()


class Payload:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.path}",)


@pytest.mark.parametrize("command", ["eval", "resume"])
def test_a_pickle_payload_in_a_checkpoint_never_runs(tmp_path, trained_run, command):
    run, payload = planted(tmp_path, trained_run)
    for name in ("best.pt", "last.pt"):
        state = torch.load(run / "checkpoints" / name, weights_only=True)
        state["extra"] = Payload(payload)
        with open(run / "checkpoints" / name, "wb") as f:
            torch.save(state, f, pickle_module=pickle)
    args = ["eval", f"ckpt={run}"] if command == "eval" else ["train", f"resume={run}", "trainer.epochs=2"]
    proc = run_cli(args, tmp_path)
    assert proc.returncode == 2
    assert "is corrupt or not a trainctl checkpoint" in proc.stderr and "Traceback" not in proc.stderr
    assert not payload.exists()


def test_hydras_rerun_flag_which_unpickles_a_file_is_refused(tmp_path):
    proc = run_cli(["train", "--experimental-rerun", str(tmp_path / "config.pickle")], tmp_path)
    assert proc.returncode == 2 and "does not take --experimental-rerun" in proc.stderr


def deploy_args(command, run, tmp_path):
    """`trainctl predict` on a small tensor file of the smoke run's inputs, or `trainctl export` to ONNX."""
    if command == "export":
        return ["export", f"ckpt={run}", "format=onnx"]
    torch.save(torch.zeros(3, 2), tmp_path / "points.pt")
    return ["predict", f"ckpt={run}", f"inputs={tmp_path / 'points.pt'}"]


@pytest.mark.parametrize("command", ["predict", "export"])
def test_predict_and_export_refuse_a_target_stored_in_a_checkpoint(tmp_path, trained_run, command):
    run, payload = planted(tmp_path, trained_run)
    with_stored_config(run / "checkpoints" / "best.pt",
                       lambda cfg: cfg.update({"model": {"_target_": "os.system", "command": f"touch {payload}"}}))
    proc = run_cli(deploy_args(command, run, tmp_path), tmp_path)
    assert proc.returncode == 2
    assert "names code to run (model._target_=os.system)" in " ".join(proc.stderr.split())
    assert not payload.exists() and not (run / "export").exists() and not (run / "predictions.csv").exists()


@pytest.mark.parametrize("command", ["predict", "export"])
def test_a_pickle_payload_in_a_checkpoint_never_runs_through_predict_or_export(tmp_path, trained_run, command):
    run, payload = planted(tmp_path, trained_run)
    state = torch.load(run / "checkpoints" / "best.pt", weights_only=True)
    state["extra"] = Payload(payload)
    with open(run / "checkpoints" / "best.pt", "wb") as f:
        torch.save(state, f, pickle_module=pickle)
    proc = run_cli(deploy_args(command, run, tmp_path), tmp_path)
    assert proc.returncode == 2
    assert "is corrupt or not a trainctl checkpoint" in proc.stderr and "Traceback" not in proc.stderr
    assert not payload.exists()


def test_input_files_for_predict_are_data_never_code(tmp_path, trained_run):
    import numpy as np

    run, payload = planted(tmp_path, trained_run)
    with open(tmp_path / "inputs.pt", "wb") as f:
        torch.save(Payload(payload), f, pickle_module=pickle)
    np.save(tmp_path / "inputs.npy", np.array([Payload(payload)], dtype=object), allow_pickle=True)
    proc = run_cli(["predict", f"ckpt={run}", f"inputs={tmp_path}/inputs.*"], tmp_path)
    assert proc.returncode == 2
    message = " ".join(proc.stderr.split())
    assert "skipped 2 of 2 input file(s) that could not be read" in message
    assert "none of the 2 input file(s) could be read" in message
    assert not payload.exists()
