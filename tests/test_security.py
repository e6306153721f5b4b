"""A checkpoint or a run directory someone else made is data: loading it never runs code. Each test plants a
payload that would create a file if it ran, drives the real CLI, and asserts the file never appears."""

import pickle
import shutil

import pytest
import torch
import yaml

from conftest import run_cli, run_dirs

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


# --- A shared run directory is data: resume= replays no Hydra flag, no file, no code (issue 23) -------------

def files_under(folder):
    """Every file under `folder` with its size and mtime: what a refused command must leave unchanged."""
    return {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file()}


def save_overrides(run, lines):
    overrides = yaml.safe_load((run / ".hydra" / "overrides.yaml").read_text())
    (run / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump([*overrides, *lines]))


def pickled_payload(path, marker):
    path.write_bytes(pickle.dumps(Payload(marker)))
    return path


@pytest.mark.parametrize("lines", [
    ["--exp={pickle}"],                                     # an abbreviation, absolute path
    ["--experimental-re=runs/shared/config.pickle"],        # relative, inside the run directory
    ["--experimental-rerun", "{pickle}"],
    ["--config-dir={run}/conf", "hydra/job_logging=evil"],  # a logging config that appends to any file
    ["--config-dir={run}/conf", "--config-name=evil"],      # a replaced primary config
    ["-m"],                                                 # a resume turned into a multirun
    ["+hydra.job_logging.handlers.x={{class: logging.FileHandler, filename: {marker}}}"],
    ["experiment=../../../../../../../../..{run}/conf/evil"],  # a group option by path
])
def test_resume_of_a_crafted_run_directory_runs_nothing_and_writes_nothing(tmp_path, trained_run, lines):
    run, marker = planted(tmp_path, trained_run)
    pickle_file = pickled_payload(run / "config.pickle", marker)
    (run / "conf" / "hydra" / "job_logging").mkdir(parents=True)
    handler = {"version": 1, "handlers": {"x": {"class": "logging.FileHandler", "filename": str(marker)}},
               "root": {"handlers": ["x"], "level": "INFO"}}
    (run / "conf" / "hydra" / "job_logging" / "evil.yaml").write_text(yaml.safe_dump(handler))
    (run / "conf" / "evil.yaml").write_text("# @package _global_\nhydra:\n  job_logging:\n"
                                            + "".join(f"    {line}\n" for line in yaml.safe_dump(handler).splitlines()))
    lines = [line.format(pickle=pickle_file, run=run, marker=marker) for line in lines]
    save_overrides(run, lines)
    before = files_under(tmp_path)
    proc = run_cli(["train", f"resume={run}", "trainer.epochs=2"], tmp_path)
    assert proc.returncode == 2, proc.stderr
    message = " ".join(proc.stderr.split())
    assert f"holds '{lines[0]}', which" in message and "someone edited this run directory" in message
    assert "Traceback" not in proc.stderr and message.count("error:") == 1
    assert not marker.exists()
    assert files_under(tmp_path) == before  # nothing written, inside the run directory or outside it


def test_a_module_inside_a_run_directory_is_never_imported(tmp_path, trained_run):
    run, marker = planted(tmp_path, trained_run)
    (run / "evil.py").write_text(f"import pathlib\npathlib.Path({str(marker)!r}).touch()\n"
                                 "import torch\nclass Net(torch.nn.Module):\n    pass\n")
    target = "model._target_=runs.shared.evil.Net"
    # Trusted or not, from the saved overrides, a checkpoint or the user's own command line: never imported.
    save_overrides(run, [f"+{target}"])
    proc = run_cli(["train", f"resume={run}", "trainer.epochs=2", "resume_allow_changes=true",
                    "trust_targets=true"], tmp_path)
    assert proc.returncode == 2
    assert "is a module inside the run directory" in proc.stderr and "never imports code from one" in proc.stderr
    with_stored_config(run / "checkpoints" / "best.pt", lambda cfg: cfg.update({"model": {"_target_": target[15:]}}))
    proc = run_cli(["eval", f"ckpt={run}", "trust_targets=true"], tmp_path)
    assert proc.returncode == 2 and "is a module inside the run directory" in proc.stderr
    proc = run_cli(["train", *SMOKE, f"+{target}"], tmp_path)
    assert proc.returncode == 2 and "is a module inside the run directory" in proc.stderr
    assert not marker.exists()


