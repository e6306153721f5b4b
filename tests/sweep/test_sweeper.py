"""`trainctl train -m hydra/sweeper=optuna` end to end on blobs: results, pruning, resume, failures, processes."""

import csv
import os
import re
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import yaml

from conftest import hparams_session, run_cli

pytestmark = pytest.mark.slow

# No pruning unless a test asks for it: the median pruner may prune any trial after the fifth.
BLOBS = ["experiment=smoke", "dataset.n_train=256", "dataset.n_test=64", "hydra/sweeper=optuna",
         "hydra.sweeper.pruner=none", "tensorboard.figures=false"]  # figures cost each trial a second


# Hydra callbacks for the tests (fixtures/fake_gpus/fake_gpus.py): GPUs this machine may not have, a slow ask
FAKES = {"PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).parent / "fixtures" / "fake_gpus"),
                                                      os.environ.get("PYTHONPATH")]))}
TWO_FAKE_GPUS = ["device=auto", "+hydra.callbacks.fake_gpus._target_=fake_gpus.FakeGpus",
                 "+hydra.callbacks.fake_gpus.count=2"]


def sweep(tmp_path, *args, expect=0, **env):
    proc = run_cli(["train", "-m", *BLOBS, *args], tmp_path, **env)
    assert proc.returncode == expect, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def read_trials(sweep_dir):
    with open(sweep_dir / "trials.csv") as f:
        return list(csv.DictReader(f))


def load_study(sweep_dir, name):
    return optuna.load_study(study_name=name, storage=f"sqlite:///{sweep_dir / 'optuna.db'}")


def test_random_sweep_writes_consistent_results(tmp_path):
    proc = sweep(tmp_path, "optimizer.lr=tag(log,interval(1e-3,1e-1))", "trainer.batch_size=choice(16,32)",
                 "hydra.sweeper.n_trials=4", "hydra.sweeper.sampler=random", "hydra.sweeper.study_name=s1")
    sweep_dir = tmp_path / "runs" / "optuna" / "s1"
    assert sorted(p.name for p in sweep_dir.iterdir() if p.is_dir()) == ["0", "1", "2", "3"]
    for n in range(4):
        assert (sweep_dir / str(n) / "metrics.json").is_file()
        params, status = hparams_session(sweep_dir / str(n))  # each trial is a row of the HParams tab
        assert {"optimizer.lr", "trainer.batch_size", "model", "dataset", "status"} <= params.keys()
        assert status == "STATUS_SUCCESS"
    study = load_study(sweep_dir, "s1")
    rows = read_trials(sweep_dir)
    assert [int(r["number"]) for r in rows] == [t.number for t in study.trials] == [0, 1, 2, 3]
    assert [float(r["val/acc"]) for r in rows] == [t.value for t in study.trials]
    assert [float(r["optimizer.lr"]) for r in rows] == [t.params["optimizer.lr"] for t in study.trials]
    summary = yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())
    assert summary["best"][0]["number"] == study.best_trial.number
    assert summary["best"][0]["values"] == [study.best_value] and summary["states"] == {"COMPLETE": 4}
    best_config = yaml.safe_load((sweep_dir / "best_config.yaml").read_text())
    assert best_config["optimizer"]["lr"] == study.best_params["optimizer.lr"]
    command = (sweep_dir / "best_command.txt").read_text()
    assert command.startswith("trainctl train ") and "hydra." not in command
    assert "study s1: 4 trials" in proc.stdout  # the table of top trials


def test_pruning_prunes_bad_trials(tmp_path):
    proc = sweep(tmp_path, "optimizer=sgd", "optimizer.momentum=0", "optimizer.lr=tag(log,interval(1e-6,1))",
          "objective=val/loss", "hydra.sweeper.direction=minimize", "trainer.epochs=4", "hydra.sweeper.n_trials=8",
          "hydra.sweeper.sampler=random", "hydra.sweeper.pruner=median", "hydra.sweeper.pruner_startup_trials=1",
          "hydra.sweeper.pruner_warmup_epochs=0", "hydra.sweeper.study_name=p")
    sweep_dir = tmp_path / "runs" / "optuna" / "p"
    rows = read_trials(sweep_dir)
    pruned = [r for r in rows if r["state"] == "PRUNED"]
    assert pruned, rows
    epochs = [yaml.safe_load((sweep_dir / r["number"] / "metrics.json").read_text())["epochs"] for r in rows]
    assert sum(epochs) < len(rows) * 4
    for r in pruned:
        assert yaml.safe_load((sweep_dir / r["number"] / "metrics.json").read_text())["status"] == "pruned"
    assert "TRAINCTL_OPTUNA" not in proc.stdout + proc.stderr  # how a job finds its trial is not shown


