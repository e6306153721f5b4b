"""The sweep report from studies made here (no training): files, notes for plots that cannot be drawn, the
importance table, and `trainctl sweep-report`'s one-message errors (exit 2)."""

import base64
import re

import optuna
import pytest
import yaml

from trainctl.cli import main
from trainctl.errors import UserError
from trainctl.sweep.find_study import find_study
from trainctl.sweep.report import write_report

optuna.logging.set_verbosity(optuna.logging.WARNING)
PLOTS = ("history", "parallel", "slice", "importances", "intermediate")


def make_study(folder, name="s", n_trials=12, directions=("maximize",), report=True):
    """A study in folder/optuna.db, shaped like a sweep's: a float, an int choice and a list choice."""
    storage = f"sqlite:///{folder / 'optuna.db'}"
    study = optuna.create_study(study_name=name, storage=storage, directions=list(directions),
                                sampler=optuna.samplers.RandomSampler(seed=0), load_if_exists=True)

    def objective(trial):
        lr = trial.suggest_float("optimizer.lr", 1e-4, 1e-1, log=True)
        batch = trial.suggest_categorical("trainer.batch_size", [16, 32, 64])
        trial.suggest_categorical("model.hidden", ["[16]", "[64,64]"])
        for epoch in (1, 2):
            if report:
                trial.report(lr * epoch, epoch)
        return lr + batch / 1e4 if len(directions) == 1 else (lr, batch / 1e4)

    study.optimize(objective, n_trials=n_trials)
    return study


def plot_files(folder):
    return {p.stem.removeprefix("report_"): p.read_bytes() for p in folder.glob("report_*.png")}


def embedded_images(html):
    return [base64.b64decode(data) for data in re.findall(r'src="data:image/png;base64,([^"]+)"', html)]


def test_a_full_report_has_every_plot_as_a_file_and_inside_the_page(tmp_path):
    study = make_study(tmp_path)
    page, sections = write_report(study, tmp_path, ["val/acc"])
    html = page.read_text()
    files = plot_files(tmp_path)
    assert sorted(files) == sorted(PLOTS)
    assert sorted(embedded_images(html)) == sorted(files.values())  # the page needs none of the files
    assert "<script" not in html and "http" not in html  # opens offline
    [section] = sections
    assert section.importances is not None and sum(section.importances.values()) == pytest.approx(1)
    assert set(section.importances) == {"optimizer.lr", "trainer.batch_size", "model.hidden"}
    assert "val/acc" in html and f">{study.best_trial.number}<" in html


def test_a_single_trial_gets_notes_instead_of_plots_it_cannot_draw(tmp_path):
    study = make_study(tmp_path, n_trials=1, report=False)
    page, [section] = write_report(study, tmp_path, ["val/acc"])
    assert section.importances is None and "too few trials" in section.note
    drawn = {p.key for p in section.plots if p.png is not None}
    assert drawn == {"history"}
    html = page.read_text()
    assert "needs at least 2 complete trials" in html and "no trial reported intermediate values" in html
    assert sorted(plot_files(tmp_path)) == ["history"]


def test_plots_not_drawn_again_lose_their_old_files(tmp_path):
    write_report(make_study(tmp_path, "full"), tmp_path, ["val/acc"])
    write_report(make_study(tmp_path, "one", n_trials=1, report=False), tmp_path, ["val/acc"])
    assert sorted(plot_files(tmp_path)) == ["history"]


def test_a_multi_objective_report_has_a_section_per_objective(tmp_path):
    study = make_study(tmp_path, directions=("maximize", "minimize"), report=False)
    page, sections = write_report(study, tmp_path, ["val/acc", "val/loss"])
    assert [s.objective.name for s in sections] == ["val/acc", "val/loss"]
    stems = set(plot_files(tmp_path))
    assert {"history-0", "history-1", "parallel-0", "slice-1"} <= stems
    assert "multi-objective study reports no intermediate values" in page.read_text()


