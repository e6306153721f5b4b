"""A grid multirun through the real CLI: jobs named by what they vary, a leaderboard and results.csv at the end,
and `sweep-report` on its sweep directory; the naming rules on their own."""

from __future__ import annotations

import csv

import pytest

from conftest import run_cli, run_dirs
from trainctl.config.job_names import MAX_NAME, short_name, sweep_keys

pytestmark = pytest.mark.slow

GRID = ["train", "-m", "experiment=smoke", "trainer.epochs=2", "optimizer.lr=1e-3,1e-1", "model.hidden=[8],[16,16]"]


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("grid")
    proc = run_cli(GRID, cwd)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    [sweep] = run_dirs(cwd)
    return cwd, sweep, proc


def test_each_job_is_named_by_the_overrides_it_varies(grid):
    _, sweep, _ = grid
    jobs = sorted(p.name for p in sweep.iterdir() if p.is_dir())
    assert jobs == ["0_optimizer.lr=0.001,model.hidden=_8", "1_optimizer.lr=0.001,model.hidden=_16,16",
                    "2_optimizer.lr=0.1,model.hidden=_8", "3_optimizer.lr=0.1,model.hidden=_16,16"]


def test_the_grid_ends_with_a_leaderboard_and_results_csv(grid):
    _, sweep, proc = grid
    rows = list(csv.DictReader((sweep / "results.csv").open()))
    assert [r["rank"] for r in rows] == ["1", "2", "3", "4"]
    assert {(r["optimizer.lr"], r["model.hidden"]) for r in rows} == {
        ("0.001", "[8]"), ("0.001", "[16,16]"), ("0.1", "[8]"), ("0.1", "[16,16]")}
    accs = [float(r["val/acc"]) for r in rows]
    assert accs == sorted(accs, reverse=True)  # best first by the objective
    assert all(r["status"] == "completed" and float(r["test/acc"]) > 0 and float(r["time_s"]) > 0 for r in rows)
    out = proc.stdout
    assert f"grid {sweep.relative_to(grid[0])}: 4 job(s), best first by val/acc" in out
    table = out[out.index("grid "):]
    for name in ("optimizer.lr", "model.hidden", "val/acc", "test/acc", "time_s"):
        assert name in table
    assert f"results: {sweep.relative_to(grid[0]) / 'results.csv'}" in out


def test_sweep_report_accepts_a_grid_directory(grid):
    cwd, sweep, _ = grid
    proc = run_cli(["sweep-report", str(sweep)], cwd)
    assert proc.returncode == 0, proc.stderr
    assert (sweep / "report.html").is_file() and (sweep / "report_parallel.png").is_file()
    assert "parameter importances for val/acc" in proc.stdout or "too few trials" in proc.stdout
    html = (sweep / "report.html").read_text()
    assert "optimizer.lr" in html and "model.hidden" in html


def test_sweep_keys_are_the_overrides_with_several_values():
    assert sweep_keys(["optimizer.lr=1e-3,1e-2", "model=mlp,cnn", "seed=1", "trainer.epochs=range(1,3)",
                       "+x=choice(1,2)", "a=[1,2]"]) == ["optimizer.lr", "model", "trainer.epochs", "x"]


def test_long_names_are_cut_with_a_hash_and_unsafe_characters_replaced():
    assert short_name("dataset.root=/data/x y,model=mlp") == "dataset.root=_data_x_y,model=mlp"
    long = ",".join(f"model.k{i}=value{i}" for i in range(20))
    cut = short_name(long)
    assert len(cut) <= MAX_NAME and "~" in cut
    assert cut != short_name(long + "x")  # the hash keeps two long names apart
