"""The sweep report: the best trials, parameter importances and Optuna's plots, as `report.html` (one page that
opens offline) and `report_<plot>.png` beside it in the sweep directory (files, not a folder: the sweep
directory's folders are its trials), plus the importance table on the console.

Written at the end of every sweep and by `trainctl sweep-report`. Importances are Optuna's default evaluator,
PED-ANOVA: it needs no extra package (fANOVA needs scikit-learn) and is deterministic.
"""

from __future__ import annotations

import datetime
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from trainctl.files import atomic_write_bytes
from trainctl.sweep.report_html import render
from trainctl.sweep.report_plots import Objective, Plot, draw_plots, study_objectives

REPORT_HTML = "report.html"
PLOT_PREFIX = "report_"  # report_history.png, report_slice.png, ...
TOP = 10


@dataclass
class Section:
    """One objective's part of the report."""
    objective: Objective
    importances: dict[str, float] | None = None
    note: str | None = None  # why there are no importances, or why they are rough
    plots: list[Plot] = field(default_factory=list)


def objective_names(study: optuna.Study, fallback: list[str] | None = None) -> list[str]:
    """The objectives' names: the study's metric names (set by the sweep), else `fallback`, else numbered."""
    if study.metric_names:
        return list(study.metric_names)
    if fallback and len(fallback) == len(study.directions):
        return list(fallback)
    return ["objective"] if len(study.directions) == 1 else [f"objective {i}" for i in range(len(study.directions))]


def param_importances(study: optuna.Study, objective: Objective) -> tuple[dict[str, float] | None, str | None]:
    """(importances, None), or (None, why not) when there are too few complete trials to rank parameters."""
    complete = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    if complete < 2:
        return None, f"too few trials for parameter importances: {complete} complete, at least 2 needed"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            found = optuna.importance.get_param_importances(study, target=objective.lower_is_better_target())
        except (ValueError, RuntimeError) as e:
            return None, f"no parameter importances: {e}"
    # PED-ANOVA compares the best tenth of the trials (at least 2) with all of them; with few trials those are
    # the same set and it gives every parameter the same share: that is no ranking.
    if any("Parameter importances will be equal" in str(w.message) for w in caught):
        return None, (f"too few trials for parameter importances: {complete} complete; PED-ANOVA ranks "
                      "parameters once the best tenth of the trials differs from all of them")
    if not found:
        return None, "no parameter importances: no parameter varies across the complete trials"
    return dict(sorted(found.items(), key=lambda kv: -kv[1])), None


def best_trials(study: optuna.Study, top: int = TOP) -> list[FrozenTrial]:
    """The best complete trials, best first by the first objective (the Pareto front for several objectives)."""
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if len(study.directions) > 1 and done:
        done = study.best_trials
    sign = -1 if study.directions[0] == optuna.study.StudyDirection.MAXIMIZE else 1
    return sorted(done, key=lambda t: sign * t.values[0])[:top]


def _summary(study: optuna.Study, names: list[str]) -> dict[str, Any]:
    trials = study.get_trials(deepcopy=False)
    states = ", ".join(f"{s.name.lower()} {n}" for s in TrialState if (n := sum(t.state == s for t in trials)))
    return {"study_name": study.study_name,
            "objectives": ", ".join(f"{n} ({d.name.lower()})" for n, d in zip(names, study.directions)),
            "trials": f"{len(trials)} ({states})" if trials else "0",
            "written": datetime.datetime.now().isoformat(timespec="seconds")}


def build_sections(study: optuna.Study, names: list[str]) -> list[Section]:
    sections = []
    for objective in study_objectives(study, names):
        importances, note = param_importances(study, objective)
        plots = draw_plots(study, objective, note if importances is None else None)
        sections.append(Section(objective, importances, note, plots))
    return sections


def write_report(study: optuna.Study, out_dir: Path, names: list[str]) -> tuple[Path, list[Section]]:
    """report.html and report_<plot>.png in `out_dir`; a plot not drawn this time loses its old file."""
    sections = build_sections(study, names)
    out_dir.mkdir(parents=True, exist_ok=True)
    for section in sections:
        for plot in section.plots:
            path = out_dir / f"{PLOT_PREFIX}{plot.key}.png"
            if plot.png is None:
                path.unlink(missing_ok=True)
            else:
                png = plot.png
                atomic_write_bytes(path, lambda f: f.write(png))
    html = render(_summary(study, names), best_trials(study), names,
                  [(s.objective.name, s.importances, s.note, s.plots) for s in sections])
    atomic_write_bytes(out_dir / REPORT_HTML, lambda f: f.write(html.encode()))
    return out_dir / REPORT_HTML, sections


def print_importances(sections: list[Section]) -> None:
    """The importance table of each objective on the console, or the one line that says why there is none."""
    from trainctl.terminal import make_console
    from rich.markup import escape
    from rich.table import Table

    console = make_console()
    for s in sections:
        if s.importances is None:
            console.print(f"{escape(s.objective.name)}: {escape(s.note or '')}", soft_wrap=True)
            continue
        table = Table(title=f"parameter importances for {s.objective.name} (PED-ANOVA)", title_justify="left")
        table.add_column("parameter")
        table.add_column("importance", justify="right")
        table.add_column("")
        for name, value in s.importances.items():
            table.add_row(escape(name), f"{value:.3f}", "█" * round(20 * value))
        console.print(table)


def print_overview(study: optuna.Study, names: list[str]) -> None:
    """The study's closing statistics on the console, as the Optuna example prints them: how many trials in each
    state, and the best trial's value and parameters (the first of the Pareto front for several objectives)."""
    from trainctl.terminal import make_console
    from rich.markup import escape

    console = make_console()
    summary = _summary(study, names)
    console.print(f"study {escape(study.study_name)}: trials {summary['trials']}", soft_wrap=True)
    best = best_trials(study, top=1)
    if best:
        values = ", ".join(f"{n}={v:.4g}" for n, v in zip(names, best[0].values))
        params = " ".join(f"{k}={v}" for k, v in best[0].params.items())
        console.print(escape(f"best trial #{best[0].number}: {values}; {params}"), soft_wrap=True)
