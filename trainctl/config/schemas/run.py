"""Schema of the top level of the config: seed, objective, resume, init_from, and the trainer, checkpoint,
early-stopping, cross-validation, TensorBoard and callbacks sections."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from omegaconf import MISSING, OmegaConf

from trainctl.config.schemas.fields import spec
from trainctl.files import RUN_NAME, RUN_NAME_HELP


def _first_set(*values: Any) -> Any:
    return next((v for v in values if v is not None), None)


# Registered where the default that uses it lives: whatever loads a TrainConfig (a job process unpickling one
# included) imports this module first.
if not OmegaConf.has_resolver("trainctl_first_set"):
    OmegaConf.register_new_resolver("trainctl_first_set", _first_set)
# `objective` unless set: the old name `optimized_metric` (lightning-hydra-template's), else the dataset's own
DEFAULT_OBJECTIVE = "${trainctl_first_set:${optimized_metric},${oc.select:dataset.default_objective,val/acc}}"


@dataclass
class TrainerConfig:
    epochs: int = spec(5, help="passes over the training split", ge=1, le=100_000)  # more is a typo, not a plan
    batch_size: int = spec(64, help="training batch size", ge=1)
    eval_batch_size: int = spec(1024, help="batch size for validation and test", ge=1)
    log_every_n_steps: int = spec(50, help="steps between progress/loss reads (each read is a host sync)", ge=1)
    val_every_n_steps: Optional[int] = spec(
        None, help="also validate every N optimizer steps (on max_eval_batches batches if set) and log val/* at those "
                   "steps in <run>/steps; for watching, never for checkpoints or schedules (null: at epoch ends only)",
        ge=1)
    progress: bool = spec(True, help="progress: a live bar on a terminal, a log line per log interval elsewhere")
    max_steps_per_epoch: Optional[int] = spec(None, help="cap on steps per epoch (smoke runs)", ge=1)
    max_eval_batches: Optional[int] = spec(
        None, help="cap on validation and test batches (null: all); metrics.json says how many samples", ge=1)
    overfit_batches: Optional[int] = spec(
        None, help="train only the same first N batches every epoch (a check that the model can learn)", ge=1)
    grad_accum_steps: int = spec(1, help="batches whose gradients add up before one optimizer step", ge=1)
    gradient_clip_val: Optional[float] = spec(None, help="clip gradients at this norm or value (null: off)", gt=0.0)
    gradient_clip_algorithm: str = spec("norm", help="clip the global norm or each value", choices=["norm", "value"])
    precision: str = spec("32", help="32, bf16 (autocast), or fp16 (autocast with a grad scaler)",
                          choices=["32", "bf16", "fp16"])
    compile: bool = spec(False, help="torch.compile the model (pays off on long runs and GPUs)")
    cuda_graphs: Any = spec("auto", help="CUDA only: capture the whole training step once as a CUDA graph and "
                                         "replay it (one launch a step); auto: where the step allows it, else "
                                         "eagerly, saying why; with compile: torch.compile's reduce-overhead mode",
                            forms=["bool", "auto"])
    sync_debug: str = spec("off", help="CUDA only: warn or error on any host sync inside training steps "
                                       "(an .item() in a model or loss)", choices=["off", "warn", "error"])
    channels_last: bool = spec(False, help="channels-last memory format for image models")
    ema_decay: Optional[float] = spec(None, help="evaluate an exponential moving average of the weights",
                                      gt=0.0, lt=1.0)
    deterministic: bool = spec(False, help="deterministic algorithms only (slower; errors on ops without one)")
    detect_anomaly: bool = spec(False, help="autograd anomaly detection, to find where a NaN starts (slow)")
    profile: bool = spec(False, help="profile a few training steps into <run>/profile/ (open in Perfetto)")
    profile_steps: int = spec(5, help="training steps the profiler records (after one warm-up step)", ge=1, le=100)
    devices: Any = spec(1, help="processes training together (data parallel, one GPU each; gloo on CPU); auto: "
                                "every visible GPU (1 without one); trainer.batch_size stays the global batch",
                        forms=["number", "auto"], ge=1)
    sync_batchnorm: bool = spec(False, help="with devices > 1: batch norm statistics over the global batch "
                                            "(SyncBatchNorm) instead of each process's part")
    dist_timeout_s: int = spec(300, help="seconds a process waits for the others in a collective operation before "
                                         "the run stops with an error (a process died)", ge=1)


@dataclass
class TensorBoardConfig:
    """What a run shows in TensorBoard beyond its scalars; the cheap ones are on by default."""

    images: bool = spec(True, help="a validation batch with true/predicted labels each epoch, and the test "
                                   "images the best model gets most wrong at the end")
    num_images: int = spec(12, help="images in each of those grids, three a row", ge=1, le=256)
    figures: bool = spec(True, help="confusion matrix and precision-recall curves on the test split "
                                    "(regression: predictions against targets; 2 features: decision regions)")
    figures_every_n_epochs: Optional[int] = spec(
        None, help="also draw the small models' figures while training, every N epochs: regression predictions "
                   "against targets (validation), decision regions of 2-feature classifiers (null: at the end only)",
        ge=1)
    histograms: bool = spec(False, help="weight and gradient histograms and the gradient norm each epoch (costs)")
    graph: bool = spec(False, help="the model graph, traced once at the start")
    projector: bool = spec(False, help="penultimate-layer features of test samples in the embedding projector")
    projector_samples: int = spec(512, help="test samples the projector shows", ge=1, le=10000)
    projector_pixels: bool = spec(False, help="with projector: also those samples' inputs as stored (pixels in [0, 1], "
                                              "flattened) as a second embedding, test_pixels: the data before any "
                                              "model, as the TensorBoard tutorial projects it")


@dataclass
class EarlyStoppingConfig:
    patience: Optional[int] = spec(None, help="epochs without improvement before stopping (null: off)", ge=1)
    monitor: Optional[str] = spec(None, help="metric watched (null: the objective)")
    mode: str = spec("auto", help="min, max, or auto (from the metric name)", choices=["auto", "min", "max"])
    min_delta: float = spec(0.0, help="smallest change that counts as an improvement", ge=0.0)
    stop_at: Optional[float] = spec(None, help="stop once the monitored metric reaches this value (at least it for "
                                               "max, at most for min), e.g. 0.98 for val/acc (null: off)")


@dataclass
class CrossValidationConfig:
    folds: int = spec(1, help="k-fold cross-validation over train+val (1: off)", ge=1)


@dataclass
class CheckpointConfig:
    monitor: Optional[str] = spec(None, help="metric that decides best.pt (null: the objective, or its first)")
    mode: str = spec("auto", help="min, max, or auto (from the metric name)", choices=["auto", "min", "max"])
    every_n_steps: Optional[int] = spec(None, help="also save last.pt every n optimizer steps, mid-epoch", ge=1)


@dataclass
class TrainConfig:
    name: Optional[str] = spec(None, help="a short name for the run: its directory is runs/<date>_<time>_<name> "
                                          "(null: <model>-<dataset>_<random>)",
                               pattern=RUN_NAME, pattern_help=RUN_NAME_HELP)
    seed: int = spec(0, help="seeds weights, split and shuffle", ge=0, le=2**63 - 1)
    objective: Any = spec(DEFAULT_OBJECTIVE,
                          help="metric(s) a sweep optimises (a list for multi-objective); default val/acc, val/loss for regression")
    optimized_metric: Optional[str] = spec(None, help="lightning-hydra-template's name for objective, accepted "
                                                      "with a notice: write objective")
    resume: Optional[str] = spec(None, help="run directory or checkpoint to continue")
    resume_allow_changes: bool = spec(False, help="allow a resumed run's model/dataset config to differ")
    init_from: Optional[str] = spec(None, help="a new run starting from this checkpoint's (or run dir's best.pt) "
                                               "weights only: fresh optimizer, schedule and counters")
    init_from_strict: bool = spec(True, help="refuse init_from weights that do not fit; false: load those that "
                                             "fit and start the others afresh (a new head)")
    trust_targets: bool = spec(False, help="allow _target_ classes named by a resumed run's saved overrides")
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    early_stopping: EarlyStoppingConfig = field(default_factory=EarlyStoppingConfig)
    cv: CrossValidationConfig = field(default_factory=CrossValidationConfig)
    tensorboard: TensorBoardConfig = field(default_factory=TensorBoardConfig)
    model: Any = MISSING
    dataset: Any = MISSING
    optimizer: Any = MISSING
    scheduler: Any = MISSING
    loss: Any = MISSING
    device: Any = MISSING
    # name → {_target_: class, ...args}: a user's own callbacks (null removes one, e.g. an installed plugin's)
    callbacks: Any = spec({}, help="your callbacks by name: {_target_: pkg.MyCallback, ...}; null drops one")


