"""The model keys of issue 12 (activation, norm, norm_groups, pool, dropout, dropout2d, cnn's block list, the
recurrent cells' nonlinearity and bias): each changes the built module tree, bad values are refused naming the
key, and configs without them (defaults, and configs stored before they existed) build exactly what they built."""

import json
import re
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from trainctl.components import build_model
from trainctl.components.naming import legacy_name, upgrade_state_dict
from trainctl.config.compose import compose
from trainctl.config.validate import config_problems
from trainctl.data.splits import DataSpec
from trainctl.errors import UserError

DIGITS = DataSpec((1, 28, 28), 10)
SMALL_VGG = ["model=vgg", "model.layers=[8,M,16,M,16]"]  # three convs: quick to build
CONV_MODELS = {"cnn": ["model=cnn"], "lenet": ["model=lenet"], "vgg": SMALL_VGG}
CONV_COUNTS = {"cnn": 2, "lenet": 2, "vgg": 3}


def build(overrides: list[str], spec: DataSpec = DIGITS) -> nn.Module:
    return build_model(compose(overrides).model, spec)


def count(model: nn.Module, kind: type[nn.Module]) -> int:
    return sum(type(m) is kind for m in model.modules())  # exact types: InstanceNorm2d is no BatchNorm here


def norm_types(model: nn.Module) -> list[type[nn.Module]]:
    norms = (nn.BatchNorm1d, nn.BatchNorm2d, nn.LayerNorm, nn.GroupNorm, nn.InstanceNorm2d)
    return [type(m) for m in model.modules() if type(m) in norms]


# ---- activation ---------------------------------------------------------------------------------------------
ACTIVATIONS = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "gelu": nn.GELU, "elu": nn.ELU,
               "leaky_relu": nn.LeakyReLU, "silu": nn.SiLU}
ACTIVATION_COUNTS = {"mlp": 2, "cnn": 2, "lenet": 4, "vgg": 4}  # vgg: three convs and the classifier


@pytest.mark.parametrize("name", ACTIVATIONS)
@pytest.mark.parametrize("model", ACTIVATION_COUNTS)
def test_every_activation_replaces_every_relu(model, name):
    built = build([*CONV_MODELS.get(model, ["model=mlp"]), f"model.activation={name}"])
    assert count(built, ACTIVATIONS[name]) == ACTIVATION_COUNTS[model]
    if name != "relu":
        assert count(built, nn.ReLU) == 0
    assert built(torch.randn(2, *DIGITS.input_shape)).shape == (2, 10)


# ---- norm -----------------------------------------------------------------------------------------------------
CONV_NORMS = {"none": None, "batch": nn.BatchNorm2d, "layer": nn.GroupNorm, "group": nn.GroupNorm,
              "instance": nn.InstanceNorm2d}


@pytest.mark.parametrize("norm", CONV_NORMS)
@pytest.mark.parametrize("model", CONV_MODELS)
def test_norm_puts_its_layer_after_every_conv(model, norm):
    built = build([*CONV_MODELS[model], "model.batch_norm=false", f"model.norm={norm}"])
    kind = CONV_NORMS[norm]
    assert norm_types(built) == ([] if kind is None else [kind] * CONV_COUNTS[model])
    if norm == "layer":  # GroupNorm(1, C): one mean and variance over all channels and positions
        assert {m.num_groups for m in built.modules() if isinstance(m, nn.GroupNorm)} == {1}
    if norm == "instance":
        assert all(m.affine for m in built.modules() if isinstance(m, nn.InstanceNorm2d))
    assert built.train()(torch.randn(2, *DIGITS.input_shape)).shape == (2, 10)


@pytest.mark.parametrize(("norm", "kind"), [("none", None), ("batch", nn.BatchNorm1d), ("layer", nn.LayerNorm)])
def test_mlp_norm(norm, kind):
    built = build(["model=mlp", "model.hidden=[32,16]", f"model.norm={norm}"])
    assert norm_types(built) == ([] if kind is None else [kind, kind])


