"""CIFAR-10 reader, image folders (in memory and streamed), sine sequences, on-device augmentation."""

import pickle

import pytest
import torch
from omegaconf import OmegaConf

from trainctl.data.cifar import read_cifar_batch
from trainctl.data.catalog import build_dataset
from trainctl.data.imagefolder import StreamSplit
from trainctl.data.splits import Split
from trainctl.data.transforms import random_crop, random_hflip
from trainctl.errors import UserError
from trainctl.config.compose import compose

from conftest import make_cifar_dataset


def test_cifar_reader_on_generated_batches(fake_cifar):
    data = build_dataset(compose(["dataset=cifar10", f"dataset.root={fake_cifar}"]).dataset, seed=0)
    assert data.spec.input_shape == (3, 32, 32) and data.spec.num_classes == 10
    assert data.spec.class_names[0] == "airplane"
    assert (len(data.train), len(data.val), len(data.test)) == (180, 20, 40)  # 5 x 40 train, 10% held out
    assert data.train.x.dtype == torch.uint8
    # Rows are channel-major (R plane, G plane, B plane), as in the published format.
    batch = read_cifar_batch(fake_cifar / "cifar-10-batches-py" / "test_batch")
    label = int(batch.y[4])
    assert torch.all(batch.x[4, label % 3, 3 * label : 3 * label + 3, :] == 250)


def test_cifar_found_flat_in_root(tmp_path):
    make_cifar_dataset(tmp_path / "flat")
    data = build_dataset(compose(["dataset=cifar10", f"dataset.root={tmp_path / 'flat'}"]).dataset, seed=0)
    assert len(data.test) == 40


def test_cifar_reader_refuses_code_in_pickles(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({b"data": Evil(), b"labels": []}))
    with pytest.raises(UserError, match="is not a CIFAR-10 batch .*refusing to load builtins.print"):
        read_cifar_batch(path)


def test_cifar_missing_names_the_layout(tmp_path):
    from trainctl.data.locate import check_available

    with pytest.raises(UserError, match=r"(?s)cifar-10-batches-py.*dataset.download=true"):
        check_available(compose(["dataset=cifar10", f"dataset.root={tmp_path}"]).dataset)


@pytest.mark.parametrize("in_memory", ["true", "false"])
def test_imagefolder_in_memory_and_streamed_give_the_same_batches(fake_images, in_memory):
    cfg = compose(["dataset=imagefolder", f"dataset.root={fake_images}", f"dataset.in_memory={in_memory}",
                   "dataset.image_size=[16,16]", "dataset.num_workers=0", "dataset.hflip=false"]).dataset
    data = build_dataset(cfg, seed=0)
    assert isinstance(data.train, Split if in_memory == "true" else StreamSplit)
    assert data.spec.class_names == ("circle", "square", "stripe") and data.spec.input_shape == (3, 16, 16)
    x, y = next(data.train.shuffled(4, data.train_transform, seed=0, epoch=0))
    assert x.shape == (4, 3, 16, 16) and x.dtype == torch.float32
    test_x = torch.cat([x for x, _ in data.test.ordered(5, data.eval_transform)])
    reference = build_dataset(OmegaConf.merge(cfg, {"in_memory": True}), seed=0)
    assert torch.equal(test_x, torch.cat([x for x, _ in reference.test.ordered(5, reference.eval_transform)]))
    ys = torch.cat([y for _, y in data.train.shuffled(4, data.train_transform, seed=0, epoch=0)])
    ref_ys = torch.cat([y for _, y in reference.train.shuffled(4, reference.train_transform, seed=0, epoch=0)])
    assert torch.equal(ys, ref_ys)  # same seeded order whether streamed or in memory


def test_imagefolder_streams_when_too_big(fake_images):
    cfg = compose(["dataset=imagefolder", f"dataset.root={fake_images}", "dataset.memory_limit_mb=1",
                   "dataset.image_size=[400,400]", "dataset.num_workers=0"]).dataset
    assert isinstance(build_dataset(cfg, seed=0).train, StreamSplit)


def test_imagefolder_without_test_folder(tmp_path):
    (tmp_path / "train" / "a").mkdir(parents=True)
    with pytest.raises(UserError, match="has no test/ folder"):
        build_dataset(compose(["dataset=imagefolder", f"dataset.root={tmp_path}"]).dataset, seed=0)


