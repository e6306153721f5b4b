"""Exact resume of a convnet after SIGKILL on a GPU, through the real CLI (collected only with
`pytest --device cuda`). The MLP resume tests of tests/engine/test_resume.py run on the GPU too under
`--device cuda`; this one adds convolutions, bf16 and channels-last, where cuDNN's algorithm choice matters."""

import json
import signal

import pytest
import torch

from conftest import NO_SYSTEM_DATA, run_cli, run_dirs

pytestmark = [pytest.mark.cuda, pytest.mark.slow]


def test_convnet_resumes_bit_identically_after_sigkill_on_cuda(tmp_path, fake_fashion):
    args = ["train", "model=cnn", "dataset=fashionmnist", f"dataset.root={fake_fashion}", NO_SYSTEM_DATA,
            "device=cuda", "trainer.epochs=3", "trainer.batch_size=32", "trainer.progress=false",
            "trainer.deterministic=true", "trainer.precision=bf16", "trainer.channels_last=true",
            "checkpoint.every_n_steps=5"]
    (tmp_path / "whole").mkdir()
    (tmp_path / "killed").mkdir()
    assert run_cli(args, tmp_path / "whole").returncode == 0
    killed = run_cli(args, tmp_path / "killed", TRAINCTL_FAULTS="kill_at_step=23")  # mid-epoch 2
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    [run] = run_dirs(tmp_path / "killed")
    resumed = run_cli(["train", f"resume={run}", "device=cuda"], tmp_path / "killed")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    [whole] = run_dirs(tmp_path / "whole")
    a, b = (torch.load(r / "checkpoints" / "last.pt", weights_only=True) for r in (whole, run))
    assert a["step"] == b["step"]
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    metrics = [json.loads((r / "metrics.json").read_text()) for r in (whole, run)]
    assert metrics[0]["test/acc"] == metrics[1]["test/acc"] and metrics[0]["test/loss"] == metrics[1]["test/loss"]