def test_sweep_report_prints_the_importance_table(tmp_path, capsys):
    make_study(tmp_path)
    assert main(["sweep-report", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "parameter importances for objective" in out and "optimizer.lr" in out and "report.html" in out
    assert (tmp_path / "report.html").is_file()


def test_the_recorded_storage_and_study_are_used(tmp_path):
    make_study(tmp_path, "first"), make_study(tmp_path, "second")
    (tmp_path / "optimization_results.yaml").write_text(yaml.safe_dump(
        {"study_name": "second", "storage": f"sqlite:///{tmp_path / 'optuna.db'}", "objectives": ["val/f1"]}))
    study, out_dir, names = find_study(str(tmp_path))
    assert (study.study_name, out_dir, names) == ("second", tmp_path, ["val/f1"])
    assert find_study(str(tmp_path), "first")[0].study_name == "first"


def test_a_copied_sweep_directory_reports_on_its_own_study_not_the_original(tmp_path):
    import shutil

    original, copy = tmp_path / "original", tmp_path / "copy"
    original.mkdir()
    make_study(original, "s", n_trials=3)
    (original / "optimization_results.yaml").write_text(yaml.safe_dump(
        {"study_name": "s", "storage": f"sqlite:///{original / 'optuna.db'}", "objectives": ["val/acc"]}))
    shutil.copytree(original, copy)
    make_study(original, "s", n_trials=2)  # the original goes on: 5 trials there, 3 in the copy
    study, out_dir, names = find_study(str(copy))
    assert (len(study.trials), out_dir, names) == (3, copy, ["val/acc"])
    (copy / "optuna.db").unlink()  # a copy without its database: refused, not read from the original
    with pytest.raises(UserError, match=r"copy holds no optuna.db or optuna.journal, and its "
                                        r"optimization_results.yaml names the storage of another sweep directory"):
        find_study(str(copy))


@pytest.mark.parametrize("setup, target, study, message", [
    (None, "missing", None, "missing: no such directory or file"),
    ("empty", ".", None, "is not a sweep directory: it holds none of optimization_results.yaml"),
    ("nested", ".", None, r"sweep directories in it: .*optuna/s"),
    ("text", "optuna.db", None, "is not an Optuna database"),
    ("two", ".", None, r"holds several studies \(a, b\): name one with study=NAME"),
    ("two", ".", "c", "study=c: no such study"),
    ("memory", ".", None, "lived in memory"),
    (None, "sqlite:///nowhere/optuna.db", None, "does not exist"),
])
def test_bad_targets_are_one_clear_message(tmp_path, monkeypatch, setup, target, study, message):
    monkeypatch.chdir(tmp_path)
    if setup == "nested":
        (tmp_path / "runs" / "optuna" / "s").mkdir(parents=True)
        make_study(tmp_path / "runs" / "optuna" / "s", n_trials=1)
        target = "runs"
    elif setup == "text":
        (tmp_path / "optuna.db").write_text("not a database")
    elif setup == "two":
        make_study(tmp_path, "a", n_trials=1), make_study(tmp_path, "b", n_trials=1)
    elif setup == "memory":
        (tmp_path / "optimization_results.yaml").write_text(yaml.safe_dump({"study_name": "m", "storage": "memory"}))
    with pytest.raises(UserError, match=message):
        find_study(target, study)


def test_a_bad_target_exits_2_and_writes_nothing(tmp_path, capsys):
    assert main(["sweep-report", str(tmp_path)]) == 2
    assert "is not a sweep directory" in capsys.readouterr().err
    assert main(["sweep-report"]) == 2
    assert list(tmp_path.iterdir()) == []


def test_sweep_report_counts_the_trials_by_state(tmp_path, capsys):
    """The Optuna example's closing statistics: how many trials ran, how many were pruned, how many completed."""
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = optuna.create_study(study_name="s", storage=storage, direction="maximize",
                                sampler=optuna.samplers.RandomSampler(seed=0))

    def objective(trial):
        lr = trial.suggest_float("optimizer.lr", 1e-4, 1e-1, log=True)
        if trial.number % 3 == 2:
            raise optuna.TrialPruned()
        return lr

    study.optimize(objective, n_trials=6)
    assert main(["sweep-report", str(tmp_path)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    best = study.best_trial
    assert "study s: trials 6 (complete 4, pruned 2)" in out, out
    assert f"best trial #{best.number}: objective={best.value:.4g}; optimizer.lr={best.params['optimizer.lr']}" in out