def test_resume_continues_to_the_total_and_fails_stale_trials(tmp_path):
    args = ["optimizer.lr=tag(log,interval(1e-3,1e-1))", "hydra.sweeper.sampler=random"]
    sweep(tmp_path, *args, "hydra.sweeper.n_trials=2")
    [sweep_dir] = (tmp_path / "runs" / "optuna").iterdir()  # the default name depends on the command only
    study = load_study(sweep_dir, sweep_dir.name)
    # A trial a killed sweep left RUNNING: its process (a finished one) is gone.
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = study.ask()
    stale.set_user_attr("owner", {"host": os.uname().nodename, "pid": int(dead.stdout)})
    sweep(tmp_path, *args, "hydra.sweeper.n_trials=5")
    study = load_study(sweep_dir, sweep_dir.name)
    states = [t.state.name for t in study.trials]
    assert len(states) == 5 and states[2] == "FAIL" and states.count("COMPLETE") == 4
    assert sorted(p.name for p in sweep_dir.iterdir() if p.is_dir()) == ["0", "1", "3", "4"]
    sweep(tmp_path, *args, "hydra.sweeper.n_trials=5")  # already complete: nothing more runs
    assert len(load_study(sweep_dir, sweep_dir.name).trials) == 5


def test_nan_trial_is_recorded_fail_and_the_sweep_completes(tmp_path):
    sweep(tmp_path, "optimizer=sgd", "optimizer.lr=choice(0.01,1e30)", "objective=val/loss",
          "hydra.sweeper.direction=minimize", "hydra.sweeper.sampler=grid", "hydra.sweeper.max_failure_rate=0.5",
          "hydra.sweeper.study_name=n")
    rows = {float(r["optimizer.lr"]): r for r in read_trials(tmp_path / "runs" / "optuna" / "n")}
    assert rows[1e30]["state"] == "FAIL" and "not finite" in rows[1e30]["error"]
    assert rows[0.01]["state"] == "COMPLETE"


def test_too_many_failures_stop_the_sweep_with_a_message(tmp_path):
    proc = sweep(tmp_path, "optimizer=sgd", "optimizer.lr=choice(1e30,1e31)", "objective=val/loss",
                 "hydra.sweeper.direction=minimize", "hydra.sweeper.sampler=grid", "hydra.sweeper.study_name=f",
                 expect=2)
    assert "sweep stopped: 1 of 2 trials failed, more than hydra.sweeper.max_failure_rate=0.25" in proc.stderr
    assert len(read_trials(tmp_path / "runs" / "optuna" / "f")) == 1


def test_a_crashing_trial_logs_its_error_in_its_own_directory(tmp_path):
    # A valid config that fails once its data is read: 205 training samples leave a batch of one for batch norm.
    sweep(tmp_path, "model.batch_norm=true", "trainer.batch_size=choice(32,204)", "hydra.sweeper.sampler=grid",
          "hydra.sweeper.study_name=c", "hydra.sweeper.max_failure_rate=0.5")
    sweep_dir = tmp_path / "runs" / "optuna" / "c"
    rows = {r["trainer.batch_size"]: r for r in read_trials(sweep_dir)}
    assert rows["204"]["state"] == "FAIL" and "batch of one sample" in rows["204"]["error"]
    assert "batch of one sample" in (sweep_dir / rows["204"]["number"] / "train.log").read_text()


