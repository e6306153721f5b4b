"""K-fold cross-validation (`cv.folds=k`): one run per fold over train+val, and a mean ± std summary."""

from __future__ import annotations

import statistics
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from omegaconf import DictConfig

from trainctl.data.catalog import build_dataset
from trainctl.data.splits import DataBundle, Split
from trainctl.engine.events import Callback
from trainctl.engine.fit import fit
from trainctl.errors import UserError
from trainctl.files import write_json
from trainctl.metrics import objectives
from trainctl.terminal import console


def fold_bundles(data: DataBundle, folds: int, seed: int) -> list[DataBundle]:
    """Pool train and val, cut the pool into `folds` parts by a seeded shuffle; part k validates fold k."""
    if not isinstance(data.train, Split) or not isinstance(data.val, Split):
        raise UserError("cv.folds > 1 needs a dataset held in memory (not a streamed imagefolder)")
    x, y = torch.cat([data.train.x, data.val.x]), torch.cat([data.train.y, data.val.y])
    if folds > len(y):
        raise UserError(f"cv.folds={folds} is more than the {len(y)} training samples")
    parts = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed)).tensor_split(folds)
    bundles = []
    for k in range(folds):
        train_idx = torch.cat([p for i, p in enumerate(parts) if i != k])
        bundles.append(DataBundle(Split(x[train_idx], y[train_idx]), Split(x[parts[k]], y[parts[k]]), data.test,
                                  data.spec, data.train_transform, data.eval_transform))
    return bundles


def fold_verdicts(results: list[dict[str, Any]]) -> dict[str, Any]:
    """The folds' verdicts in fold order, and the most common one as the run's (ties: the first fold's among
    them); each fold's reason and numbers stay in its own metrics.json."""
    folds = [r["diagnosis"]["verdict"] for r in results]
    return {"verdict": Counter(folds).most_common(1)[0][0], "folds": folds}  # equal counts: first seen wins


def cross_validate(cfg: DictConfig, run_dir: Path, device: torch.device,
                   make_callbacks: Callable[[], Sequence[Callback]]) -> dict[str, Any]:
    if cfg.resume:
        raise UserError("resume does not combine with cv.folds > 1: resume one fold's directory instead")
    results = []
    for k, bundle in enumerate(fold_bundles(build_dataset(cfg.dataset, cfg.seed), cfg.cv.folds, cfg.seed)):
        fold_dir = run_dir / f"fold_{k}"
        fold_dir.mkdir(parents=True, exist_ok=True)
        results.append(fit(cfg, fold_dir, device, make_callbacks(), data=bundle))
    keys = [k for k, v in results[0].items() if isinstance(v, float) and k.startswith(("val/", "test/"))]
    summary: dict[str, Any] = {
        "folds": cfg.cv.folds,
        **{k: {"mean": statistics.fmean(r[k] for r in results),
               "std": statistics.pstdev(r[k] for r in results)} for k in keys},
        "fold_dirs": [str(run_dir / f"fold_{k}") for k in range(cfg.cv.folds)],
    }
    summary["diagnosis"] = fold_verdicts(results)
    names = objectives(cfg.objective)
    summary["objective"] = names[0]
    summary["objective_value"] = summary[names[0]]["mean"]
    summary["status"] = "completed"
    write_json(run_dir / "metrics.json", summary)
    for key in keys:
        console.print(f"{key:<12} {summary[key]['mean']:.4f} ± {summary[key]['std']:.4f}  ({cfg.cv.folds} folds)")
    verdicts = summary["diagnosis"]
    console.print(f"{'verdict':<12} {verdicts['verdict']}  (folds: {', '.join(verdicts['folds'])}; each fold's "
                  "reason is in its metrics.json)")
    return summary
