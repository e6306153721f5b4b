"""An Optuna sweep's default study name: what it searches, and a hash of the command, so running the same
command again continues the same study."""

from __future__ import annotations

import hashlib
import json
from typing import Any, Sequence

from omegaconf import DictConfig

from trainctl.config.job_names import short_name
from trainctl.sweep.algorithms import setting_line

IDENTITY = ("sampler", "pruner", "direction", "seed", "pruner_startup_trials", "pruner_warmup_epochs")


def default_study_name(config: DictConfig, arguments: list[str], settings: dict[str, Any],
                       searched: Sequence[str] = ()) -> str:
    """<model>-<dataset>-<what it searches>-<hash>, e.g. cnn-fashionmnist-lr,dropout,batch_size-1a2b3c4d (the
    model left out when the search chooses it): the same command names the same study, so running it again
    resumes it.

    The hash covers the overrides, the search space and the settings that shape the search; n_trials, n_jobs
    and the like stay out, so raising n_trials continues the same study.
    """
    choices = config.hydra.runtime.choices
    lines = sorted(arguments) + sorted(f"{k}={v}" for k, v in settings["params"].items())
    lines += [f"{kind}={json.dumps(settings[kind], sort_keys=True, default=str)}" for kind in ("conditional", "depth")
              if settings.get(kind)]  # only when set: the names of studies without them stay as they were
    lines += [f"{k}={setting_line(settings[k])}" for k in IDENTITY]
    text = "\n".join(lines)
    digest = hashlib.sha1(text.encode()).hexdigest()[:8]
    keys = short_name(",".join(dict.fromkeys(k.rsplit(".", 1)[-1] for k in searched)), limit=48)
    subject = [] if "model" in searched else [str(choices.get("model", "model"))]
    parts = [*subject, str(choices.get("dataset", "data")), *([keys] if keys else []), digest]
    return "-".join(parts).replace("/", "_")