def test_processes_with_their_own_sweep_directories_share_one_journal_study(tmp_path):
    """Two sweeps as on two machines: one journal, a sweep directory each. The last trial's ask waits 3 s after
    the count (longer than a trial), so a sweep that counted without the other's lock would find room too."""
    journal = tmp_path / "shared" / "study.journal"
    journal.parent.mkdir()  # a storage's folder must exist (as a shared mount does): trainctl never makes it
    procs = [subprocess.Popen(
        [sys.executable, "-m", "trainctl", "train", "-m", *BLOBS, "optimizer.lr=tag(log,interval(1e-3,1e-1))",
         "trainer.epochs=1", "hydra.sweeper.n_trials=4", f"hydra.sweeper.storage=journal:{journal}",
         "hydra.sweeper.study_name=shared", f"hydra.sweeper.sweep_dir=machine{i}",
         "+hydra.callbacks.slow._target_=fake_gpus.SlowAskForTheLast"],
        cwd=tmp_path, env={**os.environ, **FAKES}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for i in range(2)]
    outputs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    study = optuna.load_study(study_name="shared", storage=JournalStorage(JournalFileBackend(str(journal))))
    trials = study.trials
    assert [t.number for t in trials] == list(range(4))
    assert all(t.state.name == "COMPLETE" for t in trials), [t.state for t in trials]
    ran = [int(p.name) for i in range(2) for p in (tmp_path / f"machine{i}").iterdir() if p.is_dir()]
    assert sorted(ran) == list(range(4))  # each trial's run directory in the sweep directory of the one that ran it
    assert all(ran.count(n) == 1 for n in ran)
    assert study.user_attrs["sweep_processes"] == 2  # numbered 0 and 1: their samplers are seeded apart
    assert len({t.params["optimizer.lr"] for t in trials}) == 4


def test_parallel_trials_with_the_joblib_launcher_get_a_gpu_each(tmp_path):
    """Two joblib workers on a machine with two (simulated) GPUs: trials that run at the same time run on
    different GPUs, lent from a pool as each starts and given back as it ends."""
    sweep(tmp_path, "optimizer.lr=tag(log,interval(1e-3,1e-1))", "trainer.epochs=1", "hydra.sweeper.n_trials=3",
          "hydra.sweeper.n_jobs=2", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "hydra.sweeper.study_name=j",
          *TWO_FAKE_GPUS, **FAKES)
    sweep_dir = tmp_path / "runs" / "optuna" / "j"
    rows = read_trials(sweep_dir)
    assert [r["state"] for r in rows] == ["COMPLETE"] * 3, rows
    trials = load_study(sweep_dir, "j").trials
    devices = {}
    for t in trials:
        config = yaml.safe_load((sweep_dir / str(t.number) / ".hydra" / "config.yaml").read_text())
        asked = (sweep_dir / str(t.number) / "fake_gpu.txt").read_text()  # what the job asked trainctl for
        assert asked == f"cuda:{config['device']['index']}" == t.user_attrs["device"]
        devices[t.number] = asked
    assert set(devices.values()) == {"cuda:0", "cuda:1"}
    together = [(a, b) for a in trials for b in trials if a.number < b.number
                and a.datetime_start < b.datetime_complete and b.datetime_start < a.datetime_complete]
    assert together  # two workers: trials overlapped
    assert all(devices[a.number] != devices[b.number] for a, b in together), (devices, together)
    command = (sweep_dir / "best_command.txt").read_text()
    assert "device=auto" in command and "device." not in command  # the lent GPU is no part of the command


def test_more_trials_at_once_than_gpus_is_refused_before_anything_is_written(tmp_path):
    proc = sweep(tmp_path, "optimizer.lr=0.1,0.2", "hydra.sweeper.n_jobs=3", "hydra/launcher=joblib", *TWO_FAKE_GPUS,
                 expect=2, **FAKES)
    assert ("hydra.sweeper.n_jobs=3 trials at once need more GPUs than this machine has: 2 (cuda:0, cuda:1)"
            in " ".join(proc.stderr.split())), proc.stderr
    assert "hydra.sweeper.gpus_per_trial=0.5" in proc.stderr and "Traceback" not in proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_dry_run_prints_the_space_and_trains_nothing(tmp_path):
    proc = sweep(tmp_path, "optimizer.lr=tag(log,interval(1e-3,1e-1))", "model.hidden=choice([8],[16])",
                 "hydra.sweeper.dry_run=true", "hydra.sweeper.n_trials=3")
    assert "optimizer.lr: float log [0.001, 0.1]" in proc.stdout
    assert proc.stdout.count("trial ") == 3 and "model.hidden=[" in proc.stdout
    assert not (tmp_path / "runs").exists()
    # The default study name says what is searched: the model, the dataset, the searched keys, a hash.
    assert re.search(r"dry run of study mlp-blobs-lr,hidden-[0-9a-f]{8}:", proc.stdout), proc.stdout
    models = sweep(tmp_path, "optimizer.lr=tag(log,interval(1e-3,1e-1))", "model=choice(mlp,cnn)",
                   "hydra.sweeper.dry_run=true", "hydra.sweeper.n_trials=1")
    assert re.search(r"dry run of study blobs-lr,model-[0-9a-f]{8}:", models.stdout), models.stdout


@pytest.mark.parametrize(("objective", "directions"), [
    ("val/acc", "['maximize']"), ("val/loss", "['minimize']"), ("[val/acc,train/loss]", "['maximize', 'minimize']"),
])
def test_the_direction_follows_the_objective_unless_given(tmp_path, objective, directions):
    proc = sweep(tmp_path, "optimizer.lr=tag(log,interval(1e-3,1e-1))", f"objective={objective}",
                 "hydra.sweeper.dry_run=true", "hydra.sweeper.n_trials=1")
    assert proc.returncode == 0, proc.stderr
    assert f"directions {directions}" in " ".join(proc.stdout.split())


def test_multi_objective(tmp_path):
    sweep(tmp_path, "optimizer.lr=tag(log,interval(1e-3,1e-1))", "objective=[val/acc,val/loss]",
          "hydra.sweeper.direction=[maximize,minimize]", "hydra.sweeper.sampler=nsgaii", "hydra.sweeper.n_trials=3",
          "hydra.sweeper.pruner=none", "hydra.sweeper.study_name=m")
    summary = yaml.safe_load((tmp_path / "runs" / "optuna" / "m" / "optimization_results.yaml").read_text())
    assert summary["directions"] == ["maximize", "minimize"] and len(summary["best"][0]["values"]) == 2


def test_sweep_preset(tmp_path):
    proc = run_cli(["train", "-m", "sweep=blobs_mlp", "hydra.sweeper.n_trials=2", "dataset.n_train=256"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    [sweep_dir] = (tmp_path / "runs" / "optuna").iterdir()
    assert len(read_trials(sweep_dir)) == 2


LR = "optimizer.lr=0.1,0.2"
REFUSED = [  # (arguments, what stderr says): each refused before anything is written
    ([LR, "hydra.sweeper.sampler=bayes"], "hydra.sweeper.sampler=bayes is not valid: it must be one of tpe, random"),
    ([LR, "hydra.sweeper.pruner=bar"], "hydra.sweeper.pruner=bar is not valid: it must be one of median"),
    ([LR, "hydra.sweeper.n_trials=abc"], "hydra.sweeper.n_trials"),
    ([LR, "hydra.sweeper.n_jobs=0"], "hydra.sweeper.n_jobs=0 is not valid: it must be an integer >= 1"),
    ([LR, "hydra.sweeper.n_jobs=2"], "n_jobs > 1 needs a parallel launcher: add hydra/launcher=joblib"),
    ([LR, "hydra.sweeper.max_failure_rate=2"], "hydra.sweeper.max_failure_rate=2.0 is not valid"),
    ([LR, "hydra.sweeper.gpus_per_trial=0"], "hydra.sweeper.gpus_per_trial=0.0 is not valid: it must be a number in "
                                             "(0, 1]"),
    ([LR, "hydra.sweeper.direction=up"], "hydra.sweeper.direction has ['up']: use maximize or minimize"),
    (["trainer.epochs=1"], "the search space is empty"),
    (["optimizer.lr=interval(1,0)"], "optimizer.lr=interval(1.0,0.0): the start is above the end"),
    ([LR, "+hydra.sweeper.params.seed='choice(1'"],
     "cannot parse the search space entry 'seed=choice(1' (hydra.sweeper.params.seed)"),
    ([LR, "hydra.sweeper.sampler=grid", "trainer.epochs=interval(1,3)"], "sampler=grid needs discrete parameters"),
    # the space against the config: every choice and both ends of every range, before the first trial
    (["trainer.epochs=choice(a,b)"], "trainer.epochs=a is not valid: trainer.epochs takes an integer"),
    ([LR, "+hydra.sweeper.params={trainer.epochs:'choice(1,-1)'}"], "trainer.epochs=-1 is out of range"),
    (["trainer.epochs=interval(1,3)"], "For integers write trainer.epochs=int(interval(1,3))"),
    (["model.hidden=choice([8],[-1])"], "a trial with model.hidden=[-1] would fail"),
    (["model=choice(mlp,lenet)"], "model.hidden is not a setting of model"),  # experiment=smoke sets model.hidden
    (["optimizer.lr=interval(1e-3,nan)"], "optimizer.lr=interval(0.001,nan): every bound must be a finite number"),
    ([LR, "hydra.sweeper.storage=foo://"], "hydra.sweeper.storage=foo://: no database is called 'foo'"),
    ([LR, "hydra.sweeper.storage=postgresql://nohost/x"], "hydra.sweeper.storage=postgresql://nohost/x: "),
    ([LR, "hydra.sweeper.storage=journal:/proc/nope/j.log"], "hydra.sweeper.storage=journal:/proc/nope/j.log: "
                                                             "the folder /proc/nope does not exist"),
    ([LR, "hydra.sweeper.sweep_dir=/proc/nope"], "hydra.sweeper.sweep_dir=/proc/nope: cannot create"),
    ([LR, "resume=runs/x"], "resume= continues one run and cannot be part of a multirun"),
    ([LR, "+hydra.sweeper.params.resume=runs/x"], "resume= continues one run and cannot be part of a multirun"),
]


@pytest.mark.parametrize(("args", "message"), REFUSED, ids=[" ".join(a) for a, _ in REFUSED])
def test_bad_sweeps_are_refused_before_anything_is_written(tmp_path, args, message):
    proc = sweep(tmp_path, *args, expect=2)
    assert message in " ".join(proc.stderr.split()), proc.stderr
    assert "Traceback" not in proc.stderr
    assert list(tmp_path.iterdir()) == []  # no sweep directory, no optuna.db, no multirun.yaml


def test_identical_sweeps_started_together_share_one_study(tmp_path):
    """Three copies of one command on the default SQLite storage: one creates the database and the study, the
    others join it (a race to create the tables used to crash them), and together they stop at n_trials."""
    cmd = [sys.executable, "-m", "trainctl", "train", "-m", "sweep=blobs_mlp", "dataset.n_train=256",
           "trainer.epochs=1", "hydra.sweeper.n_trials=6", "hydra.sweeper.study_name=together"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # three processes on a small machine
    procs = [subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(3)]
    outputs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [err[-3000:] for _, err in outputs]
    sweep_dir = tmp_path / "runs" / "optuna" / "together"
    trials = load_study(sweep_dir, "together").trials
    assert [t.number for t in trials] == list(range(6))
    assert all(t.state.name in ("COMPLETE", "PRUNED") for t in trials), [t.state for t in trials]
    assert sorted(int(p.name) for p in sweep_dir.iterdir() if p.is_dir()) == list(range(6))


def test_pruning_across_processes_with_a_persistent_storage(tmp_path):
    """With the joblib launcher each trial runs in a worker process, which reopens the study from SQLite."""
    proc = sweep(tmp_path, "optimizer=sgd", "optimizer.momentum=0", "optimizer.lr=tag(log,interval(1e-6,1))",
          "objective=val/loss", "hydra.sweeper.direction=minimize", "trainer.epochs=4", "hydra.sweeper.n_trials=8",
          "hydra.sweeper.sampler=random", "hydra.sweeper.pruner=median", "hydra.sweeper.pruner_startup_trials=1",
          "hydra.sweeper.pruner_warmup_epochs=0", "hydra/launcher=joblib", "hydra.launcher.n_jobs=1",
          "hydra.sweeper.study_name=pj")
    rows = read_trials(tmp_path / "runs" / "optuna" / "pj")
    assert any(r["state"] == "PRUNED" for r in rows), rows
    assert len(rows) == 8
    assert "#0 : experiment=smoke" in proc.stdout  # the launch lines are there, without the trial's plumbing
    assert "TRAINCTL_OPTUNA" not in proc.stdout + proc.stderr
