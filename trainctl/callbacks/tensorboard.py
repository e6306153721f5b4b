"""TensorBoard event files in the run directory: the config as text, per-epoch scalars with train and validation
overlaid (a custom-scalars layout), per-step loss and learning rate, test scalars, and an HParams session.

Two event files, because TensorBoard's purge on resume drops every tag of a file from one step number on: the
run directory's own file counts epochs, `<run>/steps/` counts optimizer steps, and each is purged at its own
counter when a run resumes, so every point keeps exactly one value.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from omegaconf import DictConfig, OmegaConf

from trainctl.engine.events import Callback, EpochEnd, StepEnd
from trainctl.engine.step import Trainer

log = logging.getLogger("trainctl")

STEPS_DIR = "steps"  # TensorBoard shows it as the run `<run>/steps`
HPARAM_GROUPS = ("model", "dataset", "optimizer", "scheduler", "loss", "device")


class TensorBoardLogger(Callback):
    def __init__(self) -> None:
        self.writer: Any = None  # epochs; other callbacks write their pictures here too
        self.step_writer: Any = None
        self.layout_written = False

    def on_fit_start(self, trainer: Trainer) -> None:
        from torch.utils.tensorboard import SummaryWriter

        resumed = trainer.resumed
        self.writer = SummaryWriter(log_dir=str(trainer.run_dir),
                                    purge_step=trainer.state.epoch + 1 if resumed else None)
        self.step_writer = SummaryWriter(log_dir=str(trainer.run_dir / STEPS_DIR),
                                         purge_step=trainer.state.step + 1 if resumed else None)
        if not resumed:
            text = "```yaml\n" + OmegaConf.to_yaml(trainer.cfg, resolve=True) + "```"
            self.writer.add_text("config", text, 0)

    def on_step_end(self, trainer: Trainer, step: StepEnd) -> None:
        # Values the engine has read at this log point anyway: no extra host sync.
        self.step_writer.add_scalar("step/train_loss", step.loss, step.step)
        self.step_writer.add_scalar("step/lr", step.lr, step.step)
        self.step_writer.add_scalar("step/train_samples_per_s", step.samples_per_s, step.step)

    def on_epoch_end(self, trainer: Trainer, end: EpochEnd) -> None:
        if not self.layout_written:
            self.writer.add_custom_scalars(train_val_layout(end.metrics))
            self.layout_written = True
        for name, value in {**end.metrics, "throughput/train_images_per_s": end.samples_per_s}.items():
            self.writer.add_scalar(name, value, end.epoch)
        self.writer.flush()
        self.step_writer.flush()

    def on_fit_end(self, trainer: Trainer, result: dict[str, Any]) -> None:
        for name, value in result.items():
            if name.startswith("test/") and isinstance(value, float):
                self.writer.add_scalar(name, value, result["best_epoch"])
        write_hparams(self.writer, hparams_of(trainer.cfg), result)
        self._close()

    def on_exception(self, trainer: Trainer, error: BaseException) -> None:
        self._close()  # interrupted or failed: what was logged so far reaches the disk

    def _close(self) -> None:
        for writer in (self.writer, self.step_writer):
            if writer is not None:
                writer.flush()
                writer.close()
        self.writer = self.step_writer = None


def train_val_layout(metrics: dict[str, float]) -> dict[str, Any]:
    """TensorBoard's custom-scalars layout: one chart per metric with its train and val curves overlaid, and
    the per-step loss beside them (tab CUSTOM SCALARS)."""
    names = sorted({k.split("/", 1)[1] for k in metrics if k.startswith("train/")}
                   & {k.split("/", 1)[1] for k in metrics if k.startswith("val/")})
    charts = {name: ["Multiline", [f"^train/{name}$", f"^val/{name}$"]] for name in names}
    return {"train vs val": charts,
            "per step": {"training loss": ["Multiline", ["^step/train_loss$"]],
                         "learning rate": ["Multiline", ["^step/lr$"]]}}


def hparams_of(cfg: DictConfig) -> dict[str, Any]:
    """What tells runs apart in the HParams tab: the chosen option of each config group and every override on
    the command line (a sweep's parameters among them), as TensorBoard's plain value types."""
    chosen: dict[str, Any] = {}
    overrides: list[str] = []
    from hydra.core.hydra_config import HydraConfig

    from trainctl.config.compose import raw_overrides

    if HydraConfig.initialized():
        hydra = HydraConfig.get()
        chosen = {g: c for g, c in hydra.runtime.choices.items()
                  if c is not None and g in (*HPARAM_GROUPS, "experiment", "sweep", "debug")}
        overrides = raw_overrides(hydra.overrides.task)
    else:  # a run started from Python: the groups' names are all there is
        from trainctl.config.targets import component_name

        chosen = {g: component_name(cfg[g]) for g in HPARAM_GROUPS if g in cfg}
    params: dict[str, Any] = {k: str(v) for k, v in chosen.items()}
    for override in overrides:
        key, _, value = override.partition("=")
        key = key.lstrip("+~")
        if key.startswith("hydra.") or key in params:
            continue
        params[key] = _plain(OmegaConf.select(cfg, key, default=value))
    params.setdefault("seed", int(cfg.seed))
    return params


def _plain(value: Any) -> Any:
    """A value as the HParams tab shows it: numbers and strings as they are, booleans as true/false (torch would
    make them 1.0/0.0), anything else as its text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, (int, float, str)) else str(value)


def write_hparams(writer: Any, params: dict[str, Any], result: dict[str, Any]) -> None:
    """An HParams session in the run's own event file: its hyperparameters and, as metrics, the final `val/*`
    (of the best epoch) and `test/*` values of metrics.json, under `hparams/` (the curves keep their names)."""
    from torch.utils.tensorboard.summary import hparams

    metrics = {f"hparams/{k}": v for k, v in result.items()
               if k.split("/")[0] in ("val", "test") and isinstance(v, float) and not math.isnan(v)}
    params = {**params, "status": str(result.get("status", "completed"))}
    experiment, session_start, session_end = hparams(params, metrics)
    for summary in (experiment, session_start, session_end):
        writer.file_writer.add_summary(summary)
    for name, value in metrics.items():
        writer.add_scalar(name, value, result.get("epochs", 0))
