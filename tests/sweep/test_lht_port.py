"""A lightning-hydra-template search config, ported by renaming only its metric and model/data keys
(fixtures/lht/hparams_search/mnist_optuna.yaml), runs as its users run it: from their own config dir, with
`hparams_search=`, and without `-m` (the file sets hydra.mode=MULTIRUN)."""

from pathlib import Path

import optuna
import pytest

from conftest import run_cli
from trainctl.config.aliases import old_name_notices
from trainctl.config.compose import compose

LHT_DIR = Path(__file__).parent / "fixtures" / "lht"


@pytest.mark.slow
def test_the_ported_file_runs_to_its_n_trials_with_the_tpe_sampler_of_its_mapping(tmp_path):
    proc = run_cli(["train", "--config-dir", str(LHT_DIR), "hparams_search=mnist_optuna", "experiment=smoke",
                    "hydra.sweeper.n_trials=3", "trainer.epochs=1", "hydra.sweeper.study_name=lht"], tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    output = proc.stdout + proc.stderr
    assert "Traceback" not in output
    for notice in ("hydra.sweeper._target_=hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper is "
                   "hydra-optuna-sweeper's class: trainctl's optuna sweeper runs this search",
                   "optimized_metric is lightning-hydra-template's name for objective: the sweep optimises val/acc"):
        assert output.count(notice) == 1, output[-3000:]
    sweep_dir = tmp_path / "runs" / "optuna" / "lht"
    study = optuna.load_study(study_name="lht", storage=f"sqlite:///{sweep_dir / 'optuna.db'}")
    assert len(study.trials) == 3 and all(t.state.name == "COMPLETE" for t in study.trials)
    assert [d.name for d in study.directions] == ["MAXIMIZE"]
    assert study.user_attrs["sampler"] == {"class": "TPESampler", "setting": {
        "_target_": "optuna.samplers.TPESampler", "seed": 1234, "n_startup_trials": 10}}
    assert set(study.trials[0].params) == {"optimizer.lr", "trainer.batch_size", "model.hidden"}
    assert (sweep_dir / "trials.csv").read_text().splitlines()[0].split(",")[2] == "val/acc"  # the objective


def compose_lht(*overrides):
    return compose(["experiment=smoke", *overrides])


def test_optimized_metric_is_the_objective_with_a_notice():
    cfg = compose_lht("optimized_metric=val/loss")
    assert cfg.objective == "val/loss"
    assert old_name_notices(cfg) == ["optimized_metric is lightning-hydra-template's name for objective: the sweep "
                                     "optimises val/loss; write objective: val/loss"]


def test_an_explicit_objective_wins_over_optimized_metric():
    cfg = compose_lht("optimized_metric=val/loss", "objective=val/acc")
    assert cfg.objective == "val/acc"
    assert old_name_notices(cfg) == ["optimized_metric=val/loss is ignored: objective=val/acc is set "
                                     "(optimized_metric is lightning-hydra-template's name for objective)"]


def test_without_optimized_metric_the_objective_is_the_datasets_default():
    assert compose_lht().objective == "val/acc" and old_name_notices(compose_lht()) == []
    assert compose(["dataset=sine", "model=lstm"]).objective == "val/loss"  # regression's default
