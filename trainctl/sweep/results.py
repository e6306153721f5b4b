"""What a sweep leaves behind: optimization_results.yaml, trials.csv, the best trial's config, a table, HParams."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import optuna
import yaml
from optuna.trial import FrozenTrial, TrialState

from trainctl.files import atomic_write_bytes
from trainctl.sweep.gpus import overrides_for


def _values(trial: FrozenTrial) -> list[float] | None:
    return list(trial.values) if trial.values is not None else None


def _best_trials(study: optuna.Study) -> list[FrozenTrial]:
    if not any(t.state == TrialState.COMPLETE for t in study.get_trials(deepcopy=False)):
        return []
    return study.best_trials if len(study.directions) > 1 else [study.best_trial]


def _write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, lambda f: f.write(text.encode()))


def write_all(study: optuna.Study, sweep_dir: Path, objectives: list[str], storage: str) -> None:
    trials = study.get_trials(deepcopy=False)
    best = _best_trials(study)
    counts = {state.name: sum(t.state == state for t in trials) for state in TrialState}
    summary: dict[str, Any] = {
        "study_name": study.study_name,
        "storage": storage,
        "objectives": objectives,
        "directions": [d.name.lower() for d in study.directions],
        "n_trials": len(trials),
        "states": {k: v for k, v in counts.items() if v},
        "best": [{"number": t.number, "values": _values(t), "params": t.params,
                  "run_dir": t.user_attrs.get("run_dir")} for t in best],
    }
    _write_text(sweep_dir / "optimization_results.yaml", yaml.safe_dump(summary, sort_keys=False))
    _write_text(sweep_dir / "trials.csv", trials_csv(trials, objectives))
    if best and best[0].user_attrs.get("run_dir"):
        config = Path(best[0].user_attrs["run_dir"]) / ".hydra" / "config.yaml"
        if config.is_file():
            _write_text(sweep_dir / "best_config.yaml", config.read_text())  # atomic: sweeps may share the dir
            overrides = (config.parent / "overrides.yaml")
            if overrides.is_file():
                lent = lent_overrides(best[0])  # the GPU the trial was lent is no part of the command
                lines = [o for o in yaml.safe_load(overrides.read_text())
                         if not o.startswith(("hydra.", "++hydra.")) and o not in lent]
                _write_text(sweep_dir / "best_command.txt", "trainctl train " + " ".join(lines) + "\n")


def lent_overrides(trial: FrozenTrial) -> list[str]:
    """The overrides the sweep added to lend `trial` a GPU (none if it lent none)."""
    device = trial.user_attrs.get("device")
    return overrides_for(int(device.split(":")[1])) if device else []


def trials_csv(trials: list[FrozenTrial], objectives: list[str]) -> str:
    keys = sorted({k for t in trials for k in t.params})
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["number", "state", *objectives, *keys, "duration_s", "run_dir", "error"])
    for t in sorted(trials, key=lambda t: t.number):
        values = _values(t) or [""] * len(objectives)
        duration = t.duration.total_seconds() if t.duration is not None else ""
        writer.writerow([t.number, t.state.name, *values, *(t.params.get(k, "") for k in keys), duration,
                         t.user_attrs.get("run_dir", ""), t.user_attrs.get("error", "")])
    return out.getvalue()


def print_top(study: optuna.Study, objectives: list[str], top: int = 10) -> None:
    from trainctl.terminal import make_console
    from rich.markup import escape
    from rich.table import Table

    trials = study.get_trials(deepcopy=False)
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    sign = -1 if study.directions[0] == optuna.study.StudyDirection.MAXIMIZE else 1
    done.sort(key=lambda t: sign * t.values[0])
    states = ", ".join(f"{s.name.lower()} {n}" for s in TrialState if (n := sum(t.state == s for t in trials)))
    table = Table(title=f"study {study.study_name}: {len(trials)} trials ({states})", title_justify="left")
    table.add_column("trial", justify="right")
    for name in objectives:
        table.add_column(name, justify="right")
    table.add_column("params")
    for t in done[:top]:
        params = "  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in t.params.items())
        table.add_row(str(t.number), *(f"{v:.4f}" for v in t.values), escape(params))
    make_console().print(table)