@pytest.mark.parametrize("overrides", [["model=mlp"], ["model=cnn"], ["model=lenet"], SMALL_VGG])
def test_batch_norm_true_is_norm_batch(overrides):
    old = build([*overrides, "model.batch_norm=true"])
    new = build([*overrides, "model.batch_norm=false", "model.norm=batch"])
    assert [type(m) for m in old.modules()] == [type(m) for m in new.modules()]
    assert norm_types(old) and set(norm_types(old)) <= {nn.BatchNorm1d, nn.BatchNorm2d}


def test_vgg_keeps_batch_norm_by_default_and_norm_none_turns_it_off():
    assert norm_types(build(SMALL_VGG)) == [nn.BatchNorm2d] * 3
    assert norm_types(build([*SMALL_VGG, "model.batch_norm=false"])) == []
    assert norm_types(build([*SMALL_VGG, "model.batch_norm=false", "model.norm=none"])) == []


@pytest.mark.parametrize(("overrides", "model"), [
    (["model=cnn", "model.batch_norm=true", "model.norm=layer"], "cnn"),
    (["model=lenet", "model.batch_norm=true", "model.norm=none"], "lenet"),
    (["model=mlp", "model.batch_norm=true", "model.norm=layer"], "mlp"),
    (["model=vgg", "model.norm=group"], "vgg"),  # vgg's batch_norm defaults to true
])
def test_batch_norm_true_with_another_norm_is_refused(overrides, model):
    cfg = compose(overrides)
    norm = cfg.model.norm
    message = rf"^model.norm={norm} contradicts model.batch_norm=true.*Fix: set model.batch_norm=false"
    [problem] = config_problems(cfg)
    assert problem.startswith(f"model.norm={norm} contradicts model.batch_norm=true")
    assert ("(vgg turns it on by default)" in problem) == (model == "vgg")
    with pytest.raises(UserError, match=message):  # callers that skip validation are refused too
        build_model(cfg.model, DIGITS)


@pytest.mark.parametrize(("overrides", "groups"), [
    (["model=cnn"], [4, 8]),  # null: most groups up to 32 with >= 4 channels each
    (["model=lenet"], [1, 4]),  # 6 channels cannot make groups of 4
    (["model=vgg", "model.layers=[64,M,256]"], [16, 32]),
    (["model=cnn", "model.norm_groups=2"], [2, 2]),
    (["model=lenet", "model.norm_groups=2"], [2, 2]),
])
def test_group_norm_groups(overrides, groups):
    built = build([*overrides, "model.batch_norm=false", "model.norm=group"])
    assert [m.num_groups for m in built.modules() if isinstance(m, nn.GroupNorm)] == groups


@pytest.mark.parametrize(("overrides", "message"), [
    (["model=lenet", "model.norm_groups=4"], r"model.norm_groups=4 does not divide the 6 channels of lenet's conv 1: "
                                             r"give a divisor of every conv's channel count \(6, 16\), e\.g\. "
                                             r"model.norm_groups=2, or model.norm_groups=null"),
    (["model=cnn", "model.channels=[16,24]", "model.norm_groups=16"],
     r"model.norm_groups=16 does not divide the 24 channels of cnn's conv 2.*=8,"),
    (["model=vgg", "model.batch_norm=false", "model.norm_groups=3"],
     r"model.norm_groups=3 does not divide the 32 channels of vgg's conv 1.*=32,"),
])
def test_norm_groups_that_do_not_divide_are_refused(overrides, message):
    with pytest.raises(UserError, match=f"^{message}"):
        build([*overrides, "model.norm=group"])


def test_instance_norm_on_one_by_one_maps_is_refused_before_training():
    with pytest.raises(UserError, match=r"^model.norm=instance needs more than one position per channel, but layer "
                                        r"inorm\d+ of model 'vgg' sees 1x1 maps on 1x28x28 inputs"):
        build(["model=vgg", "model.batch_norm=false", "model.norm=instance"])


