"""Typed schemas of every config-group option (no torch here: `--help` paths import this).

Each YAML option (`conf/model/cnn.yaml`) starts from its schema (`/schema/model/cnn`), so Hydra rejects unknown
keys and wrong types while composing; field metadata carries the ranges `trainctl.config.validate` checks.
"""

from trainctl.config.schemas.datasets import (  # noqa: F401  (re-exported)
    FileDatasetConfig, BlobsConfig, ImageFolderConfig, SineConfig,
)
from trainctl.config.schemas.fields import spec  # noqa: F401  (re-exported)
from trainctl.config.schemas.losses import (  # noqa: F401  (re-exported)
    CrossEntropyConfig, NLLConfig, FocalConfig, MSEConfig, L1Config, SmoothL1Config, BCEWithLogitsConfig,
)
from trainctl.config.schemas.device import DeviceConfig  # noqa: F401  (re-exported)
from trainctl.config.schemas.models import (  # noqa: F401  (re-exported)
    MLPConfig, CNNConfig, VGGConfig, ResNetConfig, TorchvisionConfig, RNNConfig, ElmanRNNConfig, LeNetConfig,
    Conv1DConfig, VGG_PRESETS, ACTIVATIONS,
)
from trainctl.config.schemas.optim import (  # noqa: F401  (re-exported)
    SGDConfig, AdamConfig, AdamWConfig, NAdamConfig, RMSpropConfig, AdagradConfig, NoSchedulerConfig, StepLRConfig, CosineConfig, PlateauConfig, MultiStepConfig, ExponentialConfig, LambdaConfig, OneCycleConfig,
    CyclicConfig,
)

# One schema per option; the option's YAML file pulls it in with `- /schema/<group>/<name>@_here_`.
SCHEMAS: dict[str, dict[str, type]] = {
    "model": {"mlp": MLPConfig, "cnn": CNNConfig, "lenet": LeNetConfig, "vgg": VGGConfig, "resnet": ResNetConfig,
              "torchvision": TorchvisionConfig, "rnn": ElmanRNNConfig, "lstm": RNNConfig, "gru": RNNConfig,
              "cnn1d": Conv1DConfig},
    "dataset": {"fashionmnist": FileDatasetConfig, "mnist": FileDatasetConfig, "blobs": BlobsConfig,
                "cifar10": FileDatasetConfig, "imagefolder": ImageFolderConfig, "sine": SineConfig},
    "optimizer": {"sgd": SGDConfig, "adam": AdamConfig, "adamw": AdamWConfig, "nadam": NAdamConfig,
                  "rmsprop": RMSpropConfig, "adagrad": AdagradConfig},
    "scheduler": {"none": NoSchedulerConfig, "step": StepLRConfig, "multistep": MultiStepConfig,
                  "exponential": ExponentialConfig, "cosine": CosineConfig, "plateau": PlateauConfig,
                  "lambda": LambdaConfig, "onecycle": OneCycleConfig, "cyclic": CyclicConfig},
    "loss": {"cross_entropy": CrossEntropyConfig, "nll": NLLConfig, "focal": FocalConfig, "mse": MSEConfig,
             "l1": L1Config, "smooth_l1": SmoothL1Config, "bce_with_logits": BCEWithLogitsConfig},
    "device": {"auto": DeviceConfig, "cpu": DeviceConfig, "cuda": DeviceConfig, "mps": DeviceConfig},
}
