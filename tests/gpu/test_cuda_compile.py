"""torch.compile and CUDA graphs on a GPU, through the real CLI (collected only with `pytest --device cuda`)."""

import json

import pytest

from conftest import NO_SYSTEM_DATA, run_cli, run_dirs

pytestmark = [pytest.mark.cuda, pytest.mark.slow]

ROWS = {
    "compile": ["trainer.compile=true"],
    "cuda graphs": ["trainer.cuda_graphs=true"],
    "cuda graphs, bf16, channels-last, ema": ["trainer.cuda_graphs=true", "trainer.precision=bf16",
                                              "trainer.channels_last=true", "trainer.ema_decay=0.9"],
}


@pytest.mark.parametrize("extra", ROWS.values(), ids=ROWS.keys())
def test_compiled_training_on_cuda(tmp_path, fake_fashion, extra):
    # 600 training samples minus validation at batch 64: the last batch is short, so a second graph is needed.
    proc = run_cli(["train", "model=cnn", "dataset=fashionmnist", f"dataset.root={fake_fashion}", NO_SYSTEM_DATA,
                    "device=cuda", "trainer.epochs=3", "trainer.progress=false", *extra], tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    [run] = run_dirs(tmp_path)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test/acc"] >= 0.6, metrics
    assert "CUDA graphs" not in proc.stderr  # no "needs a CUDA device" warning on a GPU
