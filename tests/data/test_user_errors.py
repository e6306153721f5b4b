"""Mistakes in data a user can make, each one message naming the culprit and the fix: labels outside the
classes, unreadable folders and files, missing MNIST, generated sets too big for memory."""

import pickle

import pytest
import torch
from omegaconf import OmegaConf

from trainctl.config.compose import compose
from trainctl.data import memory
from trainctl.data.catalog import build_dataset
from trainctl.data.idx import write_idx
from trainctl.data.locate import availability, check_available, locate_files
from trainctl.errors import UserError

from conftest import NO_SYSTEM_DATA, make_cifar_dataset, make_idx_dataset, run_cli, run_dirs
from denied import deny  # noqa: F401  (a fixture)


def file_cfg(root, name="fashionmnist", system_dirs=()):
    cfg = compose([f"dataset={name}", f"dataset.root={root}", NO_SYSTEM_DATA]).dataset
    return OmegaConf.merge(cfg, {"system_dirs": [str(d) for d in system_dirs]})


def poison_labels(path, values):
    """Rewrite an IDX label file with `values` at its first positions."""
    from trainctl.data.idx import read_idx

    labels = read_idx(path).clone()
    labels[: len(values)] = torch.tensor(values, dtype=labels.dtype)
    write_idx(path, labels)


# ---- labels outside the classes -------------------------------------------------------------------------------
@pytest.mark.parametrize(("split", "values"), [("train", [255]), ("t10k", [10, 12, 255])])
def test_idx_label_outside_the_classes_names_file_values_and_range(tmp_path, split, values):
    root = make_idx_dataset(tmp_path / "d", n_train=120, n_test=40)
    poison_labels(root / f"{split}-labels-idx1-ubyte.gz", values)
    shown = ", ".join(str(v) for v in values)
    pattern = (rf"{split}-labels-idx1-ubyte.gz holds {len(values)} label\(s\) outside fashionmnist's 10 classes "
               rf"\(valid: 0 to 9\); bad value\(s\): {shown}\.")
    with pytest.raises(UserError, match=pattern):
        build_dataset(file_cfg(root), seed=0)


def test_idx_float_labels_are_refused(tmp_path):
    root = make_idx_dataset(tmp_path / "d", n_train=120, n_test=40)
    write_idx(root / "train-labels-idx1-ubyte.gz", torch.arange(120, dtype=torch.float32) % 10)
    with pytest.raises(UserError, match=r"train-labels-idx1-ubyte.gz holds torch.float32 labels"):
        build_dataset(file_cfg(root), seed=0)


def test_valid_labels_give_exactly_the_datasets_classes(tmp_path):
    root = make_idx_dataset(tmp_path / "d", n_train=120, n_test=40)
    spec = build_dataset(file_cfg(root, "mnist"), seed=0).spec
    assert spec.num_classes == 10 and spec.class_names == tuple("0123456789")


def test_cifar_label_outside_the_classes(tmp_path):
    root = make_cifar_dataset(tmp_path / "c", n_per_batch=20)
    path = root / "data_batch_3"
    batch = pickle.loads(path.read_bytes())
    batch[b"labels"][5] = 255
    path.write_bytes(pickle.dumps(batch, protocol=2))
    with pytest.raises(UserError, match=r"data_batch_3 holds 1 label\(s\) outside cifar10's 10 classes "
                                        r"\(valid: 0 to 9\); bad value\(s\): 255"):
        build_dataset(file_cfg(root, "cifar10"), seed=0)


# ---- unreadable folders and files ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["fashionmnist", "cifar10"])
def test_unreadable_root_is_named(tmp_path, deny, name):
    root = tmp_path / "data"
    make_idx_dataset(root) if name == "fashionmnist" else make_cifar_dataset(root, n_per_batch=10)
    deny(root)
    message = rf"cannot read {root} \(from dataset.root\): permission denied\. Fix: .*chmod -R a\+rX {root}\)"
    with pytest.raises(UserError, match=message):
        check_available(file_cfg(root, name))
    with pytest.raises(UserError, match=message):
        build_dataset(file_cfg(root, name), seed=0)
    assert "permission denied" in availability(file_cfg(root, name))  # `trainctl doctor` says so, no traceback


def test_unreadable_parent_of_root_is_the_culprit(tmp_path, deny):
    make_idx_dataset(tmp_path / "secret" / "data")
    deny(tmp_path / "secret")
    with pytest.raises(UserError, match=rf"permission denied on {tmp_path / 'secret'}\. .*chmod a\+rX {tmp_path / 'secret'}\)"):
        check_available(file_cfg(tmp_path / "secret" / "data"))


def test_unreadable_system_dir_is_named(tmp_path, deny):
    system = deny(make_idx_dataset(tmp_path / "usr-share"))
    with pytest.raises(UserError, match=rf"cannot read {system} \(from dataset.system_dirs\)"):
        locate_files(file_cfg(tmp_path / "empty", system_dirs=[system]))
    make_idx_dataset(tmp_path / "empty")  # the root comes first: the system dir is never looked at
    assert locate_files(file_cfg(tmp_path / "empty", system_dirs=[system]))["train_images"].parent == tmp_path / "empty"


