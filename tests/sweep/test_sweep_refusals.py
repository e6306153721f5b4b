"""Bad sweeps refused before anything is written: settings of the sweeper, the search space, and the space
against the config (every choice and both ends of every range, before the first trial)."""

import pytest

from sweep_runs import sweep

pytestmark = pytest.mark.slow


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
