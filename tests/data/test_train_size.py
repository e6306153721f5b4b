"""`dataset.train_size`: a seeded subset of the training split, taken after validation is held out, for every
dataset (in-memory and streamed); too large a size is one clear error (exit 2, nothing written)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from conftest import NO_SYSTEM_DATA, run_cli, run_dirs
from trainctl.config.compose import compose
from trainctl.config.schemas import datasets
from trainctl.data.catalog import build_dataset
from trainctl.errors import UserError


def bundle(*overrides: str, seed: int = 0):
    cfg = compose(list(overrides))
    return build_dataset(cfg.dataset, seed)


@pytest.mark.parametrize("schema", [datasets.FileDatasetConfig, datasets.BlobsConfig, datasets.ImageFolderConfig,
                                    datasets.SineConfig])
def test_every_dataset_schema_has_train_size_defaulting_to_all(schema):
    (field,) = [f for f in dataclasses.fields(schema) if f.name == "train_size"]
    assert field.default is None and field.metadata["ge"] == 1
    assert "validation unchanged" in field.metadata["help"]


def test_the_subset_is_seeded_nested_and_leaves_validation_and_test_alone():
    full = bundle("dataset=blobs")
    small, again = bundle("dataset=blobs", "dataset.train_size=50"), bundle("dataset=blobs", "dataset.train_size=50")
    larger = bundle("dataset=blobs", "dataset.train_size=200")
    other_seed = bundle("dataset=blobs", "dataset.train_size=50", seed=1)
    assert (len(full.train), len(small.train), len(larger.train)) == (1600, 50, 200)
    assert torch.equal(small.train.x, again.train.x) and torch.equal(small.train.y, again.train.y)
    assert torch.equal(small.val.x, full.val.x) and torch.equal(small.test.x, full.test.x)
    assert torch.equal(small.train.x, larger.train.x[:50])  # one seed's subsets are nested: a learning curve
    rows = {tuple(r) for r in full.train.x.tolist()}
    assert all(tuple(r) in rows for r in small.train.x.tolist())  # drawn from the training split only
    assert not torch.equal(small.train.x, other_seed.train.x[:50])


def test_file_datasets_get_it_too(fake_fashion):
    root = [f"dataset.root={fake_fashion}", NO_SYSTEM_DATA]
    full, small = bundle(*root), bundle(*root, "dataset.train_size=100")
    assert len(small.train) == 100 and torch.equal(small.val.y, full.val.y)
    assert small.train.x.dtype == torch.uint8 and small.train.x.shape[1:] == full.train.x.shape[1:]


def test_a_streamed_image_folder_gets_a_subset_of_its_files(fake_images):
    common = ["dataset=imagefolder", f"dataset.root={fake_images}", "dataset.in_memory=false",
              "dataset.num_workers=0"]
    full, small = bundle(*common), bundle(*common, "dataset.train_size=5")
    assert len(small.train) == 5 and len(small.val) == len(full.val)
    (x, y), = list(small.train.ordered(8, full.eval_transform))
    assert x.shape[0] == 5 and set(y.tolist()) <= set(range(3))


def test_more_than_the_training_split_is_a_user_error_naming_its_size():
    with pytest.raises(UserError, match=r"dataset.train_size=1601 is more than the 1600 samples of the training "
                                        r"split \(validation not counted\): choose at most 1600"):
        bundle("dataset=blobs", "dataset.train_size=1601")
    assert len(bundle("dataset=blobs", "dataset.train_size=1600").train) == 1600


def test_too_large_through_the_cli_exits_2_and_writes_no_run(tmp_path):
    proc = run_cli(["train", "dataset=blobs", "model=mlp", "dataset.train_size=5000"], tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "dataset.train_size=5000 is more than the 1600 samples" in proc.stderr
    assert "Traceback" not in proc.stderr and run_dirs(tmp_path) == []


def test_zero_is_refused_by_the_schema(tmp_path):
    from trainctl.config.validate import validate

    with pytest.raises(UserError, match=r"dataset.train_size=0 is out of range: it must be >= 1"):
        validate(compose(["dataset=blobs", "dataset.train_size=0"]))


def test_train_per_class_keeps_at_most_k_of_each_class_seeded_and_nested(fake_fashion):
    root = [f"dataset.root={fake_fashion}", NO_SYSTEM_DATA]
    full = bundle(*root)
    three, again, five = (bundle(*root, "dataset.train_per_class=3"), bundle(*root, "dataset.train_per_class=3"),
                          bundle(*root, "dataset.train_per_class=5"))
    assert torch.bincount(three.train.y, minlength=10).tolist() == [3] * 10
    assert torch.equal(three.train.x, again.train.x) and torch.equal(three.val.y, full.val.y)
    rows = {tuple(r.flatten().tolist()) for r in five.train.x}
    assert all(tuple(r.flatten().tolist()) in rows for r in three.train.x)  # nested, as train_size is
    both = bundle(*root, "dataset.train_per_class=3", "dataset.train_size=12")
    assert len(both.train) == 12 and torch.bincount(both.train.y, minlength=10).max() <= 3


def test_train_per_class_on_streamed_image_folders(fake_images):
    streamed = bundle("dataset=imagefolder", f"dataset.root={fake_images}", "dataset.in_memory=false",
                      "dataset.train_per_class=1")
    labels = streamed.train.labels()
    assert len(streamed.train) == len(labels) and torch.bincount(labels).tolist() == [1] * len(torch.unique(labels))


def test_train_per_class_on_a_regression_dataset_is_refused():
    with pytest.raises(UserError, match="dataset.train_per_class needs a classification dataset"):
        bundle("dataset=sine", "dataset.train_per_class=2")


def test_train_per_class_through_the_cli_writes_the_smaller_run(tmp_path, fake_fashion):
    proc = run_cli(["train", "model=mlp", "model.hidden=[8]", f"dataset.root={fake_fashion}", NO_SYSTEM_DATA,
                    "dataset.train_per_class=4", "trainer.epochs=1"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    (run,) = run_dirs(tmp_path)
    assert "train 40 /" in (run / "train.log").read_text()
