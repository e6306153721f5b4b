"""Schemas of the `optimizer` and `scheduler` groups."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from trainctl.config.schemas.fields import spec


# ---- optimizers ---------------------------------------------------------------------------------------------
@dataclass
class SGDConfig:
    name: str = "sgd"
    no_decay_bias_norm: bool = spec(False, help="no weight decay on biases and normalisation parameters")
    lr: float = spec(0.01, help="learning rate", gt=0.0)
    # 0, as torch.optim.SGD's: optimizer=sgd is the tutorials' plain SGD; presets that want momentum set it
    momentum: float = spec(0.0, help="momentum factor (0: plain SGD, as torch.optim.SGD)", ge=0.0, lt=1.0)
    nesterov: bool = spec(False, help="Nesterov momentum (needs momentum > 0)")
    dampening: float = spec(0.0, help="momentum dampening", ge=0.0, le=1.0)
    weight_decay: float = spec(0.0, help="L2 penalty", ge=0.0)


@dataclass
class AdamConfig:
    name: str = "adam"
    no_decay_bias_norm: bool = spec(False, help="no weight decay on biases and normalisation parameters")
    lr: float = spec(1e-3, help="learning rate", gt=0.0)
    betas: list[float] = spec([0.9, 0.999], help="running-average coefficients", each_ge=0.0, each_lt=1.0,
                              length=2)
    eps: float = spec(1e-8, help="denominator term for stability", gt=0.0)
    weight_decay: float = spec(0.0, help="L2 penalty", ge=0.0)


@dataclass
class AdamWConfig(AdamConfig):
    name: str = "adamw"
    weight_decay: float = spec(0.01, help="decoupled weight decay", ge=0.0)


@dataclass
class NAdamConfig(AdamConfig):
    name: str = "nadam"
    lr: float = spec(2e-3, help="learning rate", gt=0.0)


@dataclass
class RMSpropConfig:
    name: str = "rmsprop"
    no_decay_bias_norm: bool = spec(False, help="no weight decay on biases and normalisation parameters")
    lr: float = spec(1e-3, help="learning rate", gt=0.0)
    alpha: float = spec(0.99, help="smoothing constant", gt=0.0, lt=1.0)
    eps: float = spec(1e-8, help="denominator term for stability", gt=0.0)
    momentum: float = spec(0.0, help="momentum factor", ge=0.0, lt=1.0)
    centered: bool = spec(False, help="normalise by the estimated variance")
    weight_decay: float = spec(0.0, help="L2 penalty", ge=0.0)


@dataclass
class AdagradConfig:
    name: str = "adagrad"
    no_decay_bias_norm: bool = spec(False, help="no weight decay on biases and normalisation parameters")
    lr: float = spec(1e-2, help="learning rate", gt=0.0)
    lr_decay: float = spec(0.0, help="learning-rate decay", ge=0.0)
    eps: float = spec(1e-10, help="denominator term for stability", gt=0.0)
    weight_decay: float = spec(0.0, help="L2 penalty", ge=0.0)


# ---- schedulers ---------------------------------------------------------------------------------------------
# Every schedule takes a linear warm-up (`warmup_steps` optimizer steps from warmup_start_factor × lr).
@dataclass
class NoSchedulerConfig:
    name: str = "none"
    warmup_steps: int = spec(0, help="linear warm-up over this many optimizer steps (0: none)", ge=0)
    warmup_start_factor: float = spec(0.1, help="warm-up starts at this fraction of the lr", gt=0.0, le=1.0)


@dataclass
class StepLRConfig(NoSchedulerConfig):
    name: str = "step"
    step_size: int = spec(1, help="epochs between decays", ge=1)
    gamma: float = spec(0.1, help="decay factor", gt=0.0)


@dataclass
class CosineConfig(NoSchedulerConfig):
    name: str = "cosine"
    t_max: Optional[int] = spec(None, help="epochs of one half cosine (default: trainer.epochs)", ge=1)
    eta_min: float = spec(0.0, help="final learning rate", ge=0.0)


@dataclass
class PlateauConfig(NoSchedulerConfig):
    name: str = "plateau"
    monitor: str = spec("val/loss", help="metric watched for a plateau")
    mode: str = spec("auto", help="min, max, or auto (from the metric name)", choices=["auto", "min", "max"])
    factor: float = spec(0.1, help="decay factor", gt=0.0, lt=1.0)
    patience: int = spec(2, help="epochs without improvement before a decay", ge=0)
    threshold: float = spec(1e-4, help="improvement that counts (a fraction of the best, or an amount: "
                                       "threshold_mode)", ge=0.0)
    threshold_mode: str = spec("rel", help="rel: improve by threshold × the best value; abs: by threshold",
                               choices=["rel", "abs"])
    cooldown: int = spec(0, help="epochs to wait after a decay before counting epochs without improvement", ge=0)
    min_lr: float = spec(0.0, help="lower bound on the learning rate", ge=0.0)
    eps: float = spec(1e-8, help="a decay smaller than this is skipped", ge=0.0)


@dataclass
class MultiStepConfig(NoSchedulerConfig):
    name: str = "multistep"
    milestones: list[int] = spec([30, 60], help="epochs at which the lr is multiplied by gamma", each_ge=1)
    gamma: float = spec(0.1, help="decay factor", gt=0.0)


@dataclass
class ExponentialConfig(NoSchedulerConfig):
    name: str = "exponential"
    gamma: float = spec(0.9, help="decay factor per epoch", gt=0.0)


@dataclass
class LambdaConfig(NoSchedulerConfig):
    name: str = "lambda"
    formula: str = spec("0.95 ** epoch", help="lr factor as a formula in `epoch` (arithmetic and math functions)")


@dataclass
class OneCycleConfig(NoSchedulerConfig):
    name: str = "onecycle"
    max_lr: Optional[float] = spec(None, help="peak lr (default: 10 × optimizer.lr)", gt=0.0)
    pct_start: float = spec(0.3, help="share of the run spent rising", gt=0.0, lt=1.0)
    anneal_strategy: str = spec("cos", help="shape of the fall", choices=["cos", "linear"])
    div_factor: float = spec(25.0, help="initial lr = max_lr / div_factor", gt=0.0)
    final_div_factor: float = spec(1e4, help="final lr = initial lr / final_div_factor", gt=0.0)
    cycle_momentum: bool = spec(True, help="the momentum (or Adam's beta1) falls as the lr rises, where the "
                                           "optimizer has one; false: the lr cycles alone (a CUDA graph can then "
                                           "capture the optimizer step)")


@dataclass
class CyclicConfig(NoSchedulerConfig):
    """Cyclical learning rates (Smith 2017): the lr runs between base_lr and max_lr, stepped every batch."""

    name: str = "cyclic"
    base_lr: Optional[float] = spec(None, help="lowest lr of a cycle (default: optimizer.lr)", gt=0.0)
    max_lr: Optional[float] = spec(None, help="highest lr of a cycle (default: max_factor × base_lr)", gt=0.0)
    max_factor: float = spec(4.0, help="max_lr as a multiple of base_lr when max_lr is null", gt=1.0)
    step_size_up: float = spec(2.0, help="length of the rising half-cycle, in `unit`", gt=0.0)
    step_size_down: Optional[float] = spec(None, help="length of the falling half-cycle (default: step_size_up)",
                                           gt=0.0)
    unit: str = spec("epochs", help="what step_size_up/down count: epochs or optimizer steps",
                     choices=["epochs", "steps"])
    mode: str = spec("triangular", help="triangular: constant amplitude; triangular2: halved every cycle; "
                                        "exp_range: times gamma every step", choices=["triangular", "triangular2",
                                                                                      "exp_range"])
    gamma: float = spec(1.0, help="exp_range only: amplitude factor per optimizer step (e.g. 0.9999)", gt=0.0,
                        le=1.0)
    cycle_momentum: Optional[bool] = spec(None, help="cycle the momentum (adam's beta1) against the lr; null: when "
                                                     "the optimizer has betas or momentum > 0")
    base_momentum: float = spec(0.8, help="momentum at the lr peak", ge=0.0, lt=1.0)
    max_momentum: float = spec(0.9, help="momentum at the lr trough", ge=0.0, lt=1.0)
