"""Checkpoints written before layers had names (index keys: `0.weight`, `1.running_mean`, `8.weight`) still
load everywhere through the real CLI: eval, resume, init_from, explain, export, and `load_model` on an old
safetensors export. The old files are made from new ones by renaming their keys back to the indices, taken from
the fixture recorded from the code of that time (tests/components/fixtures/models_before_issue_12.json)."""

import json
import shutil
from pathlib import Path

import pytest
import torch

from conftest import NO_SYSTEM_DATA, run_cli, run_dirs
from trainctl.engine.checkpoint import load_checkpoint

pytestmark = pytest.mark.slow

FIXTURE = Path(__file__).parents[1] / "components" / "fixtures" / "models_before_issue_12.json"
OLD_STATE = json.loads(FIXTURE.read_text())["cnn batch_norm @ 1x28x28"]["state"]  # index key -> shape
RUN = ["model=cnn", "model.batch_norm=true", "trainer.ema_decay=0.9", "trainer.max_steps_per_epoch=2",
       "trainer.batch_size=16", "trainer.max_eval_batches=2", "tensorboard.images=false",
       "tensorboard.figures=false", "trainer.progress=false", NO_SYSTEM_DATA]


def to_index_names(weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The same tensors under the keys the code before layer names gave them, by position."""
    assert [list(t.shape) for t in weights.values()] == list(OLD_STATE.values())
    return dict(zip(OLD_STATE, weights.values()))


def make_old(run: Path) -> None:
    """Rewrite the run's checkpoints as trainctl wrote them before layers had names."""
    for path in (run / "checkpoints").glob("*.pt"):
        state = torch.load(path, weights_only=True)
        state["model"] = to_index_names(state["model"])
        if state.get("ema"):
            state["ema"] = to_index_names(state["ema"])
        torch.save(state, path)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, fake_fashion) -> tuple[Path, Path, Path]:
    """(cwd, a run of 1 of 2 epochs, the same run with index-named checkpoints)."""
    cwd = tmp_path_factory.mktemp("names")
    proc = run_cli(["train", *RUN, f"dataset.root={fake_fashion}", "trainer.epochs=1"], cwd)
    assert proc.returncode == 0, proc.stderr[-2000:]
    [new] = run_dirs(cwd)
    old = new.with_name(new.name + "-old")
    shutil.copytree(new, old)
    make_old(old)
    return cwd, new, old


def test_the_old_checkpoint_has_index_keys_and_the_new_one_names(runs):
    _, new, old = runs
    keys = list(load_checkpoint(new / "checkpoints" / "last.pt")["model"])
    assert keys[:4] == ["conv1.weight", "conv1.bias", "bn1.weight", "bn1.bias"]
    assert keys[-2:] == ["fc.weight", "fc.bias"]
    old_keys = list(load_checkpoint(old / "checkpoints" / "last.pt")["model"])
    assert old_keys[:4] == ["0.weight", "0.bias", "1.weight", "1.bias"] and old_keys[-2:] == ["8.weight", "8.bias"]


def quiet(proc) -> str:
    """The output, checked for nothing alarming: no warning, no traceback, no talk of missing tensors."""
    text = proc.stdout + proc.stderr
    assert proc.returncode == 0, text[-3000:]
    for word in ("WARNING", "Traceback", "missing", "unexpected", "do not fit"):
        assert word not in text, word
    return text


def test_eval_of_an_old_checkpoint_gives_the_same_metrics(runs):
    cwd, new, old = runs
    for run in (new, old):
        quiet(run_cli(["eval", f"ckpt={run}", "split=val"], cwd))
    evaluated = {run: json.loads((run / "eval_val.json").read_text()) for run in (new, old)}
    assert evaluated[old].pop("checkpoint") == str(old / "checkpoints" / "best.pt")
    assert evaluated[new].pop("checkpoint") == str(new / "checkpoints" / "best.pt")
    assert evaluated[old] == evaluated[new] and "val/acc" in evaluated[old]


def test_resuming_an_old_checkpoint_continues_exactly_and_saves_the_names(runs, tmp_path):
    cwd, new, old = runs
    ends = {}
    for name, source in (("new", new), ("old", old)):
        run = tmp_path / name
        shutil.copytree(source, run)
        quiet(run_cli(["train", f"resume={run}", "trainer.epochs=2"], cwd))
        ends[name] = load_checkpoint(run / "checkpoints" / "last.pt")
        assert ends[name]["epoch"] == 2
    assert list(ends["old"]["model"]) == list(ends["new"]["model"])  # written with today's names
    for key, value in ends["new"]["model"].items():  # an old checkpoint resumes bit-identically
        assert torch.equal(ends["old"]["model"][key], value), key
    for key, value in ends["new"]["ema"].items():
        assert torch.equal(ends["old"]["ema"][key], value), key
    assert (json.loads((tmp_path / "old" / "metrics.json").read_text())["test/acc"]
            == json.loads((tmp_path / "new" / "metrics.json").read_text())["test/acc"])


def test_init_from_an_old_checkpoint_loads_every_tensor(runs, fake_fashion):
    cwd, _, old = runs
    before = set(run_dirs(cwd))
    text = quiet(run_cli(["train", *RUN, f"dataset.root={fake_fashion}", "trainer.epochs=1", f"init_from={old}",
                          "model.freeze=[conv1,bn1]"], cwd))
    [tuned] = set(run_dirs(cwd)) - before
    assert "16 of 16 tensors" in " ".join(text.split())
    start = load_checkpoint(old / "checkpoints" / "best.pt")["ema"]
    after = load_checkpoint(tuned / "checkpoints" / "last.pt")["model"]
    assert torch.equal(after["conv1.weight"], start["0.weight"])  # loaded by position, then frozen


def test_explain_and_export_read_an_old_checkpoint(runs, tmp_path):
    cwd, new, old = runs
    text = quiet(run_cli(["explain", f"ckpt={old}", "method=kernels"], cwd))
    assert "kernels of layer 'conv1'" in text
    out = tmp_path / "old.safetensors"
    quiet(run_cli(["export", f"ckpt={old}", "format=safetensors", f"out={out}"], cwd))  # checked by reloading


def test_load_model_reads_an_old_safetensors_export(runs, tmp_path):
    from safetensors.torch import load_file, save_file

    from trainctl.deploy.weights import load_model

    cwd, new, _ = runs
    out = tmp_path / "model.safetensors"
    quiet(run_cli(["export", f"ckpt={new}", "format=safetensors", f"out={out}"], cwd))
    model = load_model(out)
    old = tmp_path / "old" / "model.safetensors"
    old.parent.mkdir()
    # as an export before layer names wrote it (the file keeps no order: the model's order gives the positions)
    save_file(to_index_names({k: v.contiguous() for k, v in model.state_dict().items()}), str(old))
    shutil.copy(out.with_suffix(".json"), old.with_suffix(".json"))
    assert "8.weight" in load_file(str(old)) and "fc.weight" not in load_file(str(old))
    x = torch.rand(3, 1, 28, 28)
    assert torch.equal(load_model(old)(x), model(x))
