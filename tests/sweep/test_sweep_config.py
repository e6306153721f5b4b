"""`trainctl train -m` with the sweeper's sampler/pruner mappings, timeout and enqueued trials, end to end on
blobs; the study is read back with `optuna.load_study`."""

import csv

import optuna
import pytest

from conftest import run_cli

pytestmark = pytest.mark.slow

BLOBS = ["experiment=smoke", "dataset.n_train=256", "dataset.n_test=64", "trainer.epochs=1", "hydra/sweeper=optuna",
         "hydra.sweeper.pruner=none", "optimizer.lr=tag(log,interval(1e-3,1e-1))",
         "tensorboard.figures=false"]  # figures cost each trial a second


def sweep(tmp_path, *args, expect=0):
    proc = run_cli(["train", "-m", *BLOBS, *args], tmp_path)
    assert proc.returncode == expect, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def load_study(tmp_path, name):
    return optuna.load_study(study_name=name, storage=f"sqlite:///{tmp_path / 'runs' / 'optuna' / name / 'optuna.db'}")


def test_sampler_and_pruner_mappings_build_their_classes(tmp_path):
    sweep(tmp_path, "hydra.sweeper.n_trials=2", "hydra.sweeper.study_name=m",
          "hydra.sweeper.sampler={_target_:optuna.samplers.TPESampler,n_startup_trials:1,multivariate:true,"
          "constant_liar:true}",
          "hydra.sweeper.pruner={_target_:optuna.pruners.PercentilePruner,percentile:40.0,n_startup_trials:1}")
    study = load_study(tmp_path, "m")
    assert len(study.trials) == 2
    assert study.user_attrs["sampler"] == {"class": "TPESampler", "setting": {
        "_target_": "optuna.samplers.TPESampler", "n_startup_trials": 1, "multivariate": True, "constant_liar": True}}
    assert study.user_attrs["pruner"]["class"] == "PercentilePruner"


LR = "optimizer.lr=0.01,0.02"
REFUSED = [  # (arguments, what stderr says): each refused before anything is written
    (["hydra.sweeper.sampler={_target_:optuna.samplers.TPESamplr}"],
     "hydra.sweeper.sampler: cannot import _target_ 'optuna.samplers.TPESamplr'"),
    (["hydra.sweeper.sampler={_target_:optuna.samplers.TPESampler,n_startup:3}"],
     "hydra.sweeper.sampler.n_startup: optuna.samplers.TPESampler has no argument 'n_startup'; did you mean "
     "'n_startup_trials'?"),
    (["hydra.sweeper.pruner={_target_:os.remove,path:victim.txt}"],
     "hydra.sweeper.pruner._target_=os.remove is not an Optuna pruner"),
    (["hydra.sweeper.pruner={n_warmup_steps:1}"], "hydra.sweeper.pruner={'n_warmup_steps': 1} is not valid"),
    (["hydra.sweeper.timeout=0"], "hydra.sweeper.timeout=0.0 is not valid: it must be a number of seconds > 0"),
    (["hydra.sweeper.enqueue_trials=[{optimizer.momentum:0.9}]"],
     "hydra.sweeper.enqueue_trials[0] sets optimizer.momentum, which the search space does not sweep"),
    (["hydra.sweeper.enqueue_trials=[{optimizer.lr:0.5}]"],
     "hydra.sweeper.enqueue_trials[0].optimizer.lr=0.5 is outside the search space"),
]


@pytest.mark.parametrize(("args", "message"), REFUSED, ids=[" ".join(a) for a, _ in REFUSED])
def test_bad_settings_are_refused_before_anything_is_written(tmp_path, args, message):
    (tmp_path / "victim.txt").write_text("kept")
    proc = sweep(tmp_path, *args, expect=2)
    assert message in " ".join(proc.stderr.split()), proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) <= 3, proc.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["victim.txt"]  # no sweep directory, no optuna.db
    assert (tmp_path / "victim.txt").read_text() == "kept"


def test_timeout_stops_asking_for_trials(tmp_path):
    """No timing is asserted: a one-second budget cannot hold 50 trials, each of which starts a training run."""
    proc = sweep(tmp_path, "hydra.sweeper.n_trials=50", "hydra.sweeper.timeout=1", "hydra.sweeper.study_name=t")
    trials = load_study(tmp_path, "t").trials
    assert 1 <= len(trials) < 50
    assert all(t.state.name == "COMPLETE" for t in trials)  # the running trial finished
    assert "hydra.sweeper.timeout=1.0 s reached: no new trials" in proc.stdout + proc.stderr


def test_enqueued_trials_come_first_and_a_resume_does_not_repeat_them(tmp_path):
    args = ["trainer.batch_size=choice(16,32)", "hydra.sweeper.sampler=random", "hydra.sweeper.study_name=q",
            "hydra.sweeper.enqueue_trials=[{optimizer.lr:0.05,trainer.batch_size:32},{optimizer.lr:0.002}]"]
    sweep(tmp_path, *args, "hydra.sweeper.n_trials=3")
    sweep(tmp_path, *args, "hydra.sweeper.n_trials=4")  # the same command continues the study
    trials = load_study(tmp_path, "q").trials
    assert [t.state.name for t in trials] == ["COMPLETE"] * 4
    assert trials[0].params == {"optimizer.lr": 0.05, "trainer.batch_size": 32}
    assert trials[1].params["optimizer.lr"] == 0.002
    assert all(t.params["optimizer.lr"] not in (0.05, 0.002) for t in trials[2:])  # sampled, not enqueued again


def test_hparams_search_is_the_sweep_group_by_its_lightning_hydra_template_name(tmp_path):
    proc = run_cli(["train", "-m", "hparams_search=blobs_mlp", "hydra.sweeper.n_trials=1", "trainer.epochs=1",
                    "hydra.sweeper.study_name=h"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    study = load_study(tmp_path, "h")
    assert set(study.trials[0].params) == {"optimizer.lr", "model.hidden", "trainer.batch_size"}  # the preset's space
    assert study.user_attrs["sampler"]["setting"]["_target_"] == "optuna.samplers.TPESampler"


def test_the_blobs_mlp_preset_teaches(tmp_path):
    """The preset as shipped (12 trials, seed 0): its trials differ and the median pruner stops some.

    Threshold: good configurations all land near the ~83-86 % this overlap allows, within about 0.04 of each
    other (400 validation points: one standard error is ~0.02), while a too-small learning rate stays near
    chance (50 %); a spread above 0.2 needs such a trial, and the old preset (every trial 0.995) had 0."""
    proc = run_cli(["train", "-m", "sweep=blobs_mlp", "hydra.sweeper.study_name=b"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    trials = load_study(tmp_path, "b").trials
    values = [t.value for t in trials if t.state.name == "COMPLETE"]
    assert len(trials) == 12 and max(values) - min(values) > 0.2, values
    assert any(t.state.name == "PRUNED" for t in trials)
    with open(tmp_path / "runs" / "optuna" / "b" / "trials.csv") as f:
        assert sum(r["state"] == "PRUNED" for r in csv.DictReader(f)) >= 1
    output = proc.stdout + proc.stderr
    assert "PRUNED None" not in output and "PRUNED (pruned after epoch" in output
    assert "test  (best epoch" not in output and "pruned after epoch" in output