def test_norm_choices_are_validated():
    [problem] = config_problems(compose(["model=mlp", "model.norm=group"]))
    assert problem == "model.norm='group' is not allowed: choose one of none, batch, layer"


# ---- pool, dropout, dropout2d, cnn blocks ---------------------------------------------------------------------
POOL_COUNTS = {"cnn": 1, "lenet": 2, "vgg": 2}


@pytest.mark.parametrize("model", CONV_MODELS)
def test_pool_avg_replaces_every_max_pool(model):
    assert count(build(CONV_MODELS[model]), nn.MaxPool2d) == POOL_COUNTS[model]
    built = build([*CONV_MODELS[model], "model.pool=avg"])
    assert (count(built, nn.AvgPool2d), count(built, nn.MaxPool2d)) == (POOL_COUNTS[model], 0)


@pytest.mark.parametrize("model", CONV_MODELS)
def test_dropout2d_follows_every_conv(model):
    assert count(build(CONV_MODELS[model]), nn.Dropout2d) == 0
    built = build([*CONV_MODELS[model], "model.dropout2d=0.25"])
    assert count(built, nn.Dropout2d) == CONV_COUNTS[model]
    assert {m.p for m in built.modules() if isinstance(m, nn.Dropout2d)} == {0.25}
    layers = list(built)
    assert all(type(layers[i - 1]) is nn.ReLU for i, m in enumerate(layers) if isinstance(m, nn.Dropout2d))


def test_dropout2d_drops_whole_channels():
    built = build(["model=cnn", "model.dropout2d=0.5"])
    assert [type(m) for m in built[:4]] == [nn.Conv2d, nn.ReLU, nn.Dropout2d, nn.MaxPool2d]
    x = torch.rand(8, 1, 28, 28)
    with torch.no_grad():
        kept = built[:4].eval()(x).flatten(2)
        torch.manual_seed(0)
        maps = built[:4].train()(x).flatten(2)
    dropped = (maps == 0).all(-1) & (kept != 0).any(-1)
    assert dropped.any() and (~dropped).any()
    # each (sample, channel) map is either all zeros or all kept (scaled by 1 / (1 - p))
    assert torch.allclose(maps[~dropped], 2 * kept[~dropped])


@pytest.mark.parametrize(("model", "dropouts"), [("cnn", 1), ("lenet", 2)])
def test_cnn_and_lenet_take_dropout(model, dropouts):
    assert count(build([f"model={model}"]), nn.Dropout) == 0
    built = build([f"model={model}", "model.dropout=0.3"])
    assert [m.p for m in built.modules() if type(m) is nn.Dropout] == [0.3] * dropouts
    assert isinstance(built[-1], nn.Linear) and isinstance(built[-2], nn.Dropout)  # right before the classifier


