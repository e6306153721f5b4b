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


# ---- issue 23: what a fresh probe found silently accepted, unclear, a traceback or a hang -----------------------
HUGE = "9" * 150  # an integer no 64-bit number holds
LR_SEARCH = ["train", "-m", "hydra/sweeper=optuna", "experiment=smoke", "optimizer.lr=interval(0.01,0.1)",
             "hydra.sweeper.n_trials=1"]
PROBE_CASES = [
    (["train", "experiment=smoke", "+hydra.foo=1"], "hydra.foo is not a setting of hydra"),
    (["train", "experiment=smoke", "+hydra.job.nme=x"], "hydra.job.nme is not a setting of hydra.job; did you mean"),
    (["train", "+model=lenet"], "+model=lenet: model already has a choice in trainctl's defaults"),
    (["train", "experiment=smoke", "+model=mlp"], "write model=mlp (without +)"),
    (["train", "--", "experiment=smoke"], "`--` is not an override"),
    (["train", "experiment=smoke", "--", "trainer.epochs=1"], "remove the `--`"),
    (["train", "experiment=smoke", "hparams_search=nosuch"], "unknown hparams_search 'nosuch'"),
    (["train", "experiment=smoke", "@=1"], "the override '@=1' names no config group before '@'"),
    (["train", "experiment=smoke", "~experiment"], "~experiment: it drops the experiment=smoke you gave"),
    (["train", "~experiment"], "~experiment: experiment is empty unless you choose one"),
    (["train", "experiment=smoke", f"trainer.epochs={HUGE}"], "trainer.epochs=99999999999999999999...(150 characters) "
                                                               "is out of range: it must be <= 100000"),
    (["train", "experiment=smoke", f"model.hidden=[{HUGE}]"], "is too large: an integer setting holds at most"),
    (["summary", f"model.hidden=[{HUGE}]"], "model.hidden=[9999999999999999999...(152 characters) is too large"),
    (["summary", "model=torchvision", "model.weights=BOGUS"],
     "model.weights=BOGUS names no pretrained weights of mobilenet_v3_small: use one of IMAGENET1K_V1, DEFAULT"),
    (["train", "experiment=smoke", "scheduler=lambda", "scheduler.formula=epoch ** 99999999999", "trainer.epochs=3"],
     "failed at epoch=2: 2 ** 1e+11 would be about 1e30102999566, beyond the 1e+300 a formula may reach. Change "
     "the formula"),
    ([*LR_SEARCH, "hydra.sweeper.storage=sqlite:///no/such/dir/x.db"],
     "hydra.sweeper.storage=sqlite:///no/such/dir/x.db: the folder no/such/dir does not exist: create it first"),
    ([*LR_SEARCH, "hydra.sweeper.storage=journal:missing/j.log"], "/missing does not exist"),
    ([*LR_SEARCH, "objective=[val/acc,val/loss]", "hydra.sweeper.direction=maximize"],
     "hydra.sweeper.direction=maximize is one direction: give one per metric, e.g. "
     "hydra.sweeper.direction=[maximize,minimize]"),
]


@pytest.mark.slow
@pytest.mark.parametrize(("args", "culprit"), PROBE_CASES, ids=[" ".join(a)[:80] for a, _ in PROBE_CASES])
def test_what_the_probe_found_is_refused_cleanly(tmp_path, args, culprit):
    proc = run_cli(args, tmp_path, timeout=120)  # ~experiment trained the default config: it looked like a hang
    assert proc.returncode == 2, proc.stdout[-1000:] + proc.stderr[-1000:]
    assert "Traceback" not in proc.stderr + proc.stdout
    assert culprit in " ".join(proc.stderr.split()), proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no run, sweep or storage folder


