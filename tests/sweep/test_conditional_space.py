"""Conditional and loop-defined search spaces (`hydra.sweeper.conditional`, `hydra.sweeper.depth`): sampled
define-by-run, so a key whose condition fails is absent from the trial; a depth key is a list of `count` widths.
Through the real CLI: trials.csv, each trial's HParams row and sweep-report carry them."""

import csv
import re
from pathlib import Path

import optuna
import pytest

from conftest import hparams_session, run_cli
from trainctl.errors import UserError
from trainctl.sweep.conditional import add_structure, ask, candidates, overrides_of
from trainctl.sweep.space import parse_search_space

CONDITIONAL = {"optimizer.momentum": {"when": {"optimizer": "sgd"}, "values": "interval(0.0, 0.95)"}}
DEPTH = {"model.hidden": {"count": "range(1, 4)", "width": "choice(16, 32, 64)"}}


def space(conditional=CONDITIONAL, depth=DEPTH, params=("optimizer=sgd,adam",)):
    built = parse_search_space(list(params))
    add_structure(built, conditional, depth)
    return built


def test_momentum_only_for_sgd_and_as_many_widths_as_the_depth():
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = set()
    for _ in range(20):
        trial = ask(study, space())
        params = trial.params
        assert ("optimizer.momentum" in params) == (params["optimizer"] == "sgd")
        count = params["model.hidden.count"]
        assert sorted(k for k in params if re.fullmatch(r"model\.hidden\.\d", k)) == [
            f"model.hidden.{i}" for i in range(count)]
        lines = overrides_of(params, space())
        [hidden] = [line for line in lines if line.startswith("model.hidden=")]
        assert hidden == "model.hidden=[" + ",".join(str(params[f"model.hidden.{i}"]) for i in range(count)) + "]"
        assert not any(line.startswith("model.hidden.") for line in lines)
        study.tell(trial, 0.0)
        seen.add((params["optimizer"], count))
    assert {o for o, _ in seen} == {"sgd", "adam"} and {n for _, n in seen} == {1, 2, 3}


def test_the_check_before_the_first_trial_meets_each_condition():
    found = candidates(space())
    assert ["optimizer=sgd", "optimizer.momentum=0.0"] in found and ["optimizer=sgd", "optimizer.momentum=0.95"] in found
    assert ["optimizer=sgd", "model.hidden=[16,16,16]"] in found and ["optimizer=sgd", "model.hidden=[64,64,64]"] in found


@pytest.mark.parametrize(("conditional", "depth", "message"), [
    ({"optimizer.momentum": {"when": {"optimizer": "rmsprop"}, "values": "interval(0,1)"}}, {},
     "hydra.sweeper.conditional.optimizer.momentum.when.optimizer: ['rmsprop'] never occurs: optimizer takes sgd, adam"),
    ({"optimizer.momentum": {"when": {"model": "mlp"}, "values": "interval(0,1)"}}, {},
     "when.model: model is not a swept choice (or a fixed value) of this sweep"),
    ({"optimizer.momentum": {"values": "interval(0,1)"}}, {}, "must be {when: {<key>: <value or list of values>}"),
    ({"optimizer": {"when": {"optimizer": "sgd"}, "values": "interval(0,1)"}}, {}, "is also in the search space"),
    ({}, {"model.hidden": {"count": "interval(0.5, 2.5)", "width": "choice(8)"}}, "must give whole numbers >= 0"),
    ({}, {"model.hidden": {"count": "range(1,3)"}}, "hydra.sweeper.depth.model.hidden must be {count:"),
])
def test_a_space_that_cannot_be_sampled_is_refused_by_name(conditional, depth, message):
    with pytest.raises(UserError, match=re.escape(message)):
        space(conditional, depth)


@pytest.mark.slow
def test_a_conditional_sweep_through_the_cli(tmp_path):
    proc = run_cli(["train", "-m", "sweep=blobs_conditional", "hydra.sweeper.n_trials=4", "trainer.epochs=1",
                    "dataset.n_train=200", "hydra.sweeper.sampler=random"], tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    [sweep_dir] = list((tmp_path / "runs" / "optuna").iterdir())
    with open(sweep_dir / "trials.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4 and all(r["state"] == "COMPLETE" for r in rows)
    for row in rows:
        assert (row["optimizer.momentum"] != "") == (row["optimizer"] == "sgd")
        count = int(row["model.hidden.count"])
        widths = [row[f"model.hidden.{i}"] for i in range(count)]
        assert all(w in ("16", "32", "64") for w in widths)
        params, status = hparams_session(Path(row["run_dir"]) if Path(row["run_dir"]).is_absolute()
                                         else tmp_path / row["run_dir"])
        assert status == "STATUS_SUCCESS"
        assert params["model.hidden"].replace(" ", "") == "[" + ",".join(widths) + "]"  # the trial's override
        assert ("optimizer.momentum" in params) == (row["optimizer"] == "sgd")
    report = run_cli(["sweep-report", str(sweep_dir)], tmp_path)
    assert report.returncode == 0, report.stderr
    assert "model.hidden.count" in report.stdout and "optimizer.momentum" in report.stdout
