"""Device choice by name and index (`device=cuda:1`), checked against the devices present; simulated GPUs here,
real ones under `pytest --device cuda`."""

import pytest
import torch

from trainctl.config.compose import compose
from trainctl.config.overrides import expand_device_index
from trainctl.device import config_device, select_device
from trainctl.errors import UserError


def test_cuda_index_in_pytorch_spelling_becomes_the_config_key():
    assert expand_device_index(["device=cuda:1", "model=mlp"]) == ["device=cuda", "device.index=1", "model=mlp"]
    assert expand_device_index(["device=cuda:0,cuda:1"]) == ["device=cuda", "device.index=0,1"]
    assert expand_device_index(["device=cuda"]) == ["device=cuda"]
    with pytest.raises(UserError, match="must be a device number"):
        expand_device_index(["device=cuda:first"])
    cfg = compose(expand_device_index(["device=cuda:1"]))
    assert cfg.device.name == "cuda" and cfg.device.index == 1


@pytest.fixture
def two_gpus(monkeypatch):
    """A machine with two CUDA devices, as far as device choice can tell (set_device is recorded)."""
    chosen = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "set_device", chosen.append)
    return chosen


def test_a_present_gpu_is_chosen_and_made_current(two_gpus):
    assert select_device("cuda:1") == torch.device("cuda", 1)
    assert select_device("cuda", 0) == torch.device("cuda", 0)
    assert select_device("cuda") == torch.device("cuda")
    assert two_gpus == [1, 0]


def test_an_absent_gpu_index_names_the_ones_present(two_gpus):
    with pytest.raises(UserError, match=r"device=cuda:2 was asked for but this machine has 2 cuda device\(s\) "
                                        r"\(cuda:0, cuda:1\)"):
        select_device("cuda:2")
    with pytest.raises(UserError, match="disagree"):
        select_device("cuda:1", 0)
    with pytest.raises(UserError, match="takes no index"):
        config_device(compose(["device=auto", "device.index=1"]).device)


def test_the_index_is_validated_as_a_config_value():
    from trainctl.config.validate import validate

    with pytest.raises(UserError, match="device.index=-1"):
        validate(compose(["device.index=-1"]))


def test_cuda_warms_up_in_the_background_and_nothing_starts_elsewhere():
    import threading

    from trainctl.device import warm_up_in_background

    before = threading.active_count()
    assert warm_up_in_background(torch.device("cpu")) is None and threading.active_count() == before
    if torch.cuda.is_available():  # under --device cuda on a GPU machine
        thread = warm_up_in_background(torch.device("cuda"))
        thread.join(timeout=60)
        assert not thread.is_alive() and torch.cuda.is_initialized()
