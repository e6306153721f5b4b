"""The sweep report as one HTML page that opens offline: plain HTML and CSS, the plots embedded as base64 PNGs,
no scripts, nothing fetched."""

from __future__ import annotations

import base64
from html import escape
from typing import Any

from optuna.trial import FrozenTrial

from trainctl.sweep.report_plots import Plot

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 72em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.bar { background: #4c78a8; height: 0.8em; display: inline-block; }
.note { color: #8a5a00; font-style: italic; }
img { max-width: 100%; border: 1px solid #eee; }
code { background: #f4f4f4; padding: 0 0.2em; }
"""


def _number(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, float) else escape(str(value))


def _trials_table(trials: list[FrozenTrial], names: list[str]) -> str:
    if not trials:
        return '<p class="note">No complete trial yet.</p>'
    keys = sorted({k for t in trials for k in t.params})
    head = "".join(f"<th>{escape(h)}</th>" for h in ["trial", *names, *keys, "run directory"])
    rows = []
    for t in trials:
        cells = [f'<td class="num">{t.number}</td>']
        cells += [f'<td class="num">{_number(v)}</td>' for v in (t.values or [])]
        cells += [f"<td>{_number(t.params[k])}</td>" if k in t.params else "<td></td>" for k in keys]
        cells.append(f"<td><code>{escape(str(t.user_attrs.get('run_dir', '')))}</code></td>")
        rows.append(f"<tr>{''.join(cells)}</tr>")
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def _importance_table(importances: dict[str, float] | None, note: str | None) -> str:
    if importances is None:
        return f'<p class="note">{escape(note or "")}</p>'
    rows = "".join(f"<tr><td>{escape(k)}</td><td class=\"num\">{v:.3f}</td>"
                   f"<td><span class=\"bar\" style=\"width: {20 * v:.2f}em\"></span></td></tr>"
                   for k, v in importances.items())
    caveat = f'<p class="note">{escape(note)}</p>' if note else ""
    return f"<table><tr><th>parameter</th><th>importance</th><th></th></tr>{rows}</table>{caveat}"


def _plot(plot: Plot) -> str:
    title = f"<h3>{escape(plot.title)}</h3>"
    if plot.png is None:
        return f'{title}<p class="note">{escape(plot.note or "not drawn")}</p>'
    data = base64.b64encode(plot.png).decode("ascii")
    return f'{title}<img alt="{escape(plot.title)}" src="data:image/png;base64,{data}">'


def render(summary: dict[str, Any], best: list[FrozenTrial], names: list[str],
           sections: list[tuple[str, dict[str, float] | None, str | None, list[Plot]]]) -> str:
    """The page: what the study is, its best trials, then per objective the importances and the plots.
    `sections` holds, per objective, (name, importances or None, a note about them, plots)."""
    title = f"Sweep report: {summary['study_name']}"
    facts = "".join(f"<tr><th>{escape(k)}</th><td>{escape(str(v))}</td></tr>" for k, v in summary.items())
    parts = [f"<h1>{escape(title)}</h1>", f"<table>{facts}</table>",
             "<h2>Best trials</h2>", _trials_table(best, names)]
    for name, importances, note, plots in sections:
        parts.append(f"<h2>{escape(name)}</h2><h3>Parameter importances (PED-ANOVA)</h3>")
        parts.append(_importance_table(importances, note))
        parts.extend(_plot(p) for p in plots)
    body = "\n".join(parts)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
            f"<style>{STYLE}</style></head><body>\n{body}\n</body></html>\n")
