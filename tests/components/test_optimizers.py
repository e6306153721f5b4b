"""Optimizers as trainctl builds them: fused kernels where they are safe."""

import torch
from omegaconf import OmegaConf
from torch import nn

from trainctl.components import build_optimizer
from trainctl.config.compose import compose


def sgd(*overrides):
    model = nn.Sequential(nn.Linear(50, 40), nn.BatchNorm1d(40), nn.Linear(40, 3))
    cfg = compose(["optimizer=sgd", "optimizer.lr=0.1", "optimizer.momentum=0.9", *overrides]).optimizer
    return model, build_optimizer(OmegaConf.create(OmegaConf.to_container(cfg)), model)


def set_grads(model, value):
    for p in model.parameters():
        p.grad = torch.full_like(p, value)


def test_a_first_step_the_gradient_scaler_skips_leaves_fused_sgd_exactly_as_new():
    """torch's fused SGD leaves its momentum buffers uninitialised when the first step is skipped (found_inf, as
    the fp16 gradient scaler signals an overflow): trainctl's start from zeros, which changes no update."""
    model, optimizer = sgd("optimizer.nesterov=true")
    twin, fresh = sgd("optimizer.nesterov=true")
    twin.load_state_dict(model.state_dict())
    assert optimizer.defaults["fused"] and fresh.defaults["fused"]
    set_grads(model, 1e4)
    optimizer.grad_scale, optimizer.found_inf = torch.ones(()), torch.ones(())  # what GradScaler.step passes
    optimizer.step()
    del optimizer.grad_scale, optimizer.found_inf
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), twin.parameters()))  # skipped
    buffers = [optimizer.state[p]["momentum_buffer"] for p in model.parameters()]
    assert all(torch.count_nonzero(b) == 0 for b in buffers)  # not whatever memory empty_like found
    for m, o in ((model, optimizer), (twin, fresh)):
        set_grads(m, 0.5)
        o.step()
        set_grads(m, -0.25)
        o.step()
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), twin.parameters()))


def test_sgd_with_dampening_is_not_fused():
    _, optimizer = sgd("optimizer.dampening=0.1")
    assert not optimizer.defaults["fused"]
    assert not optimizer.state  # and keeps torch's own first step


def test_sgd_is_plain_sgd_by_default_as_torch_makes_it():
    """optimizer=sgd is torch.optim.SGD's defaults (momentum 0), as the tutorials use it; presets that want
    momentum say so."""
    model = nn.Linear(2, 2)
    built = build_optimizer(compose(["optimizer=sgd"]).optimizer, model)
    torch_default = torch.optim.SGD(model.parameters(), lr=0.01)
    assert built.defaults["momentum"] == torch_default.defaults["momentum"] == 0
    for preset in ("fashionmnist_fast", "fashionmnist_cpu"):
        assert compose([f"experiment={preset}"]).optimizer.momentum == 0.9
