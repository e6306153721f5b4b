"""What a grid multirun (`trainctl train -m optimizer.lr=1e-3,1e-2 model=mlp,cnn`) leaves at its end: a
leaderboard on the console and `results.csv` in the sweep directory, read from each job's metrics.json; and,
for `trainctl sweep-report`, the grid as an in-memory Optuna study, so a grid gets the same report as a search.

A grid's sweep directory is the one Hydra made: multirun.yaml (the overrides, which say what was varied) and a
folder per job with `.hydra/overrides.yaml`. No Optuna storage is written: a grid has no study of its own.
"""

from __future__ import annotations

import csv
import io
import json
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from trainctl.config.job_names import sweep_keys, varied_overrides
from trainctl.files import atomic_write_bytes
from trainctl.metrics import higher_is_better

MULTIRUN = "multirun.yaml"
RESULTS_CSV = "results.csv"


@dataclass
class GridJob:
    number: int
    path: Path
    varied: dict[str, str]
    metrics: dict[str, Any] = field(default_factory=dict)  # empty when the job left no readable metrics.json

    @property
    def status(self) -> str:
        return str(self.metrics.get("status", "failed")) if self.metrics else "failed"

    def value(self, name: str) -> float | None:
        value = self.metrics.get(name)
        return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None

    def seconds(self) -> float | None:
        times = [v for k, v in self.metrics.items() if k.startswith("time/") and isinstance(v, (int, float))]
        return sum(times) if times else None


OPTUNA_FILES = ("optuna.db", "optuna.journal")
OPTUNA_RESULTS = "optimization_results.yaml"


def is_grid_dir(path: Path) -> bool:
    """A sweep directory Hydra's own (grid) sweeper wrote: multirun.yaml and job folders, no Optuna storage, and
    not an Optuna sweep's directory whose database was removed or not copied (its report is of that study only)."""
    if not (path / MULTIRUN).is_file() or any((path / n).exists() for n in (*OPTUNA_FILES, OPTUNA_RESULTS)):
        return False
    saved = _read_yaml(path / MULTIRUN)
    try:
        sweeper = saved["hydra"]["runtime"]["choices"]["hydra/sweeper"]
    except (KeyError, TypeError):
        return True
    return sweeper != "optuna"


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        return None


def varied_keys(sweep_dir: Path) -> list[str]:
    saved = _read_yaml(sweep_dir / MULTIRUN)
    try:
        return sweep_keys(saved["hydra"]["overrides"]["task"])
    except (KeyError, TypeError, ValueError):
        return []


def read_jobs(sweep_dir: Path) -> tuple[list[str], list[GridJob]]:
    """(the varied keys, every job of the grid by number)."""
    keys = varied_keys(sweep_dir)
    jobs = []
    for folder in sweep_dir.iterdir():
        number = folder.name.split("_", 1)[0]
        overrides = _read_yaml(folder / ".hydra" / "overrides.yaml") if folder.is_dir() else None
        if not number.isdigit() or not isinstance(overrides, list):
            continue
        try:
            metrics = json.loads((folder / "metrics.json").read_text())
        except (OSError, ValueError):
            metrics = {}
        jobs.append(GridJob(int(number), folder, varied_overrides(overrides, keys),
                            metrics if isinstance(metrics, dict) else {}))
    return keys, sorted(jobs, key=lambda j: j.number)


def objective_names(jobs: list[GridJob]) -> list[str]:
    for job in jobs:
        objective = job.metrics.get("objective")
        if objective:
            return [objective] if isinstance(objective, str) else [str(o) for o in objective]
    return []


def test_names(jobs: list[GridJob]) -> list[str]:
    return sorted({k for j in jobs for k, v in j.metrics.items() if k.startswith("test/") and isinstance(v, float)})


def ranked(jobs: list[GridJob], objectives: list[str]) -> list[GridJob]:
    """Best first by the first objective, a tie going to the lower val/loss (as best.pt's epoch); jobs without
    its value last, by number."""
    if not objectives:
        return jobs
    first, sign = objectives[0], (-1 if higher_is_better(objectives[0]) else 1)

    def key(j: GridJob) -> tuple[Any, ...]:
        loss = j.value("val/loss")
        return (j.value(first) is None, sign * (j.value(first) or 0.0), loss is None, loss or 0.0, j.number)

    return sorted(jobs, key=key)


def _cell(value: float | None) -> str:
    return "" if value is None else f"{value:.6g}"