def test_eval_says_which_code_named_by_the_run_was_ignored(tmp_path, trained_run):
    run, marker = planted(tmp_path, trained_run)
    save_overrides(run, ["+loss._target_=os.system"])  # the checkpoint's config is clean: eval builds from it
    proc = run_cli(["eval", f"ckpt={run}", f"out={tmp_path / 'eval.json'}"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    message = " ".join(proc.stderr.split())
    assert message.count("ignored code named by files of that run, never imported: loss._target_=os.system") == 1
    assert "overrides.yaml" in message


def test_init_from_says_the_code_its_checkpoint_names_was_ignored(tmp_path, trained_run):
    run, marker = planted(tmp_path, trained_run)
    with_stored_config(run / "checkpoints" / "best.pt",
                       lambda cfg: cfg["loss"].update({"_target_": "os.system", "command": f"touch {marker}"}))
    proc = run_cli(["train", *SMOKE, f"init_from={run}"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    output = " ".join((proc.stdout + proc.stderr).split())
    assert output.count("init_from: ignored code named by files of that run, never imported: "
                        "loss._target_=os.system") == 1
    assert "init_from reads only the weights" in output
    assert not marker.exists()


# --- Hydra's own flags and keys on the command line -------------------------------------------------------

@pytest.mark.parametrize("flag", [["--exp={pickle}"], ["--experimental-re", "{pickle}"], ["--e={pickle}"]])
def test_every_abbreviation_of_experimental_rerun_is_refused(tmp_path, flag):
    marker = tmp_path / "PWNED"
    pickle_file = pickled_payload(tmp_path / "config.pickle", marker)
    proc = run_cli(["train", *[f.format(pickle=pickle_file) for f in flag]], tmp_path)
    assert proc.returncode == 2 and "does not take --experimental-rerun" in proc.stderr
    assert f"({flag[0].split('=')[0]} is short for it)" in proc.stderr
    assert not marker.exists() and not (tmp_path / "runs").exists()


@pytest.mark.parametrize("override, message", [
    ("+hydra.job_logging.handlers.x={{class: logging.FileHandler, filename: {marker}}}", "(from the command line)"),
    ("+hydra.callbacks.x._target_=os.system", "hydra.callbacks.x._target_=os.system is not a Hydra callback"),
])
def test_hydra_keys_that_name_code_are_refused_cleanly(tmp_path, override, message):
    marker = tmp_path / "PWNED"
    proc = run_cli(["train", *SMOKE, override.format(marker=marker), f"+hydra.callbacks.x.command='touch {marker}'"],
                   tmp_path)
    assert proc.returncode == 2 and message in " ".join(proc.stderr.split())
    assert "Traceback" not in proc.stderr
    assert not marker.exists() and not (tmp_path / "runs").exists()


# --- One writer per run directory ---------------------------------------------------------------------------

def test_two_processes_never_write_one_run_directory(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    from conftest import with_test_device

    run = tmp_path / "runs" / "one"
    first = subprocess.Popen([sys.executable, "-m", "trainctl", *with_test_device(
        ["train", *SMOKE, "trainer.epochs=100000", f"hydra.run.dir={run}"])], cwd=tmp_path,
        env={**os.environ, "COLUMNS": "200"}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (run / "checkpoints" / "last.pt").is_file():  # running: its lock taken, its files started
            assert first.poll() is None and time.monotonic() < deadline, first.stderr.read() if first.poll() else ""
            time.sleep(0.2)
        assert (run / ".lock").read_text().strip() == str(first.pid)
        for args in (["train", *SMOKE, f"hydra.run.dir={run}"], ["train", f"resume={run}"]):
            proc = run_cli(args, tmp_path)
            assert proc.returncode == 2
            assert f"{run} is being written by another trainctl process (pid {first.pid})" in proc.stderr
        assert first.poll() is None  # the first run goes on
    finally:
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=120)
    assert first.returncode == 130
    events = [p.name for p in run.glob("events.out.tfevents.*")]
    assert events and all(name.split(".")[-2] == str(first.pid) for name in events)  # <time>.<host>.<pid>.<n>
    assert str(first.pid) in (run / ".lock").read_text()


def test_a_lock_left_by_a_killed_run_never_blocks(tmp_path):
    run = tmp_path / "runs" / "killed"
    proc = run_cli(["train", *SMOKE, "trainer.epochs=3", "checkpoint.every_n_steps=1", f"hydra.run.dir={run}"],
                   tmp_path, TRAINCTL_FAULTS="kill_at_step=3")
    assert proc.returncode == -9 and (run / ".lock").is_file()  # SIGKILL: no clean-up ran, the file stays
    proc = run_cli(["train", f"resume={run}"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (run / "metrics.json").is_file()


def test_a_chosen_run_directory_that_holds_a_run_is_refused_unless_resumed(tmp_path, trained_run):
    run = tmp_path / "runs" / "mine"
    shutil.copytree(trained_run, run)
    before = files_under(run)
    proc = run_cli(["train", *SMOKE, f"hydra.run.dir={run}"], tmp_path)
    assert proc.returncode == 2
    message = " ".join(proc.stderr.split())
    assert f"hydra.run.dir={run} already holds a run" in message and f"resume={run}" in message
    assert files_under(run) == before


def test_name_names_the_run_directory_and_never_overwrites(tmp_path):
    for _ in range(2):
        proc = run_cli(["train", *SMOKE, "name=baseline"], tmp_path)
        assert proc.returncode == 0, proc.stderr
    first, second = sorted((tmp_path / "runs").iterdir())
    assert first.name.endswith("_baseline") and "_baseline" in second.name and first != second
    assert (first / "metrics.json").is_file() and (second / "metrics.json").is_file()
    for bad in ("../escape", "a/b", ".hidden"):
        proc = run_cli(["train", *SMOKE, f"name={bad}"], tmp_path)
        assert proc.returncode == 2 and "a run name is up to 64 letters" in proc.stderr
    assert len(list((tmp_path / "runs").iterdir())) == 2 and not (tmp_path / "escape").exists()


@pytest.mark.parametrize("command", ["summary", "lr-find"])
def test_summary_and_lr_find_say_the_code_a_run_names_was_ignored(tmp_path, trained_run, command):
    run, marker = planted(tmp_path, trained_run)
    save_overrides(run, ["+loss._target_=os.system", f"+loss.command='touch {marker}'"])
    extra = ["lr_find.steps=10"] if command == "lr-find" else []
    proc = run_cli([command, *SMOKE, f"init_from={run}", *extra], tmp_path)
    assert proc.returncode == 0, proc.stderr
    output = " ".join((proc.stdout + proc.stderr).split())
    assert output.count("ignored code named by files of that run, never imported: loss._target_=os.system") == 1
    assert not marker.exists()


def test_resume_refuses_a_run_directory_holding_a_link_and_writes_nothing_through_it(tmp_path):
    proc = run_cli(["train", "experiment=smoke", "trainer.epochs=1", "name=linked"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    [run] = run_dirs(tmp_path)
    outside = tmp_path / "outside.txt"
    (run / "train.log").unlink()
    (run / "train.log").symlink_to(outside)  # a stand-in for ~/.bashrc
    proc = run_cli(["train", f"resume={run}", "trainer.epochs=2"], tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "train.log is a symbolic link" in proc.stderr
    assert not outside.exists()


# Probe findings (bench/probe, issue 23): each refused at the shared check, with its culprit named.

def test_a_sweeper_setting_beyond_64_bits_is_refused_before_the_sweep_starts(tmp_path):
    huge = "9" * 80
    proc = run_cli(["train", "-m", "sweep=blobs_mlp", *SMOKE, f"hydra.sweeper.n_trials={huge}"], tmp_path,
                   timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "hydra.sweeper.n_trials=" in proc.stderr and "at most 9,223,372,036,854,775,807" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "runs").exists()


def test_package_flag_naming_no_key_of_the_config_is_a_user_error(tmp_path):
    proc = run_cli(["train", "--package", "nosuch", "--cfg", "job"], tmp_path)
    assert proc.returncode == 2
    assert "--package nosuch: the config has no key 'nosuch'" in proc.stderr
    proc = run_cli(["train", "--package", "optimizer", "--cfg", "job", *SMOKE], tmp_path)
    assert proc.returncode == 0 and "# @package optimizer" in proc.stdout


@pytest.mark.parametrize("command", ["summary", "lr-find"])
@pytest.mark.parametrize("override, message", [
    ("+optimizer._target_=builtins.eval", "optimizer._target_=builtins.eval does not build a torch.optim.Optimizer"),
    ("+scheduler._target_=os.remove", "scheduler._target_=os.remove does not build a torch.optim.lr_scheduler"),
    ("+callbacks.x._target_=os.system", "callbacks.x._target_=os.system is not a callback class"),
    ("+hydra.job_logging.handlers.x={class: logging.FileHandler, filename: BASHRC}", "names a class to import"),
])
def test_summary_and_lr_find_refuse_the_targets_train_refuses(tmp_path, command, override, message):
    bashrc = tmp_path / "bashrc"
    extra = ["lr_find.steps=10"] if command == "lr-find" else []
    proc = run_cli([command, *SMOKE, *extra, override.replace("BASHRC", str(bashrc))], tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert message in " ".join(proc.stderr.split()) and "Traceback" not in proc.stderr
    assert not bashrc.exists() and not (tmp_path / "runs").exists()


def test_a_formula_with_an_exponent_past_any_float_is_refused_even_for_one_epoch(tmp_path):
    proc = run_cli(["train", *SMOKE, "scheduler=lambda", "scheduler.formula=epoch ** 99999999999"], tmp_path)
    assert proc.returncode == 2
    assert ("scheduler.formula='epoch ** 99999999999': failed at epoch=2: 2 ** 1e+11 would be about 1e30102999566"
            in " ".join(proc.stderr.split()))
    assert not (tmp_path / "runs").exists()
    proc = run_cli(["train", *SMOKE, "scheduler=lambda", "scheduler.formula='math.cos(epoch) ** 2 + 0.1'"], tmp_path)
    assert proc.returncode == 0, proc.stderr


def test_a_reference_to_nothing_as_a_group_choice_names_the_override(tmp_path):
    proc = run_cli(["summary", "model=${nosuch.key}"], tmp_path)
    assert proc.returncode == 2
    assert "model=${nosuch.key}: Interpolation key 'nosuch.key' not found" in proc.stderr
    assert "_dummy_" not in proc.stderr


def test_a_link_back_up_an_image_folder_is_skipped_and_no_image_counts_twice(tmp_path):
    from conftest import make_image_folder

    root = make_image_folder(tmp_path / "imgs", classes=("a", "b"), per_class=6)
    (root / "train" / "a" / "loop").symlink_to("..")
    proc = run_cli(["train", "model=mlp", "model.hidden=[16]", "dataset=imagefolder", f"dataset.root={root}",
                    "trainer.epochs=1", "trainer.batch_size=4", "dataset.image_size=[16,16]",
                    "dataset.num_workers=0", "tensorboard.figures=false"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    [run] = run_dirs(tmp_path)
    log = (run / "train.log").read_text()
    assert "skipped 1 folder link(s)" in log and "train/a/loop ->" in log
    train, val = (int(n) for n in __import__("re").search(r"train (\d+) / val (\d+)", log).groups())
    assert train + val == 12


def copied_optuna_sweep(folder, results):
    """An Optuna sweep directory as a copy without its optuna.db leaves it (the files trainctl reads)."""
    (folder / "0").mkdir(parents=True)
    (folder / "multirun.yaml").write_text(yaml.safe_dump(
        {"hydra": {"runtime": {"choices": {"hydra/sweeper": "optuna"}}, "overrides": {"task": ["seed=1"]}}}))
    if results:
        (folder / "optimization_results.yaml").write_text(yaml.safe_dump(
            {"storage": f"sqlite:///{folder.parent / 'original' / 'optuna.db'}", "study_name": "s"}))


@pytest.mark.parametrize("results", [True, False])
def test_sweep_report_of_a_sweep_directory_without_its_database_is_refused(tmp_path, results):
    original = tmp_path / "original"
    original.mkdir()
    (original / "optuna.db").write_bytes(b"")  # the study the copy was made from
    copy = tmp_path / "copy"
    copied_optuna_sweep(copy, results)
    proc = run_cli(["sweep-report", str(copy)], tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    said = " ".join(proc.stderr.split())
    assert ("looks copied without its study" if results else "an Optuna sweep directory without its study") in said
    assert sorted(p.name for p in copy.iterdir()) == ["0", "multirun.yaml"] + (
        ["optimization_results.yaml"] if results else [])


def test_a_path_too_long_for_the_system_is_named_short_with_its_command(tmp_path):
    proc = run_cli(["sweep-report", "b" * 5000], tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "trainctl sweep-report: " + "b" * 60 + "...(5,000 characters): File name too long" in proc.stderr
    assert len(proc.stderr) < 400


def test_a_bad_value_replayed_by_resume_names_the_file_it_comes_from(tmp_path, trained_run):
    run, _ = planted(tmp_path, trained_run)
    save_overrides(run, ["trainer.epochs=-5"])
    before = files_under(run)
    proc = run_cli(["train", f"resume={run}"], tmp_path)
    assert proc.returncode == 2
    said = " ".join(proc.stderr.split())
    assert "trainer.epochs=-5 is not on your command line: it is replayed from the saved overrides" in said
    assert f"resume={run}" in said and files_under(run) == before


@pytest.mark.parametrize("kind", ["fifo", "folder"])
def test_resume_refuses_a_checkpoint_that_is_no_file_before_it_trains(tmp_path, trained_run, kind):
    import os

    run, _ = planted(tmp_path, trained_run)
    best = run / "checkpoints" / "best.pt"
    best.unlink()
    os.mkfifo(best) if kind == "fifo" else best.mkdir()
    before = files_under(run)
    proc = run_cli(["train", f"resume={run}", "trainer.epochs=2"], tmp_path, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"{best} is not a file" in " ".join(proc.stderr.split())
    assert files_under(run) == before


@pytest.mark.parametrize("command, pair, hint", [
    ("export", "device=cpu", "This command runs on the CPU: it takes no device=."),
    ("eval", "model=cnn", "A setting of it is changed with model.KEY=VALUE"),
])
def test_a_group_choice_among_a_checkpoint_commands_pairs_is_named(tmp_path, trained_run, command, pair, hint):
    run, _ = planted(tmp_path, trained_run)
    extra = ["format=safetensors"] if command == "export" else []
    proc = run_cli([command, f"ckpt={run}", *extra, pair], tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    said = " ".join(proc.stderr.split())
    assert f"{pair}: KEY=VALUE pairs here change settings of the checkpoint's stored config" in said and hint in said
    assert not (run / "export").exists()


def test_list_of_a_section_with_an_option_says_a_section_has_none(tmp_path):
    proc = run_cli(["list", "trainer", "epochs"], tmp_path)
    assert proc.returncode == 2
    assert "trainer is a section of the run's settings, with no options to pick" in proc.stderr
    assert "unknown group" not in proc.stderr


def test_a_sweep_over_a_huge_integer_range_starts_without_listing_it(tmp_path):
    proc = run_cli(["train", "-m", "sweep=blobs_mlp", *SMOKE, "hydra.sweeper.n_trials=1",
                    "seed=range(0,100000000000)", "hydra.sweeper.sweep_dir=sw"], tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "MemoryError" not in proc.stderr and (tmp_path / "sw" / "optuna.db").is_file()


def test_a_sweep_storage_that_is_a_fifo_is_refused_not_waited_on(tmp_path):
    import os

    os.mkfifo(tmp_path / "p.db")
    proc = run_cli(["train", "-m", "sweep=blobs_mlp", *SMOKE, "hydra.sweeper.n_trials=1",
                    f"hydra.sweeper.storage=sqlite:///{tmp_path / 'p.db'}"], tmp_path, timeout=120)
    assert proc.returncode == 2
    assert f"{tmp_path / 'p.db'} is not a regular file (a folder, fifo or device)" in " ".join(proc.stderr.split())
    assert not (tmp_path / "runs").exists()


def test_a_signal_a_library_swallows_still_ends_the_command_with_its_code(monkeypatch, capsys):
    """`doctor` exited 0 after a SIGINT: something on its way caught the interrupt (`except BaseException`)."""
    import os
    import signal
    import time

    from trainctl import cli

    def swallowing(args):
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(2)
        except BaseException:  # what a library did
            pass
        return 0

    monkeypatch.setitem(cli.COMMANDS, "doctor", swallowing)
    assert cli.main(["doctor"]) == 130
    assert "stopped by SIGINT" in capsys.readouterr().err


def test_a_lock_that_is_a_folder_is_named_not_a_traceback(tmp_path, trained_run):
    run, _ = planted(tmp_path, trained_run)
    lock = run / ".lock"
    if lock.exists():
        lock.unlink()
    lock.mkdir()
    proc = run_cli(["train", f"resume={run}", "trainer.epochs=2"], tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"{lock} is not a file" in " ".join(proc.stderr.split())


def test_sweep_report_of_a_results_file_that_is_no_text_is_named(tmp_path):
    copy = tmp_path / "copy"
    copied_optuna_sweep(copy, results=False)
    (copy / "optimization_results.yaml").write_bytes(b"\xff\xfe: [\n\x00\x81")
    proc = run_cli(["sweep-report", str(copy)], tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "optimization_results.yaml is not a sweep's results file" in proc.stderr


def test_a_signal_handled_inside_a_weakref_callback_still_stops_the_command_at_once(tmp_path):
    """Python swallows an exception raised in a weakref callback (printing "Exception ignored"): a SIGTERM whose
    handler ran there let a sweep run on and printed a traceback. Run as a process of its own, as the CLI is."""
    import subprocess
    import sys

    script = tmp_path / "swallow.py"
    script.write_text(
        "import gc, os, signal, sys, time, weakref\n"
        "from trainctl import cli\n"
        "def command(args):\n"
        "    class Node: pass\n"
        "    node = Node()\n"
        "    def callback(_):\n"
        "        os.kill(os.getpid(), signal.SIGTERM)\n"
        "        time.sleep(1)  # the handler runs inside the callback\n"
        "    ref = weakref.ref(node, callback)\n"
        "    del node\n"
        "    gc.collect()\n"
        "    time.sleep(5)  # the signal, sent again, stops the command here\n"
        "    return 0\n"
        "cli.COMMANDS['doctor'] = command\n"
        "t = time.monotonic()\n"
        "rc = cli.main(['doctor'])\n"
        "print('took', time.monotonic() - t)\n"
        "sys.exit(rc)\n")
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 143, proc.stderr
    assert float(proc.stdout.split("took")[1]) < 3
    assert "stopped by SIGTERM" in proc.stderr
    assert "Exception ignored" not in proc.stderr and "Traceback" not in proc.stderr