@pytest.mark.parametrize(("channels", "kernel", "convs", "pools", "flat"), [
    ("[8]", 5, 1, 0, 8 * 14 * 14), ("[8,16]", 5, 2, 1, 16 * 7 * 7), ("[8,16,32]", 3, 3, 2, 32 * 3 * 3),
    ("[8,8,8,8]", 1, 4, 3, 8 * 1 * 1),  # 28 -> 14 (stride 2) -> 7 -> 3 -> 1: kernels no larger than their input
])
def test_cnn_builds_a_block_per_channel_count(channels, kernel, convs, pools, flat):
    built = build(["model=cnn", f"model.channels={channels}", f"model.kernel_size={kernel}"])
    assert count(built, nn.Conv2d) == convs and count(built, nn.MaxPool2d) == pools
    assert built[-1].in_features == flat
    assert built(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


def test_cnn_hidden_layers_form_a_head_with_the_activation_and_dropout_before_each_linear():
    built = build(["model=cnn", "model.channels=[8,16]", "model.hidden=[64,32]", "model.activation=elu",
                   "model.dropout=0.2"])
    linears = [m for m in built if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(16 * 7 * 7, 64), (64, 32), (32, 10)]
    kinds = [type(m) for m in built][-8:]
    assert kinds == [nn.Dropout, nn.Linear, nn.ELU, nn.Dropout, nn.Linear, nn.ELU, nn.Dropout, nn.Linear]
    assert built(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    assert count(build(["model=cnn"]), nn.Linear) == 1  # none by default: the seed CNN's single classifier


def test_cnn_needs_a_channel_count():
    [problem] = config_problems(compose(["model=cnn", "model.channels=[]"]))
    assert problem == "model.channels=[] needs at least 1 item(s)"
    cfg = OmegaConf.create({"name": "cnn", "channels": []})  # a caller that skipped validation
    with pytest.raises(UserError, match=r"^model.channels=\[\] has no conv block: .* model.channels=\[16,32\]"):
        build_model(cfg, DIGITS)


def test_a_cnn_too_deep_for_its_images_says_which_keys_to_lower():
    with pytest.raises(UserError, match=r"^model 'cnn' cannot take 1x28x28 inputs: layer pool\d+ \(MaxPool2d 2x2\) .* "
                                        r"Fix: lower model.kernel_size or give model.channels fewer items"):
        build(["model=cnn", "model.channels=[8,8,8,8,8,8]", "model.kernel_size=1"])


# ---- recurrent cells ------------------------------------------------------------------------------------------
def test_rnn_nonlinearity():
    assert build(["model=rnn"]).rnn.nonlinearity == "tanh"
    relu = build(["model=rnn", "model.nonlinearity=relu"])
    assert relu.rnn.nonlinearity == "relu"
    x = -torch.rand(1, 1, 28, 28)
    with torch.no_grad():
        relu.rnn.bias_ih_l0.fill_(-10.0)  # every pre-activation negative: ReLU gives exact zeros, tanh never would
        out, _ = relu.rnn(x.permute(0, 2, 1, 3).flatten(2))
    assert (out == 0).all()


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_recurrent_bias(kind):
    assert "rnn.bias_ih_l0" in build([f"model={kind}"]).state_dict()
    built = build([f"model={kind}", "model.bias=false", "model.num_layers=2"])
    assert built.rnn.bias is False and not any(k.startswith("rnn.bias") for k in built.state_dict())
    assert "head.bias" in built.state_dict()  # the output layer keeps its own


def test_nonlinearity_is_the_plain_rnns_only():
    with pytest.raises(Exception, match="nonlinearity"):
        compose(["model=lstm", "model.nonlinearity=relu"])


# ---- nothing changes for configs without the new keys ---------------------------------------------------------
BEFORE = json.loads((Path(__file__).parent / "fixtures" / "models_before_issue_12.json").read_text())
CASES = {
    "mlp": ["model=mlp"], "mlp batch_norm": ["model=mlp", "model.batch_norm=true", "model.dropout=0.2"],
    "cnn": ["model=cnn"], "cnn batch_norm": ["model=cnn", "model.batch_norm=true"],
    "lenet": ["model=lenet"], "lenet batch_norm": ["model=lenet", "model.batch_norm=true"],
    "vgg": ["model=vgg"], "vgg no batch_norm": ["model=vgg", "model.batch_norm=false"],
    "rnn": ["model=rnn"], "lstm": ["model=lstm"], "gru": ["model=gru"],
}
SPECS = {"1x28x28": DIGITS, "3x32x32": DataSpec((3, 32, 32), 10)}


def tree(model: nn.Module) -> dict:
    """The modules and state as the fixture's code named them: layers by index (`legacy_name`), so that the
    fixture also checks that today's layer names map by position onto the same modules and tensors."""
    return {"modules": [f"{legacy_name(model, name)}:{type(m).__name__}" for name, m in model.named_modules()],
            "state": {legacy_name(model, key): list(value.shape) for key, value in model.state_dict().items()}}


@pytest.mark.parametrize("spec", SPECS)
@pytest.mark.parametrize("case", CASES)
def test_configs_without_the_new_keys_build_the_modules_they_built(case, spec):
    """The fixture was recorded from the code before these keys existed (and before layers had names)."""
    model = build(CASES[case], SPECS[spec])
    assert tree(model) == BEFORE[f"{case} @ {spec}"]
    # an old checkpoint's keys, in the fixture's order, read back as today's names in the model's order
    old = dict.fromkeys(BEFORE[f"{case} @ {spec}"]["state"], 0)
    assert list(upgrade_state_dict(model, old)) == list(model.state_dict())


# Model configs as checkpoints and exported models stored them before the new keys existed.
STORED = {
    "mlp": {"name": "mlp", "freeze": [], "hidden": [512, 512], "activation": "relu", "dropout": 0.0,
            "batch_norm": False},
    "cnn": {"name": "cnn", "freeze": [], "channels": [16, 32], "kernel_size": 5, "batch_norm": False},
    "lenet": {"name": "lenet", "freeze": [], "activation": "relu", "batch_norm": False},
    "vgg": {"name": "vgg", "freeze": [], "preset": "vgg11", "layers": None, "batch_norm": True, "dropout": 0.5,
            "hidden": 256},
    **{kind: {"name": kind, "freeze": [], "hidden_size": 128, "num_layers": 1, "bidirectional": False,
              "dropout": 0.0} for kind in ("rnn", "lstm", "gru")},
}


@pytest.mark.parametrize("name", STORED)
def test_stored_configs_without_the_new_keys_build_and_resume_as_before(name):
    from trainctl.config.compose import typed_config
    from trainctl.engine.resume import config_differences

    expected = BEFORE[f"{name} @ 1x28x28"]
    assert tree(build_model(OmegaConf.create(STORED[name]), DIGITS)) == expected  # an exported model's JSON
    now = compose([f"model={name}"])
    saved = {**OmegaConf.to_container(now, resolve=True), "model": STORED[name]}
    assert tree(build_model(typed_config(saved).model, DIGITS)) == expected  # eval, predict, explain, export
    assert config_differences(saved, now) == []  # resume: the same run


# ---- the tutorial's conv knobs: per-conv stride and padding, the pool's kind and size (issue 27) ----------------
@pytest.mark.parametrize("model", CONV_MODELS)
def test_strides_and_paddings_set_each_conv(model):
    n = CONV_COUNTS[model]
    strides, paddings = [1 + i % 2 for i in range(n)], [i % 3 for i in range(n)]
    built = build([*CONV_MODELS[model], f"model.strides={strides}", f"model.paddings={paddings}"],
                  DataSpec((1, 64, 64), 10))
    convs = [m for m in built.modules() if isinstance(m, nn.Conv2d)]
    assert [c.stride for c in convs] == [(s, s) for s in strides]
    assert [c.padding for c in convs] == [(p, p) for p in paddings]


@pytest.mark.parametrize("model", CONV_MODELS)
@pytest.mark.parametrize("pool", ["max", "avg"])
def test_the_pools_kind_and_size(model, pool):
    built = build([*CONV_MODELS[model], f"model.pool={pool}", "model.pool_size=3"], DataSpec((1, 96, 96), 10))
    pools = [m for m in built.modules() if isinstance(m, (nn.MaxPool2d, nn.AvgPool2d))]
    assert pools and all(type(p) is {"max": nn.MaxPool2d, "avg": nn.AvgPool2d}[pool] for p in pools)
    assert all(p.kernel_size in (3, (3, 3)) and p.stride in (3, (3, 3)) for p in pools)


@pytest.mark.parametrize(("overrides", "message"), [
    (["model=cnn", "model.strides=[1]"], "model.strides=[1] has 1 item(s), but cnn has 2 conv layer(s) (one per "
                                         "model.channels item)"),
    (["model=lenet", "model.paddings=[0,0,0]"], "model.paddings=[0, 0, 0] has 3 item(s), but lenet has 2 conv"),
    ([*SMALL_VGG, "model.strides=[1,1]"], "but vgg has 3 conv layer(s) (the numbers in its layer list)"),
])
def test_a_stride_or_padding_list_of_the_wrong_length_is_refused(overrides, message):
    with pytest.raises(UserError, match=re.escape(message)):
        build(overrides)


def test_a_stride_that_shrinks_the_image_away_names_the_layer():
    with pytest.raises(UserError, match=r"model 'cnn' cannot take 1x28x28 inputs: layer conv2 \(Conv2d 5x5\)"):
        build(["model=cnn", "model.strides=[4,8]", "model.paddings=[0,0]"])


# ---- cnn1d: a 1-D convnet for sequences -------------------------------------------------------------------------
def test_cnn1d_maps_each_time_step_and_classifies_image_rows():
    sine = DataSpec((50, 1), 0, "regression", target_shape=(50, 1))
    model = build(["model=cnn1d", "model.channels=[8,4]"], sine)
    assert [type(m) for m in model.modules() if isinstance(m, nn.Conv1d)] == [nn.Conv1d] * 3
    assert model(torch.zeros(2, 50, 1)).shape == (2, 50, 1)
    assert build(["model=cnn1d"])(torch.zeros(3, 1, 28, 28)).shape == (3, 10)
    with pytest.raises(UserError, match="model.kernel_size=4 is even"):
        build(["model=cnn1d", "model.kernel_size=4"], sine)


def test_cnn1d_learns_the_sine_dataset_through_the_cli(tmp_path):
    from conftest import run_cli, run_dirs

    proc = run_cli(["train", "model=cnn1d", "dataset=sine", "dataset.n_train=400", "dataset.n_test=50",
                    "trainer.epochs=3", "tensorboard.images=false"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads((run_dirs(tmp_path)[0] / "metrics.json").read_text())
    first, last = metrics["history"][0]["val/loss"], metrics["history"][-1]["val/loss"]
    assert last < first and metrics["test/loss"] < 0.5  # cos(t) from sin(t): 0.5 is the variance of a guess of 0


# ---- model.stateful: the hidden state carried from batch to batch (issue 27) -------------------------------------
def test_stream_windows_continue_each_other_row_by_row():
    """Window t of stream s is sample t*S+s, and each stream is one signal: its angle advances by the same step
    within a window and across each window boundary."""
    from trainctl.data.streams import sine_streams

    x, y = sine_streams(3, 4, 10, torch.Generator().manual_seed(0))
    angle = torch.atan2(x, y).view(4, 3, 10).permute(1, 0, 2).reshape(3, 40)  # each stream's windows end to end
    steps = torch.remainder(angle.diff(dim=1), 2 * torch.pi)
    assert torch.allclose(steps, steps[:, :1].expand_as(steps), atol=1e-4)


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_a_stateful_model_carries_its_state_detached_and_starts_over_each_epoch(kind):
    spec = DataSpec((5, 1), 0, "regression", target_shape=(5, 1))
    model = build([f"model={kind}", "model.hidden_size=4", "model.stateful=true"], spec).train()
    fresh = build([f"model={kind}", "model.hidden_size=4"], spec).train()
    fresh.load_state_dict(model.state_dict())
    x = torch.randn(3, 5, 1)
    assert torch.equal(model(x), fresh(x))  # the first batch starts from zeros
    second = model(x)
    assert not torch.allclose(second, fresh(x))  # then from the last batch's state
    state = model.state[0] if isinstance(model.state, tuple) else model.state
    assert not state.requires_grad
    model.eval()
    model.train()  # a new epoch
    assert model.state is None and torch.equal(model(x), fresh(x))


def test_stateful_is_refused_on_shuffled_data_and_trains_on_streams(tmp_path):
    from conftest import run_cli, run_dirs

    base = ["train", "model=gru", "model.stateful=true", "model.hidden_size=8", "dataset=sine", "dataset.n_train=160",
            "dataset.n_test=16", "dataset.length=10", "trainer.epochs=2", "tensorboard.images=false"]
    refused = run_cli(base, tmp_path)
    assert refused.returncode == 2 and "dataset=sine shuffles its training samples" in " ".join(refused.stderr.split())
    assert not run_dirs(tmp_path)
    wrong = run_cli([*base, "dataset.streams=8"], tmp_path)
    assert wrong.returncode == 2 and "set trainer.batch_size=8 (dataset.streams=8)" in wrong.stderr
    proc = run_cli([*base, "dataset.streams=8", "trainer.batch_size=8"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads((run_dirs(tmp_path)[0] / "metrics.json").read_text())
    assert metrics["history"][-1]["train/loss"] < metrics["history"][0]["train/loss"]


def test_init_sets_every_conv_and_linear_layer_through_the_cli(tmp_path, fake_fashion):
    """`model.init=kaiming_normal`, as the CAM tutorial initialises its CNN: every weight drawn with std
    √(2 / fan_in) and every bias 0 (torch's default gives std √(1 / (3 fan_in)) and non-zero biases). A step of
    lr 1e-9 leaves them where they started; the same seed draws the same weights."""
    from conftest import NO_SYSTEM_DATA, run_cli, run_dirs

    def first_weights(*extra: str) -> dict[str, torch.Tensor]:
        before = set(run_dirs(tmp_path))
        proc = run_cli(["train", "model=cnn", "model.channels=[16,32]", "model.hidden=[64]",
                        f"dataset.root={fake_fashion}", NO_SYSTEM_DATA, "optimizer=sgd", "optimizer.lr=1e-9",
                        "trainer.epochs=1", "trainer.max_steps_per_epoch=1", "trainer.max_eval_batches=1",
                        "tensorboard.images=false", "tensorboard.figures=false", *extra], tmp_path)
        assert proc.returncode == 0, proc.stderr[-2000:]
        [run] = set(run_dirs(tmp_path)) - before
        return torch.load(run / "checkpoints" / "last.pt", weights_only=True)["model"]

    kaiming = first_weights("model.init=kaiming_normal")
    default = first_weights()
    fan_ins = {"conv1.weight": 1 * 5 * 5, "conv2.weight": 16 * 5 * 5}  # the two convs
    for name, fan_in in fan_ins.items():
        assert float(kaiming[name].std()) == pytest.approx((2 / fan_in) ** 0.5, rel=0.1)
        assert float(default[name].std()) == pytest.approx((1 / (3 * fan_in)) ** 0.5, rel=0.15)
    biases = [k for k in kaiming if k.endswith(".bias") and kaiming[k].dim() == 1 and "running" not in k]
    assert biases and all(float(kaiming[k].abs().max()) < 1e-6 for k in biases)
    assert any(float(default[k].abs().max()) > 1e-3 for k in biases)
    assert all(torch.equal(kaiming[k], v) for k, v in first_weights("model.init=kaiming_normal").items())


@pytest.mark.parametrize(("overrides", "message"), [
    (["model.init=he"], "model.init='he' is not allowed: choose one of kaiming_normal, kaiming_uniform"),
    (["model=torchvision", "model.weights=DEFAULT", "model.init=xavier_normal"],
     "model.init=xavier_normal would overwrite the pretrained weights of model.weights=DEFAULT: set one of them"),
])
def test_a_bad_init_is_refused_before_anything_is_built(tmp_path, fake_fashion, overrides, message):
    from conftest import NO_SYSTEM_DATA, run_cli, run_dirs

    proc = run_cli(["train", *overrides, f"dataset.root={fake_fashion}", NO_SYSTEM_DATA], tmp_path)
    assert proc.returncode == 2 and message in " ".join(proc.stderr.split()), proc.stderr
    assert not run_dirs(tmp_path)  # and no weights fetched: the check comes before the download