def results_csv(keys: list[str], jobs: list[GridJob], objectives: list[str]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    tests = test_names(jobs)
    writer.writerow(["rank", "job", *keys, *objectives, *tests, "status", "epochs", "best_epoch", "time_s",
                     "run_dir"])
    for rank, job in enumerate(ranked(jobs, objectives), 1):
        writer.writerow([rank, job.number, *(job.varied.get(k, "") for k in keys),
                         *(_cell(job.value(o)) for o in objectives), *(_cell(job.value(t)) for t in tests),
                         job.status, job.metrics.get("epochs", ""), job.metrics.get("best_epoch", ""),
                         _cell(job.seconds()), str(job.path)])
    return out.getvalue()


def write_results(sweep_dir: Path) -> tuple[list[str], list[GridJob], list[str], Path]:
    """results.csv in the sweep directory; returns (varied keys, jobs, objectives, its path)."""
    keys, jobs = read_jobs(sweep_dir)
    objectives = objective_names(jobs)
    text = results_csv(keys, jobs, objectives)
    path = sweep_dir / RESULTS_CSV
    atomic_write_bytes(path, lambda f: f.write(text.encode()))
    return keys, jobs, objectives, path


def print_leaderboard(sweep_dir: Path, keys: list[str], jobs: list[GridJob], objectives: list[str]) -> None:
    from rich.markup import escape
    from rich.table import Table

    from trainctl.terminal import make_console

    tests = test_names(jobs)
    best = f", best first by {objectives[0]}" if objectives else ""
    table = Table(title=f"grid {sweep_dir}: {len(jobs)} job(s){best}", title_justify="left")
    for name in ["job", *keys]:
        table.add_column(escape(name))
    for name in [*objectives, *tests, "time_s"]:
        table.add_column(escape(name), justify="right")
    table.add_column("status")
    for job in ranked(jobs, objectives):
        values = [job.value(n) for n in [*objectives, *tests]]
        table.add_row(str(job.number), *(escape(job.varied.get(k, "")) for k in keys),
                      *(_cell(v) if v is None else f"{v:.4f}" for v in values),
                      "" if job.seconds() is None else f"{job.seconds():.1f}", job.status)
    console = make_console()
    console.print(table)
    console.print(f"results: {sweep_dir / RESULTS_CSV}", soft_wrap=True, markup=False, highlight=False)


def _param(values: list[Any]) -> tuple[Any, list[Any]]:
    """An Optuna distribution for a varied key's values and the values as it takes them."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    parsed = [yaml.safe_load(v) if isinstance(v, str) else v for v in values]
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in parsed)
    if numbers and len(set(parsed)) > 1:
        low, high = min(parsed), max(parsed)
        if all(isinstance(v, int) for v in parsed):
            return IntDistribution(int(low), int(high)), [int(v) for v in parsed]
        log = low > 0 and high / low >= 10  # learning rates and the like: read on a log scale
        return FloatDistribution(float(low), float(high), log=log), [float(v) for v in parsed]
    shown = [v if isinstance(v, (str, int, float, bool)) or v is None else str(v) for v in parsed]
    return CategoricalDistribution(sorted(set(map(str, shown)))), [str(v) for v in shown]


def grid_study(sweep_dir: Path) -> tuple[Any, list[str]]:
    """The grid as an in-memory Optuna study (one trial per job: its varied values, objective, per-epoch
    objective as intermediate values), and its objective names; for the sweep report."""
    import optuna
    from optuna.trial import TrialState, create_trial

    keys, jobs = read_jobs(sweep_dir)
    objectives = objective_names(jobs)
    if not objectives:
        from trainctl.errors import UserError

        raise UserError(f"{sweep_dir} is a grid's sweep directory, but none of its {len(jobs)} job(s) finished "
                        "with a metrics.json: there is nothing to report yet")
    columns = {k: _param([j.varied.get(k, "") for j in jobs]) for k in keys}
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "a new study created in memory" line
    study = optuna.create_study(study_name=sweep_dir.name,
                                directions=["maximize" if higher_is_better(o) else "minimize" for o in objectives])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(objectives)
    for i, job in enumerate(jobs):
        values = [job.value(o) for o in objectives]
        done = all(v is not None for v in values)
        history = {int(r["epoch"]): float(r[objectives[0]]) for r in job.metrics.get("history", [])
                   if isinstance(r, dict) and isinstance(r.get(objectives[0]), (int, float))
                   and math.isfinite(r[objectives[0]])}
        study.add_trial(create_trial(
            state=TrialState.COMPLETE if done else TrialState.FAIL, values=values if done else None,
            params={k: columns[k][1][i] for k in keys}, distributions={k: columns[k][0] for k in keys},
            intermediate_values=history, user_attrs={"run_dir": str(job.path)}))
    return study, objectives
