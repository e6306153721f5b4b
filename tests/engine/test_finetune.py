"""Fine-tuning: `init_from` (a new run from another run's weights, a new head with `init_from_strict=false`)
and `model.freeze` (frozen parameters stay as loaded and are left out of the optimizer), on the cnn and on a
torchvision ResNet, through the real CLI; the error cases in-process."""

import re
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from conftest import NO_SYSTEM_DATA, make_image_folder, run_cli, run_dirs
from trainctl.components import build_model
from trainctl.config.compose import compose
from trainctl.data.splits import DataSpec
from trainctl.engine.checkpoint import load_checkpoint, save_checkpoint
from trainctl.engine.finetune import freeze, init_source, load_initial_weights
from trainctl.errors import UserError

SHORT = ["trainer.epochs=1", "trainer.max_steps_per_epoch=2", "trainer.batch_size=8", "trainer.max_eval_batches=1",
         "tensorboard.images=false", "tensorboard.figures=false", "trainer.progress=false"]


def folder(root: Path, classes: tuple[str, ...], size: int, grey: bool) -> list[str]:
    """Overrides for an image folder of `classes` (one channel when `grey`, as the cnn's source run had)."""
    make_image_folder(root, classes=classes, size=size)
    channel = ["dataset.grayscale=true", "dataset.mean=[0.5]", "dataset.std=[0.5]"] if grey else []
    return ["dataset=imagefolder", f"dataset.root={root}", f"dataset.image_size=[{size},{size}]", *channel]


def trainable(run: Path) -> int:
    return int(re.search(r"^Trainable params: ([\d,]+)$", (run / "model.txt").read_text(), re.M)[1].replace(",", ""))


def train(cwd: Path, *args: str) -> tuple[Path, str]:
    before = set(run_dirs(cwd))
    proc = run_cli(["train", *SHORT, *args], cwd)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    [run] = set(run_dirs(cwd)) - before
    return run, (run / "train.log").read_text()


# ---- the cnn: Fashion-MNIST-format source, a three-class grey image folder as the new task ------------------
@pytest.fixture(scope="module")
def cnn_runs(tmp_path_factory, fake_fashion):
    cwd = tmp_path_factory.mktemp("cnn")
    source, _ = train(cwd, f"dataset.root={fake_fashion}", NO_SYSTEM_DATA)
    target = folder(cwd / "shapes", ("circle", "square", "stripe"), 28, grey=True)
    # indices as older versions named the layers (conv1, conv2): still accepted
    tuned, log = train(cwd, f"init_from={source}", "init_from_strict=false", "model.freeze=[0,3]", *target)
    return source, tuned, log


def test_a_new_head_starts_afresh_and_frozen_layers_keep_the_loaded_weights(cnn_runs):
    source, tuned, log = cnn_runs
    before = load_checkpoint(source / "checkpoints" / "best.pt")["model"]
    after = load_checkpoint(tuned / "checkpoints" / "last.pt")
    text = " ".join(log.split())
    assert f"init_from: loaded the weights of {source / 'checkpoints' / 'best.pt'}" in text
    assert "4 of 6 tensors" in text and "fc.weight [10, 1568] -> [3, 1568]" in text
    assert "froze 4 tensors under conv1, conv2" in text
    for key in ("conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias"):  # loaded, then never trained
        assert torch.equal(after["model"][key], before[key]), key
    assert after["model"]["fc.weight"].shape == (3, 1568)
    # a fresh start: its own counters, and an optimizer that holds only the head's two tensors
    assert (after["epoch"], after["step"]) == (1, 2)
    assert [len(g["params"]) for g in after["optimizer"]["param_groups"]] == [2]
    assert len(after["optimizer"]["state"]) == 2


def test_the_summary_counts_only_the_unfrozen_head_as_trainable(cnn_runs):
    _, tuned, log = cnn_runs
    assert trainable(tuned) == 3 * 1568 + 3
    assert "4,707 trainable" in " ".join(log.split())


def test_a_head_that_does_not_fit_is_one_error_by_default(cnn_runs):
    source, _, _ = cnn_runs
    model = build_model(compose(["model=cnn"]).model, DataSpec((1, 28, 28), 3))
    with pytest.raises(UserError, match=re.escape(
            "shape differs (checkpoint -> model): fc.weight [10, 1568] -> [3, 1568], fc.bias [10] -> [3]. "
            "Add init_from_strict=false")):
        load_initial_weights(model, source / "checkpoints" / "best.pt", torch.device("cpu"))


# ---- a torchvision ResNet with a new head: three RGB classes, then two --------------------------------------
BACKBONE = "model.freeze=[conv1,bn1,layer1,layer2,layer3,layer4]"


@pytest.fixture(scope="module")
def resnet_runs(tmp_path_factory):
    """The source is a ResNet for three classes saved as a run's best.pt would be (training it first would only
    cost time: what is tested is the start from it)."""
    cwd = tmp_path_factory.mktemp("resnet")
    source = cwd / "source"
    torch.manual_seed(1)
    model = build_model(compose(["model=resnet"]).model, DataSpec((3, 16, 16), 3))
    save_checkpoint(source / "checkpoints" / "best.pt", {"model": model.state_dict(), "epoch": 4})
    tuned, log = train(cwd, "model=resnet", f"init_from={source}", "init_from_strict=false", BACKBONE,
                       *folder(cwd / "two", ("yes", "no"), 16, grey=False))
    return source, tuned, log


