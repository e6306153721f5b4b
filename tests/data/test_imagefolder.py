"""Image folders a user gets wrong: no images, no or one class folder, splits with different classes, folders
that cannot be read, files that are not images. Errors name the folder; unreadable files are skipped and named."""

import logging
import shutil

import pytest
import torch

from trainctl.config.compose import compose
from trainctl.data.catalog import build_dataset
from trainctl.data.imagefolder import StreamSplit
from trainctl.data.splits import Split
from trainctl.errors import UserError

from conftest import make_image_folder, run_cli, run_dirs
from denied import deny  # noqa: F401  (a fixture)

IMAGES_PER_CLASS = {"train": 8, "test": 4}  # make_image_folder's defaults


def folder_cfg(root, *extra):
    return compose(["dataset=imagefolder", f"dataset.root={root}", "dataset.image_size=[8,8]",
                    "dataset.num_workers=0", *extra]).dataset


def build(root, *extra):
    return build_dataset(folder_cfg(root, *extra), seed=0)


def add_bad_files(folder):
    """Three kinds of unreadable file, none of them hidden: text, garbage named .png, an empty .jpg."""
    (folder / "notes.txt").write_text("not a picture")
    (folder / "broken.png").write_bytes(b"\x89PNG garbage")
    (folder / "empty.jpg").write_bytes(b"")


# ---- the folder structure -------------------------------------------------------------------------------------
def test_class_folders_without_images(tmp_path):
    for part in ("train/a", "train/b", "test/a", "test/b"):
        (tmp_path / part).mkdir(parents=True)
    with pytest.raises(UserError, match=rf"{tmp_path / 'train'} has no images: its class folders \(a, b\) are empty"):
        build(tmp_path)


@pytest.mark.parametrize("loose_files", [0, 3])
def test_no_class_folders(tmp_path, loose_files):
    make_image_folder(tmp_path / "src", per_class=2)
    (tmp_path / "root" / "train").mkdir(parents=True)
    shutil.copytree(tmp_path / "src" / "test", tmp_path / "root" / "test")
    for i in range(loose_files):
        shutil.copy(tmp_path / "src" / "train" / "circle" / "0.png", tmp_path / "root" / "train" / f"{i}.png")
    said = f"it holds {loose_files} file\\(s\\) but no folders" if loose_files else "it is empty"
    with pytest.raises(UserError, match=rf"{tmp_path / 'root' / 'train'} has no class folders \({said}\): put "
                                        r"each class's images in a folder of its own, .*/train/<class>/<image>"):
        build(tmp_path / "root")


def test_a_single_class_is_refused(tmp_path):
    make_image_folder(tmp_path, classes=("cat",), per_class=4)
    with pytest.raises(UserError, match=r"train has a single class folder \('cat'\): a classifier needs at least "
                                        r"two classes"):
        build(tmp_path)


@pytest.mark.parametrize("part", ["test", "val"])
def test_splits_with_different_classes_name_the_missing_and_extra(tmp_path, part):
    make_image_folder(tmp_path, classes=("circle", "square", "stripe"), per_class=4)
    if part == "val":
        shutil.copytree(tmp_path / "test", tmp_path / "val")
    shutil.rmtree(tmp_path / part / "square")
    (tmp_path / part / "stripe").rename(tmp_path / part / "stripes")
    with pytest.raises(UserError, match=rf"the class folders of {tmp_path / part} differ from those of "
                                        rf"{tmp_path / 'train'} \(missing there: square, stripe; not in train/: "
                                        r"stripes\)"):
        build(tmp_path)


