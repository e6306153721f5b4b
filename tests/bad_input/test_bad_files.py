"""Files someone else made, named when they are not what trainctl reads or writes: data files of another type,
checkpoints and run directories of another kind, a damaged study database, folder links, special files
(corpus: bad_cases.py)."""

from __future__ import annotations

import pytest
import torch

from trainctl.config.compose import compose
from trainctl.errors import UserError

from conftest import NO_SYSTEM_DATA, copy_run, run_cli


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


@pytest.mark.parametrize("damage", ["model_shapes", "rng_empty", "optimizer_garbage"])
def test_resume_of_a_checkpoint_that_does_not_fit_the_run_is_named(tmp_path, smoke_run, damage):
    run = copy_run(smoke_run, tmp_path)  # a finished run of its own, then damaged
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
