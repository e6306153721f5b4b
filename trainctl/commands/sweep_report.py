"""`trainctl sweep-report TARGET [study=NAME] [out=DIR]`: write a study's report again (the sweep writes one at
its end) and print its parameter importances. No torch here: only Optuna and matplotlib."""

from __future__ import annotations

from pathlib import Path

from trainctl.errors import UserError

USAGE = """usage: trainctl sweep-report TARGET [study=NAME] [out=DIR]

The report of an Optuna sweep: best trials, parameter importances and plots (optimisation history, parallel
coordinates, slices, importances, intermediate values) as report.html (opens offline) and report_*.png.
TARGET is a sweep directory (runs/optuna/<study>, or a grid multirun's runs/sweep_<time>), its optuna.db or
optuna.journal, or a storage URL (sqlite:///PATH, journal:PATH, postgresql://...). study= picks a study when the storage holds several;
out= is where the report goes (default: the sweep directory)."""
OPTIONS = ("study", "out")


def _parse(args: list[str]) -> tuple[str, dict[str, str]]:
    target: str | None = None
    options: dict[str, str] = {}
    for arg in args:
        key, sep, value = arg.partition("=")
        if sep and key in OPTIONS:
            if not value:
                raise UserError(f"{key}= is empty: give a value. {USAGE}")
            options[key] = value
        elif target is None:  # a path or URL, "=" and all
            target = arg
        else:
            raise UserError(f"'{arg}' is not one of this command's arguments. {USAGE}")
    if target is None:
        raise UserError(f"which sweep? {USAGE}")
    return target, options


def run_sweep_report(args: list[str]) -> int:
    if args and args[0] in ("-h", "--help"):
        print(USAGE)
        return 0
    target, options = _parse(args)
    from trainctl.terminal import make_console
    from rich.markup import escape

    from trainctl.sweep.find_study import find_study
    from trainctl.sweep.report import objective_names, print_importances, print_overview, write_report

    from trainctl.sweep.grid import grid_study, is_grid_dir

    if Path(target).is_dir() and is_grid_dir(Path(target)):  # a grid multirun: its jobs as an in-memory study
        study, recorded = grid_study(Path(target))
        out_dir = Path(target)
    else:
        study, out_dir, recorded = find_study(target, options.get("study"))
    out = Path(options.get("out") or out_dir)
    try:
        names = objective_names(study, recorded)
        page, sections = write_report(study, out, names)
    except OSError as e:
        raise UserError(f"out={out}: cannot write the report there ({e.strerror or e}): give a writable "
                        "directory") from None
    print_overview(study, names)
    print_importances(sections)
    make_console().print(f"report: {escape(str(page))} (plots beside it: report_*.png)", soft_wrap=True)
    return 0
