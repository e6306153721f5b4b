"""The regression corpus of bad input: every invocation here must be refused with exit 2, one message that
names the culprit, no traceback, and no run directory. Config values are checked in-process (compose +
validate, exactly as `trainctl train` does before it writes anything); a set of real CLI runs per class of
mistake covers the paths the subprocess adds (argument parsing, Hydra, exit codes, cleanup)."""

from __future__ import annotations

import dataclasses
import typing

import pytest
import torch

from trainctl.config.compose import GROUPS, compose, group_options
from trainctl.config.hydra_errors import explain
from trainctl.config.schemas import SCHEMAS
from trainctl.config.schemas.run import TrainConfig
from trainctl.config.validate import validate
from trainctl.errors import UserError

from conftest import NO_SYSTEM_DATA, run_cli

NUMERIC = (int, float)


def _numeric_type(field: dataclasses.Field, hints: dict[str, object]) -> type | None:
    kind = hints[field.name]
    if typing.get_origin(kind) is typing.Union:  # Optional[int]
        kind = next(a for a in typing.get_args(kind) if a is not type(None))
    return kind if kind in NUMERIC else None


def _bad_values(kind: type, meta: dict[str, object]) -> list[str]:
    """Values that break a numeric field: past each limit, not finite (floats), and not a number at all."""
    bad = ["abc"]
    step = 1 if kind is int else 0.5
    if "ge" in meta:
        bad.append(str(meta["ge"] - step))
    if "gt" in meta:
        bad.append(str(meta["gt"]))
    if "le" in meta:
        bad.append(str(meta["le"] + step))
    if "lt" in meta:
        bad.append(str(meta["lt"]))
    if kind is float:
        bad += ["inf", "nan"]
    return bad


def _fields(schema: type, prefix: str):
    hints = typing.get_type_hints(schema)
    for f in dataclasses.fields(schema):
        if dataclasses.is_dataclass(hints[f.name]):
            yield from _fields(hints[f.name], f"{prefix}{f.name}.")
        elif (kind := _numeric_type(f, hints)) is not None:
            yield f"{prefix}{f.name}", kind, dict(f.metadata)


def generated_cases() -> list[tuple[list[str], str]]:
    """(overrides, culprit key) for every numeric setting of the top level and of each group's options."""
    cases = []
    for key, kind, meta in _fields(TrainConfig, ""):
        cases += [([f"{key}={v}"], key) for v in _bad_values(kind, meta)]
    for group in GROUPS:
        for option in group_options(group):
            for key, kind, meta in _fields(SCHEMAS[group][option], f"{group}."):
                cases += [([f"{group}={option}", f"{key}={v}"], key) for v in _bad_values(kind, meta)]
    return cases


WRITTEN_CASES = [
    (["+model.foo=1"], "model.foo"),
    (["+trainer.x=1"], "trainer.x"),
    (["+foo=1"], "foo"),
    (["model=mlp", "model.batch_norm=2"], "model.batch_norm"),
    (["trainer.progress=maybe"], "trainer.progress"),
    (["~model"], "model"),
    (["~optimizer"], "optimizer"),
    (["optimizer=adam", "optimizer.betas=[0.9]"], "optimizer.betas"),
    (["optimizer=adam", "optimizer.betas=[0.9,1.5]"], "optimizer.betas"),
    (["model=cnn", "model.channels=[]"], "model.channels"),
    (["model=cnn", "model.channels=[0,4]"], "model.channels"),
    (["dataset.std=[0]"], "dataset.std"),
    (["dataset.std=[inf]"], "dataset.std"),
    (["dataset.std=[${oc.env:HOME}]"], "dataset.std"),
    (["dataset.mean=${oc.env:NO_SUCH_VARIABLE_HERE}"], "dataset.mean"),
    (["model.activation=swish"], "model.activation"),
    (["model=cnn", "model.norm=layer", "model.batch_norm=true"], "model.norm=layer contradicts model.batch_norm"),
    (["model=cnn", "model.norm=banana"], "model.norm"),
    (["trainer.epochs=100001"], "trainer.epochs=100001 is out of range"),
    (["device.index=-1"], "device.index"),
    (["dataset.train_per_class=0"], "dataset.train_per_class"),
    (["trainer.precision=fp8"], "trainer.precision"),
    (["objective=val/accuracy"], "objective"),
    (["checkpoint.monitor=val/f1"], "checkpoint.monitor"),
    (["early_stopping.monitor=loss"], "early_stopping.monitor"),
    (["trainer.epoch=1"], "trainer.epoch"),
    (["modle=cnn"], "modle"),
    (["optimizer.lrr=0.1"], "optimizer.lrr"),
    (["optimizer=sgd", "optimizer.nesterov=true", "optimizer.momentum=0"], "optimizer.nesterov"),
    (["trainer.gradient_clip_algorithm=l2"], "trainer.gradient_clip_algorithm"),
    (["scheduler=plateau", "scheduler.mode=up"], "scheduler.mode"),
    (["model=vgg", "model.preset=vgg19"], "model.preset"),
    (["dataset=imagefolder", "dataset.image_size=[32]"], "dataset.image_size"),
    # mean/std: one value per channel of the dataset (or one for all), known from the config alone
    (["dataset=fashionmnist", "dataset.mean=[0.5,0.5,0.5]"], "dataset.mean=[0.5, 0.5, 0.5] has 3 values but "
                                                             "fashionmnist images have 1 channel"),
    (["dataset=cifar10", "dataset.std=[0.2,0.2]"], "cifar10 images have 3 channel"),
    (["dataset=imagefolder", "dataset.grayscale=true"], "dataset.grayscale=true gives 1 channel"),
    # an override Hydra cannot parse is named, with its quoted form
    (["scheduler=lambda", "scheduler.formula=0.5*(1+cos(pi*epoch/10))"],
     "cannot read the override scheduler.formula=0.5*(1+cos(pi*epoch/10))"),
    (["scheduler=lambda", "scheduler.formula=0.5*(1+cos(pi*epoch/10))"],
     "\"scheduler.formula='0.5*(1+cos(pi*epoch/10))'\""),
    (["hydra.verbose=[["], "cannot read the override hydra.verbose=[["),
]