def test_a_resnet_gets_a_new_head_for_two_classes_on_its_frozen_backbone(resnet_runs):
    source, tuned, log = resnet_runs
    before = load_checkpoint(source / "checkpoints" / "best.pt")["model"]
    after = load_checkpoint(tuned / "checkpoints" / "last.pt")["model"]
    text = " ".join(log.split())
    assert f"loaded the weights of {source / 'checkpoints' / 'best.pt'} (epoch 4): 120 of 122 tensors" in text
    assert "fc.weight [3, 512] -> [2, 512], fc.bias [3] -> [2]" in text
    for key in ("conv1.weight", "layer1.0.conv1.weight", "layer4.1.conv2.weight", "layer4.1.bn2.weight"):
        assert torch.equal(after[key], before[key]), key
    assert after["fc.weight"].shape == (2, 512)
    assert trainable(tuned) == 2 * 512 + 2


# ---- in-process: the errors and the matching rule -------------------------------------------------------------
def small_cnn() -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 26 * 26, 10))


def test_an_unknown_prefix_is_an_error_listing_the_top_level_modules():
    with pytest.raises(UserError, match=r"model.freeze: 'conv' names no module with parameters in model 'cnn'\. "
                                        r"Its top-level modules are: 0 \(Conv2d\), 3 \(Linear\)"):
        freeze(small_cnn(), ["conv"], "cnn")
    with pytest.raises(UserError, match="'1' names no module with parameters"):  # the ReLU has none
        freeze(small_cnn(), ["1"], "cnn")


def test_freezing_everything_is_an_error():
    with pytest.raises(UserError, match=r"freezes every parameter of model 'cnn', which leaves nothing to train"):
        freeze(small_cnn(), ["0", "3"], "cnn")


def test_a_prefix_matches_whole_dotted_names():
    model = nn.Module()
    model.layer1, model.layer10 = nn.Linear(2, 2), nn.Linear(2, 2)
    assert freeze(model, ["layer1."]) == 6  # a trailing dot is the same prefix
    assert not model.layer1.weight.requires_grad and model.layer10.weight.requires_grad


def test_resume_and_init_from_together_are_refused(tmp_path):
    cfg = OmegaConf.create({"resume": "runs/a", "init_from": "runs/b"})
    with pytest.raises(UserError, match=r"resume=runs/a and init_from=runs/b cannot be used together"):
        init_source(cfg)
    with pytest.raises(UserError, match=r"init_from=.*nothing: no checkpoint at"):
        init_source(OmegaConf.create({"resume": None, "init_from": str(tmp_path / "nothing")}))


def test_missing_and_unexpected_tensors_are_listed(tmp_path):
    source = nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 2))
    path = tmp_path / "best.pt"
    torch.save({"format_version": 1, "model": source.state_dict()}, path)
    target = nn.Sequential(nn.Linear(3, 3), nn.ReLU(), nn.Linear(3, 2))  # the head moved from 1 to 2
    with pytest.raises(UserError, match=r"not in the checkpoint: 2.weight, 2.bias; not in the model: 1.weight, "
                                        r"1.bias\. Add init_from_strict=false"):
        load_initial_weights(target, path, torch.device("cpu"))
    load_initial_weights(target, path, torch.device("cpu"), strict=False)
    assert torch.equal(target[0].weight, source[0].weight)
    with pytest.raises(UserError, match="none of its 4 tensors fits the model"):
        load_initial_weights(nn.Linear(5, 5), path, torch.device("cpu"), strict=False)


def test_resuming_a_fine_tuned_run_does_not_replay_init_from(tmp_path):
    from trainctl.engine.resume import resume_overrides

    run = tmp_path / "tuned"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "last.pt").write_bytes(b"")
    (run / ".hydra").mkdir()
    (run / ".hydra" / "overrides.yaml").write_text("- init_from=runs/source\n- model.freeze=[0,3]\n")
    replayed = resume_overrides([f"resume={run}"])
    assert "model.freeze=[0,3]" in replayed and not any(o.startswith("init_from=") for o in replayed)



# ---- layer names, and the indices older versions used ---------------------------------------------------------
@pytest.mark.parametrize("overrides, names, indices", [
    (["model=cnn"], ["conv1"], ["0"]),
    (["model=lenet"], ["conv2", "fc1"], ["3", "7"]),
    (["model=vgg", "model.layers=[4,M,8]"], ["conv2", "head.fc1"], ["4", "7.2"]),
    (["model=cnn1d"], ["features.conv1"], ["features.0"]),
])
def test_a_layer_is_frozen_by_its_name_or_by_its_old_index(overrides, names, indices):
    def frozen(prefixes: list[str]) -> list[str]:
        model = build_model(compose(overrides).model, DataSpec((1, 28, 28), 10))
        freeze(model, prefixes, "m")
        return [name for name, p in model.named_parameters() if not p.requires_grad]

    by_name = frozen(names)
    assert by_name and all(any(n.startswith(prefix + ".") for prefix in names) for n in by_name)
    assert frozen(indices) == by_name


def test_an_unknown_layer_name_is_one_message_listing_the_names(tmp_path):
    proc = run_cli(["summary", "model=lenet", "model.freeze=[conv9]"], tmp_path)
    assert proc.returncode == 2
    message = " ".join(proc.stderr.split())
    assert ("model.freeze: 'conv9' names no module with parameters in model 'lenet'. Its top-level modules are: "
            "conv1 (Conv2d), conv2 (Conv2d), fc1 (Linear), fc2 (Linear), fc (Linear)") in message
    assert "Traceback" not in proc.stderr