def test_formulas_take_the_math_module_by_its_name():
    from trainctl.components.formula import compile_formula

    formula = compile_formula("math.cos(epoch) + 1", ("epoch",), "scheduler.formula")
    assert formula(epoch=2) == pytest.approx(__import__("math").cos(2) + 1)
    both = compile_formula("math.pi * hypot(3, epoch) + math.tanh(0) + pow(2, epoch)", ("epoch",), "k")
    assert both(epoch=4) == pytest.approx(__import__("math").pi * 5 + 16)
    for text in ("math.factorial(epoch)", "math.__dict__", "math.cos.__call__(1)", "os.cos(1)"):
        with pytest.raises(UserError, match="is not allowed in a formula"):
            compile_formula(text, ("epoch",), "k")
    with pytest.raises(UserError, match=r"failed at epoch=3: math range error\. Change the formula"):
        compile_formula("math.exp(1000 * epoch)", ("epoch",), "k")(epoch=3)


@pytest.mark.slow
def test_a_formula_with_math_functions_trains(tmp_path):
    proc = run_cli(["train", "experiment=smoke", "trainer.epochs=1", "scheduler=lambda",
                    "scheduler.formula='math.cos(epoch) + 1'"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]


@pytest.mark.parametrize(("entry", "value", "message"), [
    ("format_version", "1", "its 'format_version' entry is '1', where trainctl writes a whole number"),
    ("format_version", True, "its 'format_version' entry is True"),
    ("model", [1, 2], "its 'model' entry is list, where trainctl writes a dict of tensors"),
    ("epoch", "x", "its 'epoch' entry is 'x', where trainctl writes a whole number >= 0"),
    ("history", "x", "its 'history' entry is 'x'"),
])
def test_a_checkpoint_entry_of_another_kind_is_named(tmp_path, entry, value, message):
    from trainctl.engine.checkpoint import load_checkpoint

    path = tmp_path / "x.pt"
    torch.save({"format_version": 1, "model": {"w": torch.zeros(1)}, "epoch": 1, "history": [], entry: value}, path)
    with pytest.raises(UserError, match=f"checkpoint {path} is not a trainctl checkpoint: {message}"):
        load_checkpoint(path)


@pytest.mark.slow
def test_eval_of_a_checkpoint_whose_format_is_a_string_is_refused(tmp_path):
    torch.save({"format_version": "1", "model": {}}, tmp_path / "x.pt")
    proc = run_cli(["eval", "ckpt=x.pt"], tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "its 'format_version' entry is '1', where trainctl writes a whole number" in " ".join(proc.stderr.split())


@pytest.mark.slow
@pytest.mark.parametrize("garbage", [b"\x00\xff\xfe not text", b"{{{: [\n"], ids=["bytes", "yaml"])
def test_resume_of_a_run_directory_with_garbage_overrides_is_refused(tmp_path, garbage):
    run = tmp_path / "shared"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "last.pt").write_bytes(b"")
    (run / ".hydra").mkdir()
    (run / ".hydra" / "overrides.yaml").write_bytes(garbage)
    proc = run_cli(["train", f"resume={run}"], tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert f"cannot read {run}/.hydra/overrides.yaml" in " ".join(proc.stderr.split())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shared"]


def _study(folder, n_trials=4):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    folder.mkdir()
    study = optuna.create_study(study_name="s", storage=f"sqlite:///{folder / 'optuna.db'}", direction="maximize")
    study.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=n_trials)
    return folder / "optuna.db"


@pytest.mark.slow
def test_a_truncated_study_database_is_named_as_damaged(tmp_path):
    from trainctl.sweep.storage import check_storage_files

    db = _study(tmp_path / "sweep")
    db.write_bytes(db.read_bytes()[:8192])  # cut short, as a full disk or an interrupted copy leaves it
    proc = run_cli(["sweep-report", "sweep"], tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert f"the study database {db} is damaged (SQLite: database disk image is malformed)" in " ".join(
        proc.stderr.split())
    assert sorted(p.name for p in (tmp_path / "sweep").iterdir()) == ["optuna.db"]  # no report, no lock
    with pytest.raises(UserError, match=r"hydra\.sweeper\.storage=sqlite:///.*optuna\.db: the study database .* is "
                                        r"damaged"):  # a sweep that would continue the study says so too
        check_storage_files(f"sqlite:///{db}", f"sqlite:///{db}")


def test_a_symlink_loop_in_an_image_folder_is_read_once_and_named(tmp_path, caplog):
    from conftest import make_image_folder
    from trainctl.data.imagescan import check_readable, scan_split

    root = make_image_folder(tmp_path / "images", per_class=4)
    train = root / "train"
    (train / "circle" / "loop").symlink_to("..")  # back up the tree: was followed ~40 levels deep
    (train / "circle" / "again").symlink_to(train / "circle")
    (train / "square" / "stripes").symlink_to("../stripe")  # another class's folder: a second label
    (train / "circle" / ".hidden").mkdir()
    (train / "circle" / ".hidden" / "x.png").write_bytes((train / "circle" / "0.png").read_bytes())
    split = scan_split(train)
    assert len(split.files) == 12 and len({path for path, _ in split.files}) == 12
    assert {name for _, name in split.files} == {"circle", "square", "stripe"}
    assert sorted(split.skipped_links) == sorted(str(train / p) for p in ("circle/again", "circle/loop",
                                                                           "square/stripes"))
    with caplog.at_level("WARNING", logger="trainctl"):
        check_readable(root, [split])
    assert "skipped 3 folder link(s) under" in caplog.text and f"circle/loop -> {train}" in caplog.text


@pytest.mark.slow
def test_a_callback_that_fails_at_fit_end_costs_the_run_nothing(tmp_path):
    proc = run_cli(["train", "experiment=smoke", "trainer.epochs=1"], tmp_path, TRAINCTL_FAULTS="raise_at_fit_end=1")
    assert proc.returncode == 0, proc.stderr[-2000:]
    [run] = list((tmp_path / "runs").iterdir())
    assert (run / "metrics.json").is_file() and "test/acc" in (run / "metrics.json").read_text()
    said = " ".join((proc.stdout + proc.stderr).split())  # the log's console handler: stdout off a terminal
    assert "callback FailAtFitEnd.on_fit_end failed (RuntimeError: injected failure at fit end); the run's " \
           "metrics are saved" in said and "Traceback" not in proc.stdout + proc.stderr
    assert "Traceback" in (run / "train.log").read_text()  # for whoever debugs it


def test_a_verdict_that_fails_leaves_the_metrics(tmp_path, monkeypatch, caplog):
    import json

    import trainctl.engine.fit as fit_module
    from trainctl.api import train

    def broken(*args, **kwargs):
        raise ZeroDivisionError("float division by zero")

    monkeypatch.setattr(fit_module, "diagnose", broken)
    cfg = compose(["experiment=smoke", "trainer.epochs=1"])
    with caplog.at_level("WARNING", logger="trainctl"):
        result = train(cfg, run_dir=tmp_path / "run")
    assert result["diagnosis"]["verdict"] == "unknown" and "test/acc" in result
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["diagnosis"]["verdict"] == "unknown"
    assert "the verdict failed (ZeroDivisionError: float division by zero)" in caplog.text


def _start(args, cwd):
    import subprocess
    import sys

    from conftest import with_test_device

    return subprocess.Popen([sys.executable, "-m", "trainctl", *with_test_device(args)], cwd=cwd, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _wait_for(condition, timeout=60.0):
    import time

    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.01)


@pytest.mark.slow
@pytest.mark.parametrize("signum", [2, 15], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("when", ["imports", "run dir made"])
def test_a_signal_before_training_exits_with_its_code_and_leaves_nothing(tmp_path, signum, when):
    import time

    proc = _start(["train", "experiment=smoke", "trainer.epochs=50"], tmp_path)
    if when == "imports":
        time.sleep(0.5)
    else:  # the moment Hydra has made the run directory: data, model and the loop are still to come
        _wait_for(lambda: (tmp_path / "runs").is_dir() and any((tmp_path / "runs").iterdir()))
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signum, err[-2000:]
    assert "Traceback" not in err and f"stopped by {'SIGINT (Ctrl-C)' if signum == 2 else 'SIGTERM'}" in err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


@pytest.mark.slow
@pytest.mark.parametrize("signum", [2, 15], ids=["SIGINT", "SIGTERM"])
def test_a_signal_during_eval_or_twice_exits_with_its_code(tmp_path, signum):
    import time

    (tmp_path / "not-read-yet.pt").write_bytes(b"\0" * 64)  # exists: eval goes on to import torch, then is stopped
    proc = _start(["eval", "ckpt=not-read-yet.pt"], tmp_path)
    time.sleep(0.3)
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signum and "Traceback" not in err, err[-2000:]
    proc = _start(["train", "experiment=smoke", "trainer.epochs=50"], tmp_path)
    time.sleep(0.5)
    proc.send_signal(signum)
    time.sleep(0.05)
    proc.send_signal(signum)  # a second Ctrl-C: out at once, with the same code
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signum and "Traceback" not in err, err[-2000:]


@pytest.mark.parametrize("args", [["eval", "ckpt=" + "a" * 300], ["sweep-report", "b" * 300]],
                         ids=["eval-ckpt", "sweep-report"])
def test_a_path_too_long_for_the_system_is_named_not_a_traceback(tmp_path, args):
    proc = run_cli(args, tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "File name too long" in proc.stderr and args[-1].split("=")[-1][:50] in proc.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("args,named", [
    (["train", "--cfg", "job", "seed=${nosuch}"], "Interpolation key 'nosuch' not found"),
    (["train", "--shell-completion"], "--shell-completion needs what to do"),
    (["train", "experiment=smoke", "hydra=1"], "hydra: Config group override must be a string"),
], ids=["reference-to-nothing", "completion-without-action", "hydra-group-given-a-number"])
def test_what_hydra_refuses_is_one_message_not_a_traceback(tmp_path, args, named):
    proc = run_cli(args, tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and named in proc.stderr, proc.stderr[-2000:]
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_a_number_too_long_for_pythons_reader_is_named_typed_or_saved(tmp_path):
    huge = "7" * 5000
    proc = run_cli(["train", "experiment=smoke", f"seed={huge}"], tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "seed (on the command line)" in proc.stderr
    run = tmp_path / "runs" / "saved"
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "overrides.yaml").write_text(f"- experiment=smoke\n- seed={huge}\n")
    proc = run_cli(["train", f"resume={run}"], tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert "holds a number of 5000 digits" in proc.stderr or "no checkpoint" in proc.stderr
    assert sorted(p.name for p in run.rglob("*")) == [".hydra", "overrides.yaml"]


@pytest.mark.parametrize("damage", ["model_shapes", "rng_empty", "optimizer_garbage"])
def test_resume_of_a_checkpoint_that_does_not_fit_the_run_is_named(tmp_path, damage):
    from conftest import run_dirs

    assert run_cli(["train", "experiment=smoke", "trainer.epochs=1"], tmp_path).returncode == 0
    [run] = run_dirs(tmp_path)
    path = run / "checkpoints" / "last.pt"
    state = torch.load(path, weights_only=True)
    if damage == "model_shapes":
        name = next(iter(state["model"]))
        state["model"][name] = torch.zeros(3, 3, 3)
    elif damage == "rng_empty":
        state["rng"] = {}
    else:
        state["optimizer"] = {"state": 7, "param_groups": 7}
    torch.save(state, path)
    proc = run_cli(["train", f"resume={run}", "trainer.epochs=2"], tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert str(run) in proc.stderr or "checkpoint" in proc.stderr