CASES = generated_cases() + WRITTEN_CASES


def test_the_corpus_is_large():
    assert len(CASES) >= 150, len(CASES)


@pytest.mark.parametrize(("overrides", "culprit"), CASES, ids=[" ".join(o) for o, _ in CASES])
def test_a_bad_value_is_refused_naming_its_key(overrides, culprit):
    try:
        cfg = compose(overrides)
    except Exception as e:  # Hydra's composition errors, as `trainctl train` reports them
        message = explain(e, overrides)
        assert message is not None, f"no user message for {type(e).__name__}: {e}"
    else:
        with pytest.raises(UserError) as raised:
            validate(cfg, overrides)
        message = str(raised.value)
    assert culprit in message


CLI_CASES = [
    # (args, what the message must name)
    (["frobnicate"], "frobnicate"),
    (["train", "model=cnnn"], "cnnn"),
    (["train", "experiment=smok"], "smok"),
    (["train", "trainer.epochs=abc"], "trainer.epochs"),
    (["train", "trainer.epoch=3"], "trainer.epochs"),
    (["train", "modle=cnn"], "model"),
    (["train", "+trainer.x=1"], "trainer.x"),
    (["train", "optimizer.lr=-1"], "optimizer.lr"),
    (["train", "optimizer.lr=inf"], "optimizer.lr"),
    (["train", "model.batch_norm=2"], "model.batch_norm"),
    (["train", "~model"], "model"),
    (["train", "model.activation=swish"], "model.activation"),
    (["train", "experiment=smoke", "seed=${seed}"], "seed cannot be resolved"),
    (["train", "experiment=smoke", "model.hidden=${trainer.batch_size}"], "model.hidden=32 is not a list"),
    (["train", "experiment=smoke", "+trainer._target_=os.system"], "trainer._target_: trainer is trainctl's own"),
    (["train", "-m", "hydra/sweeper=optuna", "experiment=smoke", "optimizer.lr=interval(0.01,0.1)",
      "+hydra.sweeper.bogus=1"], "hydra.sweeper.bogus is not a setting of hydra.sweeper"),
    (["train", "-m", "hydra/sweeper=optuna", "experiment=smoke", "optimizer.lr=interval(0.01,0.1)",
      "hydra.sweeper.study_name=a/../../b"], "hydra.sweeper.study_name=a/../../b is not valid"),
    (["lr-find", "experiment=smoke", "lr_find.steps=100000000"], "lr_find.steps=100000000 is more than"),
    (["eval", "ckpt=a.pt", "ckpt=b.pt"], "ckpt= is given twice"),
    ([], "usage: trainctl <command>"),
    (["train", "experiment=smoke", "hydra.searchpath=[file:///no/such/confdir]"], "/no/such/confdir"),
    (["train", "-cd", "no_such_confdir", "experiment=smoke"], "no_such_confdir"),
    (["train", "experiment=smoke", "trainer.epochs=${oc.env:TRAINCTL_NO_SUCH_VARIABLE}"],
     "trainer.epochs cannot be resolved"),
    (["train", "experiment=smoke", "~seed"], "~seed: trainctl's settings can be changed but not removed"),
    (["train", "experiment=smoke", "hydra.run.dir="], "hydra.run.dir=: an empty output directory"),
    (["train", "experiment=smoke", "model.hidden=[1000000000]"], "model.hidden"),
    (["train", "experiment=smoke", "model=lenet"], "model.hidden is not a setting of model=lenet"),
    (["train", "-m", "experiment=smoke", "seed=range(0,100000000)"], "would launch 100,000,000 jobs"),
    (["train", "-m", "experiment=smoke", "trainer.epochs=range(1,3,0)"], "trainer.epochs=range(1,3,0)"),
    (["train", "-m", "hydra/sweeper=optuna", "experiment=smoke", "optimizer.lr=interval(0.1,0.1)"],
     "the interval holds one value"),
    (["train", "-m", "hydra/sweeper=optuna", "experiment=smoke", "optimizer.lr=tag(bogus,interval(0.1,1))"],
     "unknown tag(s) bogus"),
    (["train", "-m", "hydra/sweeper=optuna", "experiment=smoke", "optimizer.lr=tag(log,choice(0.1,0.2))"],
     "applies to interval(a,b) only"),
    (["train", "dataset.root=/nowhere", NO_SYSTEM_DATA], "/nowhere"),
    (["train", "device=tpu"], "tpu"),
    (["train", "-m", "model=mlp,lenet", "experiment=smoke"], "model.hidden"),
    (["train", "-m", "resume=runs/x", "experiment=smoke"], "resume"),
    (["train", "resume=/no/such/run"], "/no/such/run"),
    (["train", "--experimental-rerun", "x.pickle"], "--experimental-rerun"),
    (["train", "+loss._target_=os.system", "experiment=smoke"], "loss._target_=os.system"),
    (["train", "+callbacks.x._target_=os.getcwd", "experiment=smoke"], "callbacks.x._target_"),
    (["eval"], "which checkpoint"),
    (["eval", "ckpt=/no/such.pt"], "/no/such.pt"),
    (["eval", "split=test"], "which checkpoint"),
    (["eval", "ckpt"], "ckpt"),
    (["list", "modle"], "modle"),
    (["train", "dataset=fashionmnist", "dataset.mean=[0.5,0.5,0.5]"], "dataset.mean"),
    (["train", "-m", "experiment=smoke", "optimizer.lr=glob(*)"], "optimizer.lr=glob(*) selects nothing"),
    (["train", "-m", "experiment=smoke", "trainer.epochs=range(3,1)"], "trainer.epochs=range(3,1) expands to no value"),
    (["train", "-m", "hydra/sweeper=optuna", "experiment=smoke", "optimizer.lr=interval(1e-3,nan)"],
     "every bound must be a finite number"),
    (["train", "-m", "hydra/sweeper=optuna", "experiment=smoke", "optimizer.lr=0.1,0.2",
      "+hydra.sweeper.params={trainer.epochs:'choice(a,b)'}"], "trainer.epochs=a is not valid"),
    (["train", "experiment=smoke", "scheduler=lambda", "scheduler.formula=0.5*(1+cos(pi*epoch/10))"],
     "scheduler.formula='0.5*(1+cos(pi*epoch/10))'"),
]