@pytest.mark.parametrize(("name", "file"), [("fashionmnist", "train-labels-idx1-ubyte.gz"), ("cifar10", "test_batch")])
def test_unreadable_data_file_is_named(tmp_path, deny, name, file):
    root = tmp_path / "data"
    make_idx_dataset(root) if name == "fashionmnist" else make_cifar_dataset(root, n_per_batch=10)
    deny(root / file)
    with pytest.raises(UserError, match=rf"cannot read {root / file}: permission denied\. Fix: .*chmod a\+r"):
        build_dataset(file_cfg(root, name), seed=0)


# ---- where MNIST comes from -----------------------------------------------------------------------------------
def test_missing_mnist_points_at_real_sources(tmp_path):
    with pytest.raises(UserError) as err:
        check_available(file_cfg(tmp_path / "nowhere", "mnist"))
    text = str(err.value)
    assert "dataset-mnist" not in text  # Debian has no such package (`apt-cache search mnist`)
    assert "dataset.download=true" in text and "https://ossci-datasets.s3.amazonaws.com/mnist/" in text
    assert f"put the files in {tmp_path / 'nowhere'} (the four .gz files from a mirror of " in text


# ---- data that cannot fit in memory ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["blobs", "sine"])
def test_generated_set_too_big_is_refused_before_allocating(name, monkeypatch):
    cfg = compose([f"dataset={name}", "dataset.n_train=10000000000"]).dataset
    monkeypatch.setattr(memory, "available_bytes", lambda: 8 * 10**9)
    with pytest.raises(UserError, match=r"dataset.n_train=10000000000 is too large: .* about [\d.]+ [GTP]B of memory"
                                        r".* 8.0 GB is available\. Fix: lower dataset.n_train to at most [\d,]+") as e:
        build_dataset(cfg, seed=0)
    suggested = int(str(e.value).split("at most ")[1].split(" ")[0].replace(",", ""))
    assert 2 <= suggested < 10**10
    memory.check_generated_fits(OmegaConf.merge(cfg, {"n_train": suggested}))  # the suggestion fits
    with pytest.raises(UserError, match="is too large"):
        check_available(cfg)  # refused in the CLI's preflight too, before any run directory exists


def test_huge_test_set_names_n_test(monkeypatch):
    monkeypatch.setattr(memory, "available_bytes", lambda: 10**9)
    with pytest.raises(UserError, match=r"dataset.n_test=2000000000 is too large.*lower dataset.n_test"):
        check_available(compose(["dataset=blobs", "dataset.n_test=2000000000"]).dataset)


def test_available_memory_is_known_here():
    available = memory.available_bytes()
    assert available is not None and 10**7 < available < 2**50


@pytest.mark.parametrize("failure", ["MemoryError", "torch"])
def test_allocation_failure_becomes_a_user_error(failure, monkeypatch):
    import trainctl.data.generated as generated

    def fail(*args, **kwargs):
        if failure == "MemoryError":
            raise MemoryError()
        return torch.empty(2**58, dtype=torch.uint8)  # a real allocator failure, refused at once: 256 PiB

    monkeypatch.setattr(generated, "_blobs", fail)
    with pytest.raises(UserError, match=r"not enough memory to build the 'blobs' dataset .*Fix: lower "
                                        r"dataset.n_train / dataset.n_test"):
        build_dataset(compose(["dataset=blobs"]).dataset, seed=0)


def test_other_runtime_errors_are_not_disguised(monkeypatch):
    import trainctl.data.generated as generated

    def fail(*args, **kwargs):
        raise RuntimeError("shape mismatch")

    monkeypatch.setattr(generated, "_blobs", fail)
    with pytest.raises(RuntimeError, match="shape mismatch"):
        build_dataset(compose(["dataset=blobs"]).dataset, seed=0)


# ---- through the real CLI -------------------------------------------------------------------------------------
def test_cli_bad_label_and_huge_n_train_exit_2_and_write_nothing(tmp_path):
    root = make_idx_dataset(tmp_path / "d", n_train=120, n_test=40)
    poison_labels(root / "train-labels-idx1-ubyte.gz", [255])
    small = ["trainer.epochs=1", "device=cpu", "trainer.progress=false"]
    for args, message in (
        (["dataset=fashionmnist", f"dataset.root={root}", NO_SYSTEM_DATA, "model=mlp"],
         "train-labels-idx1-ubyte.gz holds 1 label(s) outside fashionmnist's 10 classes (valid: 0 to 9)"),
        (["dataset=blobs", "dataset.n_train=10000000000"], "dataset.n_train=10000000000 is too large"),
    ):
        proc = run_cli(["train", *args, *small], tmp_path)
        text = " ".join(proc.stderr.split())
        assert proc.returncode == 2, proc.stderr
        assert message in text and "Traceback" not in text
        assert run_dirs(tmp_path) == []


def test_dataset_too_big_for_the_device_is_a_user_error():
    from trainctl.data.splits import DataBundle, DataSpec, Split

    class NoRoom(Split):
        def to(self, device):
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    small = Split(torch.zeros(4, 2), torch.zeros(4, dtype=torch.long))
    bundle = DataBundle(NoRoom(torch.zeros(1000, 2), torch.zeros(1000, dtype=torch.long)), small, small,
                        DataSpec((2,), 2))
    with pytest.raises(UserError, match=r"the dataset \(16.1 KB\) does not fit in the memory of cuda: CUDA out of "
                                        r"memory\. Tried to allocate 20.00 GiB\. Fix: use less data .*device=cpu"):
        bundle.to(torch.device("cuda"))
