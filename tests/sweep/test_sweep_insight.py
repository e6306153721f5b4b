"""What a sweep leaves for looking at it, end to end on blobs: one TensorBoard run per trial whose HParams row
has the trial's typed parameters and a status that matches Optuna's state, every study's columns when two share
a log directory, the study's metric names, and the report (HTML + PNGs, `trainctl sweep-report`)."""

import json

import optuna
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.custom_scalar import layout_pb2
from tensorboard.plugins.hparams import api_pb2

from conftest import hparams_session, hparams_tab, run_cli

pytestmark = pytest.mark.slow

STATUS = {"COMPLETE": "STATUS_SUCCESS", "PRUNED": "STATUS_UNKNOWN", "FAIL": "STATUS_FAILURE"}
SMALL = ["dataset.n_train=256", "dataset.n_test=64", "trainer.epochs=2", "tensorboard.figures=false"]
# A preset sweep: TPE over a float, an int choice and a list choice; 4 trials, none pruned (5 start-up trials).
PRESET = ["sweep=blobs_mlp", "hydra.sweeper.n_trials=4", "hydra.sweeper.study_name=preset", *SMALL]
# A grid over SGD learning rates with the successive-halving pruner: one diverges (FAIL: the loss is not
# finite) and, with this grid's order, one is pruned after its first epoch.
MIXED = ["experiment=smoke", "hydra/sweeper=optuna", "optimizer=sgd", "optimizer.momentum=0.9", "optimizer.lr=choice(0.1,0.03,1e-6,1e30)",
         "objective=val/loss", "hydra.sweeper.sampler=grid", "hydra.sweeper.pruner=successive_halving",
         "hydra.sweeper.max_failure_rate=0.5", "hydra.sweeper.study_name=mixed", *SMALL]


@pytest.fixture(scope="module")
def sweeps(tmp_path_factory):
    """Both studies under one runs/optuna; their directories and loaded studies."""
    cwd = tmp_path_factory.mktemp("insight")
    for args in (PRESET, MIXED):
        proc = run_cli(["train", "-m", *args], cwd)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    root = cwd / "runs" / "optuna"
    studies = {name: optuna.load_study(study_name=name, storage=f"sqlite:///{root / name / 'optuna.db'}")
               for name in ("preset", "mixed")}
    return cwd, root, studies


def event_dirs(folder):
    return {p.parent for p in folder.rglob("events.out.tfevents.*")}


def test_each_trial_is_one_run_with_one_event_directory(sweeps):
    _, root, studies = sweeps
    for name, study in studies.items():
        for trial in study.trials:
            run = root / name / str(trial.number)
            assert event_dirs(run) == {run}, trial.number  # no hparams/ or steps/ runs beside it
    events = EventAccumulator(str(root / "preset" / "0"), size_guidance={"tensors": 0})
    events.Reload()
    [written] = events.Tensors("custom_scalars__config__")
    layout = layout_pb2.Layout.FromString(written.tensor_proto.string_val[0])
    assert [c.title for c in layout.category] == ["train vs val", "per step"]


def test_each_trials_status_matches_its_optuna_state(sweeps):
    _, root, studies = sweeps
    states = [t.state.name for t in studies["mixed"].trials]
    assert "PRUNED" in states and "FAIL" in states and "COMPLETE" in states, states
    for name, study in studies.items():
        for trial in study.trials:
            params, status = hparams_session(root / name / str(trial.number))
            assert status == STATUS[trial.state.name], (name, trial.number)
            assert params["status"] == {"COMPLETE": "completed", "PRUNED": "pruned", "FAIL": "failed"}[trial.state.name]


def test_parameters_keep_their_types(sweeps):
    _, root, studies = sweeps
    for trial in studies["preset"].trials:
        params, _ = hparams_session(root / "preset" / str(trial.number))
        assert params["optimizer.lr"] == pytest.approx(trial.params["optimizer.lr"])  # a number
        assert params["trainer.batch_size"] == str(trial.params["trainer.batch_size"])  # "32", not 32.000
        assert params["model.hidden"] in ("[16]", "[64]", "[64, 64]")
        assert params["model"] == "mlp" and params["sweep"] == "blobs_mlp"


def test_tensorboard_shows_both_studies_columns_and_the_real_metric_tags(sweeps):
    _, root, studies = sweeps
    experiment, groups = hparams_tab(root, ("val/loss",))
    assert len(groups) == sum(len(s.trials) for s in studies.values())  # one row per trial, no extra runs
    columns = {h.name: h for h in experiment.hparam_infos}
    assert {"model.hidden", "trainer.batch_size", "optimizer.lr", "objective", "status"} <= set(columns)
    assert columns["optimizer.lr"].type == api_pb2.DATA_TYPE_FLOAT64
    for name in ("model.hidden", "trainer.batch_size", "status", "objective"):  # text gets a discrete filter
        assert columns[name].type == api_pb2.DATA_TYPE_STRING and columns[name].domain_discrete.values
    tags = {m.name.tag for m in experiment.metric_infos}
    assert {"val/acc", "val/loss", "test/acc", "test/loss"} <= tags and not any("hparam" in t for t in tags)
    for trial in studies["mixed"].trials:
        if trial.state.name == "COMPLETE":  # the row's val/loss is the curve's last point
            values = {m.name.tag: m.value for m in groups[f"mixed/{trial.number}"].metric_values}
            history = json.loads((root / "mixed" / str(trial.number) / "metrics.json").read_text())["history"]
            assert values["val/loss"] == pytest.approx(history[-1]["val/loss"], rel=1e-6)


def test_the_studies_name_their_metric(sweeps):
    _, _, studies = sweeps
    assert studies["preset"].metric_names == ["val/acc"] and studies["mixed"].metric_names == ["val/loss"]


def test_every_sweep_writes_its_report(sweeps):
    _, root, studies = sweeps
    for name in ("preset", "mixed"):
        folders = sorted(int(p.name) for p in (root / name).iterdir() if p.is_dir())
        assert folders == [t.number for t in studies[name].trials]  # the report adds files, no folder
        html = (root / name / "report.html").read_text()
        pngs = sorted(p.stem.removeprefix("report_") for p in (root / name).glob("report_*.png"))
        assert html.count("data:image/png;base64,") == len(pngs) and "<script" not in html
        assert {"history", "parallel", "slice", "intermediate"} <= set(pngs)


def test_sweep_report_on_a_sweep_directory(sweeps):
    cwd, root, studies = sweeps
    (root / "preset" / "report.html").unlink()
    proc = run_cli(["sweep-report", "runs/optuna/preset"], cwd)
    assert proc.returncode == 0, proc.stderr
    assert "parameter importances for val/acc" in proc.stdout
    for param in studies["preset"].trials[0].params:
        assert param in proc.stdout
    assert (root / "preset" / "report.html").is_file()


def test_sweep_report_on_a_bad_path_exits_2(sweeps):
    cwd, _, _ = sweeps
    proc = run_cli(["sweep-report", "runs/optuna"], cwd)
    assert proc.returncode == 2
    assert "runs/optuna is not a sweep directory" in proc.stderr and "Traceback" not in proc.stderr