@pytest.mark.slow
@pytest.mark.parametrize(("args", "culprit"), CLI_CASES, ids=[" ".join(a) for a, _ in CLI_CASES])
def test_the_cli_refuses_cleanly(tmp_path, args, culprit):
    proc = run_cli(args, tmp_path)
    assert proc.returncode == 2, proc.stdout[-1000:] + proc.stderr[-1000:]
    assert "Traceback" not in proc.stderr + proc.stdout
    assert culprit in " ".join(proc.stderr.split())
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


@pytest.mark.slow
def test_a_working_directory_with_an_interpolation_in_its_path_is_refused_clearly(tmp_path):
    cwd = tmp_path / "odd${x}"
    cwd.mkdir()
    proc = run_cli(["train", "experiment=smoke"], cwd)
    assert proc.returncode == 2 and "has '${' in its path" in proc.stderr and "Traceback" not in proc.stderr
    assert not (cwd / "runs").exists()


@pytest.mark.slow
def test_a_resume_path_with_unusual_characters_works(tmp_path):
    cwd = tmp_path / "with space, 'quote and été"  # what shells and override parsers trip on, all in one path
    cwd.mkdir()
    proc = run_cli(["train", "experiment=smoke", "trainer.epochs=1"], cwd)
    assert proc.returncode == 0, proc.stderr
    [run] = list((cwd / "runs").iterdir())
    proc = run_cli(["train", f"resume={run}", "trainer.epochs=2"], cwd)
    assert proc.returncode == 0, proc.stderr
    assert '"epochs": 2' in (run / "metrics.json").read_text()


