"""The sweep report's pictures: Optuna's own matplotlib plots, rendered to PNG bytes.

A plot that has nothing to show (no complete trial, a single one, no intermediate values) is not drawn: it
comes back with a note saying why, so the report says so instead of showing an empty frame or stopping.
"""

from __future__ import annotations

import io
import logging
import warnings
from dataclasses import dataclass
from typing import Any, Callable

import optuna
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState


@dataclass
class Plot:
    key: str  # the file name without .png
    title: str
    png: bytes | None = None
    note: str | None = None  # why it was not drawn


@dataclass
class Objective:
    """One objective of the study: its name, its place in `trial.values`, and the study's direction for it."""
    name: str
    index: int
    maximize: bool
    single: bool  # the study has this objective only

    def target(self) -> Callable[[FrozenTrial], float] | None:
        """Optuna's plots take the study's own value for a single objective, a target function otherwise."""
        return None if self.single else (lambda t: t.values[self.index])

    def lower_is_better_target(self) -> Callable[[FrozenTrial], float] | None:
        """The target the importance evaluator (PED-ANOVA) wants: it ranks low values best when given one."""
        if self.single:
            return None
        sign = -1.0 if self.maximize else 1.0
        return lambda t: sign * t.values[self.index]


def study_objectives(study: optuna.Study, names: list[str]) -> list[Objective]:
    single = len(study.directions) == 1
    return [Objective(name, i, d == StudyDirection.MAXIMIZE, single) for i, (name, d) in
            enumerate(zip(names, study.directions))]


def _png(drawn: Any) -> bytes:
    """An Optuna matplotlib result (one Axes, or an array of them for the slice plot) as PNG bytes."""
    import matplotlib.pyplot as plt

    axes = drawn.flat[0] if hasattr(drawn, "flat") else drawn
    figure = axes.figure
    figure.set_size_inches(max(figure.get_size_inches()[0], 8), max(figure.get_size_inches()[1], 5))
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(figure)
    return buffer.getvalue()


def _draw(plot: Plot, draw: Callable[[], Any]) -> Plot:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # experimental-API and small-sample warnings: the notes say enough
            plot.png = _png(draw())
    except Exception as e:  # a plot Optuna cannot draw for this study: say so, keep the rest of the report
        plot.note = f"not drawn: {type(e).__name__}: {e}"
    return plot


def draw_plots(study: optuna.Study, objective: Objective, importance_note: str | None) -> list[Plot]:
    """Optimisation history, parallel coordinates, slices, importances and intermediate values for one objective
    (`importance_note`: why the importances cannot be ranked, so their plot is not drawn)."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed, none opened
    # It says at INFO that it plots numeric-looking choices ("32", "64") as categories, which they are.
    logging.getLogger("matplotlib.category").setLevel(logging.WARNING)
    from optuna.visualization import matplotlib as vis

    trials = study.get_trials(deepcopy=False)
    complete = sum(t.state == TrialState.COMPLETE for t in trials)
    suffix = "" if objective.single else f"-{objective.index}"
    name, target = objective.name, objective.target()
    few = None if complete >= 2 else f"not drawn: needs at least 2 complete trials, the study has {complete}"
    plots = [
        (Plot(f"history{suffix}", f"Optimisation history: {name}"),
         None if complete else "not drawn: no complete trial yet",
         lambda: vis.plot_optimization_history(study, target=target, target_name=name)),
        (Plot(f"parallel{suffix}", f"Parallel coordinates: {name}"), few,
         lambda: vis.plot_parallel_coordinate(study, target=target, target_name=name)),
        (Plot(f"slice{suffix}", f"Slices: {name} against each parameter"), few,
         lambda: vis.plot_slice(study, target=target, target_name=name)),
        (Plot(f"importances{suffix}", f"Parameter importances: {name}"),
         f"not drawn: {importance_note}" if importance_note else None,
         lambda: vis.plot_param_importances(study, target=objective.lower_is_better_target(),
                                            target_name=name)),
        (Plot(f"intermediate{suffix}", f"Intermediate values: {name} after each epoch"),
         _intermediate_note(study, trials), lambda: vis.plot_intermediate_values(study)),
    ]
    return [Plot(p.key, p.title, note=note) if note else _draw(p, draw) for p, note, draw in plots]


def _intermediate_note(study: optuna.Study, trials: list[FrozenTrial]) -> str | None:
    if len(study.directions) > 1:
        return "not drawn: a multi-objective study reports no intermediate values (it is not pruned)"
    if not any(t.intermediate_values for t in trials):
        return "not drawn: no trial reported intermediate values"
    return None
