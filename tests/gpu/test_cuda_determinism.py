"""Same seed on the same GPU gives bit-identical weights with trainer.deterministic=true, through the real CLI
(collected only with `pytest --device cuda`)."""

import pytest
import torch

from conftest import NO_SYSTEM_DATA, run_cli, run_dirs

pytestmark = [pytest.mark.cuda, pytest.mark.slow]


@pytest.mark.parametrize("extra", [[], ["trainer.precision=bf16", "trainer.channels_last=true"]],
                         ids=["fp32", "bf16 channels-last"])
def test_deterministic_runs_are_bit_identical_on_cuda(tmp_path, fake_fashion, extra):
    weights = []
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        (tmp_path / name).mkdir()
        proc = run_cli(["train", "model=cnn", "dataset=fashionmnist", f"dataset.root={fake_fashion}",
                        NO_SYSTEM_DATA, "device=cuda", "trainer.epochs=2", "trainer.batch_size=32",
                        "trainer.progress=false", "trainer.deterministic=true", f"seed={seed}", *extra],
                       tmp_path / name)
        assert proc.returncode == 0, proc.stderr[-3000:]
        weights.append(torch.load(run_dirs(tmp_path / name)[0] / "checkpoints" / "last.pt",
                                  weights_only=True)["model"])
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    assert not all(torch.equal(weights[0][k], weights[2][k]) for k in weights[0])


def test_a_layer_without_a_deterministic_kernel_is_named(tmp_path, fake_fashion):
    """vgg ends in adaptive average pooling, whose CUDA backward has no deterministic kernel: one clear message."""
    proc = run_cli(["train", "model=vgg", "model.layers=[8,M,16]", "dataset=fashionmnist",
                    f"dataset.root={fake_fashion}", NO_SYSTEM_DATA, "device=cuda", "trainer.epochs=1",
                    "trainer.progress=false", "trainer.deterministic=true"], tmp_path)
    if proc.returncode == 0:  # a newer torch may have gained the kernel: then the run must be reproducible
        return
    assert "trainer.deterministic=true" in proc.stderr and "deterministic=false" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