@pytest.mark.slow
def test_batch_norm_on_a_batch_of_one_is_refused_before_training(tmp_path):
    proc = run_cli(["train", "experiment=smoke", "model.batch_norm=true", "dataset.n_train=20",
                    "trainer.batch_size=15"], tmp_path)
    assert proc.returncode == 2 and "batch norm cannot train on a batch of one sample" in proc.stderr
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_a_callback_whose_constructor_raises_is_named(tmp_path):
    (tmp_path / "mymod.py").write_text(
        "from trainctl.callbacks import Callback\n"
        "class Bad(Callback):\n    def __init__(self):\n        raise RuntimeError('no budget left\\nmore')\n")
    proc = run_cli(["train", "experiment=smoke", "+callbacks.x._target_=mymod.Bad"], tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    assert "callbacks.x: mymod.Bad() raised RuntimeError: no budget left." in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mymod.py"]  # no run directory


def _fashion_files(root, train_images, test_images):
    """Fashion-MNIST's four files with the given image tensors (labels 0)."""
    from trainctl.data.idx import write_idx

    root.mkdir()
    for prefix, images in (("train", train_images), ("t10k", test_images)):
        write_idx(root / f"{prefix}-images-idx3-ubyte.gz", images)
        write_idx(root / f"{prefix}-labels-idx1-ubyte.gz", torch.zeros(len(images), dtype=torch.uint8))
    return root


IDX_CASES = [  # (train images, test images, the file the message names)
    (lambda: torch.rand(20, 28, 28), lambda: torch.zeros(10, 28, 28, dtype=torch.uint8), "train-images-idx3-ubyte.gz"),
    (lambda: torch.zeros(20, 28, 28, dtype=torch.uint8), lambda: torch.zeros(10, 20, 20, dtype=torch.uint8),
     "t10k-images-idx3-ubyte.gz"),
    (lambda: torch.zeros(20, 28, 28, dtype=torch.int32), lambda: torch.zeros(10, 28, 28, dtype=torch.uint8),
     "train-images-idx3-ubyte.gz"),
]


@pytest.mark.parametrize(("train_images", "test_images", "culprit"), IDX_CASES, ids=["float", "sizes", "int32"])
def test_idx_images_of_another_type_or_size_are_refused_naming_the_file(tmp_path, train_images, test_images, culprit):
    from trainctl.data.catalog import DATASETS

    root = _fashion_files(tmp_path / "fashion", train_images(), test_images())
    cfg = compose(["dataset=fashionmnist", f"dataset.root={root}", NO_SYSTEM_DATA])
    with pytest.raises(UserError, match=culprit):
        DATASETS.get("fashionmnist")(cfg.dataset, 0)


@pytest.mark.slow
def test_outputs_never_replace_a_special_file_or_fail_with_a_traceback(tmp_path):
    """`out=` pointing at a device node must not replace it with a file; a folder that is a file is named."""
    import os

    (tmp_path / "notes.txt").write_text("x")
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    from trainctl.files import write_json

    with pytest.raises(UserError, match=f"cannot write {fifo}: it exists and is not a regular file"):
        write_json(fifo, {"a": 1})
    assert fifo.is_fifo()
    with pytest.raises(UserError, match="could not write .*notes.txt/x.json"):
        write_json(tmp_path / "notes.txt" / "x.json", {"a": 1})


@pytest.mark.slow
def test_a_broken_user_yaml_names_its_file_and_line(tmp_path):
    (tmp_path / "conf" / "model").mkdir(parents=True)
    (tmp_path / "conf" / "model" / "bad.yaml").write_text("hidden: [1, 2\nfoo: bar\n")
    proc = run_cli(["train", "-cd", "conf", "model=bad", "dataset=blobs"], tmp_path)
    assert proc.returncode == 2 and "bad.yaml, line 2" in proc.stderr and "Traceback" not in proc.stderr
