"""The config tree: every option composes against its schema and builds; bad values are caught by key."""

import pytest
import torch
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from trainctl.components import build_dataset, build_loss, build_model, build_optimizer, build_scheduler
from trainctl.config.compose import GROUPS, SCHEMAS, group_options
from trainctl.device import available_devices, select_device
from trainctl.errors import UserError
from trainctl.config.validate import validate
from trainctl.config.compose import compose

from conftest import NO_SYSTEM_DATA


def test_defaults_match_the_contract():
    cfg = compose()
    assert [cfg[g].name for g in GROUPS] == ["cnn", "fashionmnist", "adam", "none", "cross_entropy", "auto"]
    assert (cfg.trainer.epochs, cfg.trainer.batch_size, cfg.seed, cfg.objective) == (5, 64, 0, "val/acc")
    assert cfg.dataset.val_fraction == pytest.approx(1 / 12)


def test_every_yaml_option_has_a_schema_and_vice_versa():
    for group in GROUPS:
        assert group_options(group) == sorted(SCHEMAS[group]), group


OPTIONS = [(g, name) for g in GROUPS for name in SCHEMAS[g]]
# Options that need a matching partner (the default is cnn on fashion-format files).
PAIRINGS = {
    ("dataset", "blobs"): ["model=mlp"],
    ("dataset", "sine"): ["model=lstm"],
    ("dataset", "cifar10"): ["model=cnn", "dataset.root=CIFAR"],
    ("dataset", "imagefolder"): ["model=cnn", "dataset.root=IMAGES"],
    ("model", "resnet"): ["model.arch=resnet18"],
    ("model", "torchvision"): ["model.arch=mobilenet_v3_small", "dataset=cifar10", "dataset.root=CIFAR"],
}


@pytest.mark.parametrize(("group", "name"), OPTIONS)
def test_every_option_composes_and_builds(group, name, fake_fashion, fake_cifar, fake_images):
    # MNIST and Fashion-MNIST share file names, so one small fake root serves both.
    overrides = [f"{group}={name}", *PAIRINGS.get((group, name), [])]
    generated = {"dataset=blobs", "dataset=sine"} & set(overrides)
    if not generated and not any(o.startswith("dataset.root=") for o in overrides):
        overrides += [f"dataset.root={fake_fashion}", NO_SYSTEM_DATA]
    overrides = [o.replace("CIFAR", str(fake_cifar)).replace("IMAGES", str(fake_images)) for o in overrides]
    cfg = compose(overrides)
    assert cfg[group].name == name
    validate(cfg)
    if group == "device":
        if name in ("auto", *available_devices()):
            assert isinstance(select_device(name), torch.device)
        else:
            with pytest.raises(UserError, match=f"no {name} device is available"):
                select_device(name)
        return
    data = build_dataset(cfg.dataset, cfg.seed)
    model = build_model(cfg.model, data.spec)
    optimizer = build_optimizer(cfg.optimizer, model)
    schedule = build_scheduler(cfg.scheduler, optimizer, cfg.trainer.epochs, 10)
    loss_fn = build_loss(cfg.loss, data.spec)
    x, y = next(data.train.shuffled(8, data.train_transform, 0, 0))
    before = [p.detach().clone() for p in model.parameters()]
    loss = loss_fn(model(x), y)
    loss.backward()
    optimizer.step()
    schedule.step_batch()
    schedule.step_epoch({"val/loss": 1.0, "val/acc": 0.5})
    assert torch.isfinite(loss)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters())), "the step changed nothing"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("optimizer.lrr=0.1", "optimizer.lrr"),
        ("trainer.epochs=abc", "trainer.epochs"),
        ("model.channels=[a,b]", "channels"),
        ("seed=1.5", "seed"),
    ],
)
def test_unknown_keys_and_wrong_types_fail_at_compose_time(override, message):
    with pytest.raises(ConfigCompositionException) as err:
        compose([override])
    assert message in f"{err.value} {err.value.__cause__}"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("optimizer.lr=-1", r"optimizer.lr=-1.0 is out of range: it must be > 0"),
        ("trainer.batch_size=0", r"trainer.batch_size=0 is out of range: it must be >= 1"),
        ("dataset.val_fraction=1.5", r"dataset.val_fraction=1.5 is out of range: it must be < 1"),
        ("dataset.val_fraction=0", r"dataset.val_fraction=0.0 is out of range: it must be > 0"),
        ("trainer.epochs=0", r"trainer.epochs=0 is out of range"),
        ("objective=val/accuracy", r"objective='val/accuracy' is not a metric trainctl computes"),
        ("loss.label_smoothing=2", r"loss.label_smoothing=2.0 is out of range: it must be <= 1"),
        ("model.channels=[16,0]", r"every item must be >= 1"),
        ("device.name=tpu", r"device.name='tpu' is not allowed: choose one of auto, cpu, cuda, mps"),
    ],
)
def test_out_of_range_values_are_rejected_by_key(override, message):
    with pytest.raises(UserError, match=message):
        validate(compose([override]))


def test_all_problems_are_reported_at_once():
    with pytest.raises(UserError) as err:
        validate(compose(["optimizer.lr=-1", "trainer.batch_size=0"]))
    assert "optimizer.lr" in str(err.value) and "trainer.batch_size" in str(err.value)


def test_checkpoint_monitor_defaults_to_the_objective():
    assert compose(["objective=val/loss"]).checkpoint.monitor is None  # the loop uses the objective
    assert compose(["objective=[val/acc,val/loss]"]).objective == ["val/acc", "val/loss"]


def test_smoke_experiment_is_offline_and_small():
    cfg = compose(["experiment=smoke"])
    assert cfg.dataset.name == "blobs" and cfg.device.name == "cpu" and cfg.trainer.epochs <= 2
    assert OmegaConf.select(cfg, "dataset.root") is None  # generated: no files needed


def test_ranges_are_checked_on_copies_that_lost_the_root_schema():
    cfg = compose(["trainer.batch_size=0"])
    copy = OmegaConf.masked_copy(cfg, list(cfg.keys()))  # what Hydra's callbacks hand to the preflight
    with pytest.raises(UserError, match="trainer.batch_size=0 is out of range"):
        validate(copy)


def test_a_user_class_may_take_settings_named_like_the_builders_own_arguments():
    """`path`, `key` and `target` are common setting names (a recorder's file): they reach the user's class."""
    from omegaconf import OmegaConf

    from trainctl.config.targets import instantiate_target

    node = OmegaConf.create({"c": {"_target_": "builtins.dict", "path": "ev.jsonl", "key": "k", "target": "t"}}).c
    built = instantiate_target(node, check=lambda *_: None)
    assert built == {"path": "ev.jsonl", "key": "k", "target": "t"}