def test_hidden_folders_and_files_are_not_data(tmp_path):
    make_image_folder(tmp_path, classes=("a", "b"), per_class=4)
    (tmp_path / "train" / ".ipynb_checkpoints").mkdir()  # torchvision's ImageFolder took this for a class
    (tmp_path / "train" / "a" / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    data = build(tmp_path)
    assert data.spec.class_names == ("a", "b") and len(data.train) + len(data.val) == 8


def test_missing_root(tmp_path):
    with pytest.raises(UserError, match=rf"dataset.root={tmp_path / 'nope'} does not exist"):
        build(tmp_path / "nope")


# ---- permissions ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("where", [".", "train", "test/square"])
def test_unreadable_folder_is_named(tmp_path, deny, where):
    root = make_image_folder(tmp_path / "images", per_class=2)
    folder = deny(root / where)
    with pytest.raises(UserError, match=rf"cannot read {folder} "
                                        r"\(from dataset.root\): permission denied\. Fix: make it readable"):
        build(root)


def test_unreadable_parent_of_root_is_the_culprit(tmp_path, deny):
    from trainctl.data.locate import availability

    root = make_image_folder(tmp_path / "private" / "images", per_class=2)
    deny(tmp_path / "private")
    with pytest.raises(UserError, match=rf"cannot read {root} \(from dataset.root\): permission denied on "
                                        rf"{tmp_path / 'private'}\. Fix: make it readable \(chmod a\+rX "):
        build(root)
    assert "permission denied" in availability(folder_cfg(root))  # `trainctl doctor` says so, no traceback


# ---- unreadable files -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("in_memory", ["true", "false"])
def test_unreadable_files_are_skipped_counted_and_named(tmp_path, deny, caplog, in_memory):
    root = make_image_folder(tmp_path / "images")
    add_bad_files(root / "train" / "circle")
    add_bad_files(root / "test" / "square")
    deny(root / "train" / "stripe" / "3.png")
    with caplog.at_level(logging.WARNING, logger="trainctl"):
        data = build(root, f"dataset.in_memory={in_memory}")
    assert isinstance(data.train, Split if in_memory == "true" else StreamSplit)
    total = 3 * (8 + 4) + 6
    warning = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert f"skipped 7 unreadable file(s) of {total} under {root}: " in warning
    assert "train/circle/broken.png" in warning and "(not an image)" in warning and ", and 2 more" in warning
    assert len(data.train) + len(data.val) == 3 * 8 - 1 and len(data.test) == 3 * 4
    x, y = next(data.train.shuffled(4, data.train_transform, seed=0, epoch=0))  # no worker crashes on them
    assert x.shape == (4, 3, 8, 8)


def test_unreadable_file_reason_is_permission(tmp_path, deny, caplog):
    root = make_image_folder(tmp_path / "images", classes=("a", "b"), per_class=4)
    deny(root / "train" / "a" / "1.png")
    with caplog.at_level(logging.WARNING, logger="trainctl"):
        build(root)
    assert "train/a/1.png (permission denied)" in caplog.text


def test_a_split_with_nothing_readable_is_an_error(tmp_path):
    root = make_image_folder(tmp_path, classes=("a", "b"), per_class=4)
    for png in (root / "test").rglob("*.png"):
        png.write_bytes(b"not a png")
    with pytest.raises(UserError, match=rf"{root / 'test'} has no images: all 4 file\(s\) in its class folders are "
                                        r"unreadable, e\.g\. .*\.png \(not an image\)"):
        build(root)


def test_a_training_class_with_nothing_readable_is_an_error(tmp_path):
    root = make_image_folder(tmp_path, classes=("a", "b", "c"), per_class=4)
    for png in (root / "train" / "b").glob("*.png"):
        png.write_text("oops")
    with pytest.raises(UserError, match=rf"class folder\(s\) {root / 'train' / 'b'} hold no readable images"):
        build(root)


@pytest.mark.parametrize("in_memory", ["true", "false"])
def test_image_that_fails_only_when_decoded_is_dropped(tmp_path, caplog, in_memory):
    root = make_image_folder(tmp_path, classes=("a", "b"), per_class=4, size=64)
    cut = root / "test" / "b" / "1.png"
    cut.write_bytes(cut.read_bytes()[:80])  # the header survives: only a full decode notices
    with caplog.at_level(logging.WARNING, logger="trainctl"):
        data = build(root, f"dataset.in_memory={in_memory}")
        ys = torch.cat([y for _, y in data.test.ordered(3, data.eval_transform)])
    assert ys.tolist() == [0, 0, 1] and f"skipped 1 image(s) that failed to decode: {cut}" in caplog.text


# ---- through the real CLI -------------------------------------------------------------------------------------
def test_cli_single_class_exits_2_and_bad_files_are_warned_about(tmp_path):
    one = make_image_folder(tmp_path / "one", classes=("cat",), per_class=3)
    proc = run_cli(["train", "dataset=imagefolder", f"dataset.root={one}", "device=cpu"], tmp_path)
    text = " ".join(proc.stderr.split())
    assert proc.returncode == 2 and "has a single class folder ('cat')" in text and "Traceback" not in text
    assert run_dirs(tmp_path) == []

    two = make_image_folder(tmp_path / "two", classes=("a", "b"), per_class=4)
    add_bad_files(two / "train" / "a")
    proc = run_cli(["train", "dataset=imagefolder", f"dataset.root={two}", "dataset.image_size=[8,8]",
                    "dataset.num_workers=0", "model=mlp", "trainer.epochs=1", "trainer.progress=false"],
                   tmp_path)
    out = " ".join((proc.stdout + proc.stderr).split())
    assert proc.returncode == 0, out
    assert f"skipped 3 unreadable file(s) of 15 under {two}: train/a/broken.png (not an image)" in out


@pytest.mark.parametrize(("in_memory", "said"), [("true", "decoded into memory"), ("false", "in one streamed batch")])
def test_an_image_size_that_cannot_fit_in_memory_is_refused_before_decoding(fake_images, in_memory, said):
    cfg = compose(["dataset=imagefolder", f"dataset.root={fake_images}", "dataset.image_size=[100000,100000]",
                   f"dataset.in_memory={in_memory}"])
    with pytest.raises(UserError, match=f"dataset.image_size=\\[100000, 100000\\]: the images {said} would take"):
        build_dataset(cfg.dataset, 0)
