"""Offline data discovery, the validation split, and on-device batching."""


import pytest
import torch
from omegaconf import OmegaConf

from trainctl.data.catalog import build_dataset
from trainctl.data.locate import check_available, locate_files
from trainctl.data.splits import epoch_order
from trainctl.errors import UserError

from conftest import make_idx_dataset


def fashion_cfg(root, system_dirs=(), **extra):
    return OmegaConf.create({
        "name": "fashionmnist", "root": str(root), "system_dirs": [str(d) for d in system_dirs], "download": False,
        "val_fraction": 1 / 12, "normalize": True, "mean": [0.286], "std": [0.353], **extra,
    })


def test_flat_root(tmp_path):
    make_idx_dataset(tmp_path / "data", gz=False)
    assert locate_files(fashion_cfg(tmp_path / "data"))["train_images"].parent == tmp_path / "data"


def test_torchvision_layout_is_reused(tmp_path):
    raw = make_idx_dataset(tmp_path / "data" / "FashionMNIST" / "raw")
    assert locate_files(fashion_cfg(tmp_path / "data"))["test_labels"].parent == raw


def test_system_dir_is_searched_after_root(tmp_path):
    system = make_idx_dataset(tmp_path / "usr-share")
    cfg = fashion_cfg(tmp_path / "empty", system_dirs=[system])
    assert locate_files(cfg)["train_images"].parent == system
    root = make_idx_dataset(tmp_path / "empty")
    assert locate_files(cfg)["train_images"].parent == root  # root wins when both have the files


def test_partial_folder_does_not_count(tmp_path):
    folder = make_idx_dataset(tmp_path / "data")
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    assert locate_files(fashion_cfg(folder)) is None


def test_missing_data_lists_the_places_tried_and_the_fixes(tmp_path):
    cfg = fashion_cfg(tmp_path / "nowhere", system_dirs=[tmp_path / "sys"])
    with pytest.raises(UserError) as err:
        check_available(cfg)
    text = str(err.value)
    for place in (tmp_path / "nowhere", tmp_path / "nowhere" / "FashionMNIST" / "raw", tmp_path / "sys"):
        assert str(place) in text
    assert "apt-get install dataset-fashion-mnist" in text and "dataset.download=true" in text


def test_validation_split_size_and_seed(tmp_path):
    make_idx_dataset(tmp_path / "d", n_train=1200)
    a = build_dataset(fashion_cfg(tmp_path / "d"), seed=0)
    b = build_dataset(fashion_cfg(tmp_path / "d"), seed=0)
    c = build_dataset(fashion_cfg(tmp_path / "d"), seed=1)
    assert (len(a.train), len(a.val), len(a.test)) == (1100, 100, 200)  # 1/12 held out, as 5,000 of 60,000
    assert torch.equal(a.val.x, b.val.x) and not torch.equal(a.val.x, c.val.x)
    assert a.train.x.dtype == torch.uint8 and a.train.x.shape[1:] == (1, 28, 28)
    assert a.spec.input_shape == (1, 28, 28) and a.spec.num_classes == 10
    # No image is in both the training and the validation split.
    train_rows = {bytes(r) for r in a.train.x.flatten(1).numpy()}
    assert not any(bytes(r) in train_rows for r in a.val.x.flatten(1).numpy())


def test_normalisation_uses_dataset_statistics(tmp_path):
    make_idx_dataset(tmp_path / "d")
    data = build_dataset(fashion_cfg(tmp_path / "d"), seed=0)
    x = data.eval_transform(torch.tensor([[[[0, 255]]]], dtype=torch.uint8))
    assert torch.allclose(x, torch.tensor([[[[-0.286 / 0.353, (1 - 0.286) / 0.353]]]]))
    raw = build_dataset(fashion_cfg(tmp_path / "d", normalize=False), seed=0)
    assert torch.equal(raw.eval_transform(torch.tensor([[[[0, 255]]]], dtype=torch.uint8)),
                       torch.tensor([[[[0.0, 1.0]]]]))


