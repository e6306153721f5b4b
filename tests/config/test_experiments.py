"""Every experiment preset composes, validates and builds its model; the CPU recipe is the model its README
figures were measured with."""

from pathlib import Path

import pytest
import torch
from torch import nn

from trainctl.components import build_model
from trainctl.config.compose import compose
from trainctl.config.validate import validate
from trainctl.data.splits import DataSpec

from conftest import run_cli

EXPERIMENTS = sorted(p.stem for p in (Path(__file__).parents[2] / "conf" / "experiment").glob("*.yaml"))
CLOTHES = DataSpec((1, 28, 28), 10)


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_experiment_composes_validates_and_builds(name):
    cfg = compose([f"experiment={name}"])
    validate(cfg)
    spec = CLOTHES if cfg.dataset.name == "fashionmnist" else DataSpec((2,), 2)
    assert build_model(cfg.model, spec)(torch.zeros(2, *spec.input_shape)).shape == (2, spec.num_classes)


def test_the_cpu_recipe_is_the_measured_model():
    cfg = compose(["experiment=fashionmnist_cpu"])
    model = build_model(cfg.model, CLOTHES)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert [c.out_channels for c in convs] == [32, 64, 128] and convs[0].stride == (2, 2)
    assert [(m.in_features, m.out_features) for m in linears] == [(128 * 3 * 3, 128), (128, 10)]
    assert (cfg.trainer.epochs, cfg.trainer.batch_size, cfg.trainer.channels_last) == (12, 128, True)
    assert sum(p.numel() for p in model.parameters()) == 241_994  # the runs measured logged "241,994 params"


def test_the_cpu_recipe_through_the_cli(tmp_path):
    proc = run_cli(["train", "experiment=fashionmnist_cpu", "--cfg", "job"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "hidden:\n  - 128" in proc.stdout and "onecycle" in proc.stdout