def test_sine_is_a_regression_task():
    data = build_dataset(compose(["dataset=sine"]).dataset, seed=0)
    assert data.spec.task == "regression" and data.spec.target_shape == (50, 1)
    assert torch.allclose(data.train.x ** 2 + data.train.y ** 2, torch.ones(1), atol=1e-5)  # sin² + cos² = 1


@pytest.mark.parametrize("streams", [None, 4], ids=["sequences", "streams"])
def test_sine_next_targets_are_the_inputs_one_step_later(streams):
    """`dataset.target=next`: the target of each step is the next step's input, as in next-value prediction;
    in streams, a window's last target is also the first input of its stream's next window."""
    overrides = ["dataset=sine", "dataset.target=next", "dataset.n_train=40", "dataset.length=12"]
    data = build_dataset(compose(overrides + ([f"dataset.streams={streams}"] if streams else [])).dataset, seed=0)
    close = 1e-3  # float32 sines of times in the hundreds (long streams) agree to about 1e-4
    for split in (data.train, data.val, data.test):
        assert torch.allclose(split.y[:, :-1], split.x[:, 1:], atol=close)
        assert not torch.allclose(split.y, split.x, atol=1e-2)
    if streams:
        assert torch.allclose(data.train.y[:-streams, -1], data.train.x[streams:, 0], atol=close)
    cos = build_dataset(compose(["dataset=sine"]).dataset, seed=0)  # the default is still sin → cos
    assert torch.allclose(cos.train.x ** 2 + cos.train.y ** 2, torch.ones(1), atol=1e-5)


def test_sine_frequencies_set_the_periods_per_sequence():
    """`dataset.frequencies=[1, 1]`: every sequence is one whole period, as the time-sequence example draws all
    its waves at one frequency; the default range gives sequences that end elsewhere than they start."""
    one = build_dataset(compose(["dataset=sine", "dataset.frequencies=[1,1]"]).dataset, seed=0)
    assert torch.allclose(one.train.x[:, 0], one.train.x[:, -1], atol=1e-5)
    mixed = build_dataset(compose(["dataset=sine"]).dataset, seed=0)
    assert (mixed.train.x[:, 0] - mixed.train.x[:, -1]).abs().max() > 0.5


def test_random_crop_shifts_each_image_within_the_padding():
    x = torch.arange(2 * 1 * 6 * 6, dtype=torch.uint8).view(2, 1, 6, 6)
    g = torch.Generator().manual_seed(0)
    out = random_crop(x, 2, g)
    assert out.shape == x.shape and out.dtype == torch.uint8
    again = random_crop(x, 2, torch.Generator().manual_seed(0))
    assert torch.equal(out, again)
    for i in range(2):  # every crop is a window of the zero-padded image
        padded = torch.nn.functional.pad(x[i], (2, 2, 2, 2))
        windows = [padded[:, r : r + 6, c : c + 6] for r in range(5) for c in range(5)]
        assert any(torch.equal(out[i], w) for w in windows)


def test_random_hflip_flips_some_images_whole():
    x = torch.arange(64 * 4, dtype=torch.float32).view(64, 1, 2, 2)
    out = random_hflip(x, torch.Generator().manual_seed(0))
    flipped = [torch.equal(o, xi.flip(-1)) for o, xi in zip(out, x)]
    kept = [torch.equal(o, xi) for o, xi in zip(out, x)]
    assert all(f or k for f, k in zip(flipped, kept)) and 10 < sum(flipped) < 54


def test_augmentation_is_seeded_per_epoch(fake_cifar):
    data = build_dataset(compose(["dataset=cifar10", f"dataset.root={fake_cifar}"]).dataset, seed=0)
    first = next(data.train.shuffled(8, data.train_transform, seed=0, epoch=0))[0]
    again = next(data.train.shuffled(8, data.train_transform, seed=0, epoch=0))[0]
    other = next(data.train.shuffled(8, data.train_transform, seed=0, epoch=1))[0]
    assert torch.equal(first, again) and not torch.equal(first, other)
    resumed = next(data.train.shuffled(8, data.train_transform, seed=0, epoch=0, start_step=1))[0]
    full = list(data.train.shuffled(8, data.train_transform, seed=0, epoch=0))
    assert torch.equal(resumed, full[1][0])  # a mid-epoch resume sees the same crops