def test_epoch_order_is_a_function_of_seed_and_epoch():
    cpu = torch.device("cpu")
    assert torch.equal(epoch_order(100, 0, 3, cpu), epoch_order(100, 0, 3, cpu))
    assert not torch.equal(epoch_order(100, 0, 3, cpu), epoch_order(100, 0, 4, cpu))
    assert not torch.equal(epoch_order(100, 0, 3, cpu), epoch_order(100, 1, 3, cpu))
    assert sorted(epoch_order(100, 0, 3, cpu).tolist()) == list(range(100))


def test_batches_cover_every_sample_once(tmp_path):
    make_idx_dataset(tmp_path / "d", n_train=130)
    data = build_dataset(fashion_cfg(tmp_path / "d"), seed=0)
    order = epoch_order(len(data.train), 0, 0, torch.device("cpu"))
    ys = torch.cat([y for _, y in data.train.shuffled(16, data.train_transform, 0, 0)])
    assert torch.equal(ys, data.train.y[order])
    skipped = list(data.train.shuffled(16, data.train_transform, 0, 0, start_step=2))
    assert torch.equal(skipped[0][1], data.train.y[order[32:48]])
    xs = torch.cat([x for x, _ in data.test.ordered(64, data.eval_transform)])
    assert xs.dtype == torch.float32 and xs.shape[0] == len(data.test)


def test_blobs_are_two_separated_clusters():
    cfg = OmegaConf.create({"name": "blobs", "n_train": 1000, "n_test": 200, "std": 0.5, "val_fraction": 0.2})
    data = build_dataset(cfg, seed=0)
    for split in (data.train, data.test):
        assert torch.allclose(split.x[split.y == 0].mean(0), torch.tensor([2.0, 2.0]), atol=0.2)
        assert torch.allclose(split.x[split.y == 1].mean(0), torch.tensor([-2.0, -2.0]), atol=0.2)
    assert (len(data.train), len(data.val), len(data.test)) == (800, 200, 200)


def test_download_is_the_last_resort_and_lands_in_torchvision_layout(tmp_path, monkeypatch):
    import torchvision

    calls = []

    class FakeFashionMNIST:  # stands in for the network: writes what torchvision's download would
        def __init__(self, root, train, download):
            calls.append((root, train, download))
            make_idx_dataset(tmp_path / "data" / "FashionMNIST" / "raw")

    monkeypatch.setattr(torchvision.datasets, "FashionMNIST", FakeFashionMNIST)
    data = build_dataset(fashion_cfg(tmp_path / "data", download=True), seed=0)
    assert calls and all(download for _, _, download in calls)
    assert len(data.test) == 200


def test_failed_download_keeps_the_places_tried(tmp_path, monkeypatch):
    import torchvision

    def offline(*args, **kwargs):
        raise RuntimeError("Network is unreachable")

    monkeypatch.setattr(torchvision.datasets, "FashionMNIST", offline)
    with pytest.raises(UserError, match=r"(?s)not found.*The download failed too: Network is unreachable"):
        build_dataset(fashion_cfg(tmp_path / "data", download=True), seed=0)


def test_epoch_seeds_never_collide_across_streams_epochs_and_batches():
    # The old mix seed*100_003 + epoch*101 + stream + 1 gave stream 2+k of epoch e the seed of stream 2+k-101
    # of epoch e+1. Every (stream, epoch[, batch]) key must now get its own seed, for several run seeds.
    from trainctl.data.splits import AUGMENT_STREAM, SHUFFLE_STREAM, STREAM_AUGMENT_PER_BATCH, derive_seed

    keys = [(s, e) for s in (SHUFFLE_STREAM, AUGMENT_STREAM) for e in range(200)]
    keys += [(STREAM_AUGMENT_PER_BATCH, e, b) for e in range(20) for b in range(300)]
    for seed in (0, 1, 100_003):
        seeds = [derive_seed(seed, *key) for key in keys]
        assert len(set(seeds)) == len(seeds)
        assert all(0 <= s < 2**63 for s in seeds)
    assert derive_seed(0, 1, 5) == derive_seed(0, 1, 5)  # a pure function: resume replays the same draws
    assert derive_seed(0, 1, 5) != derive_seed(1, 1, 5)
