"""The IDX reader on small files written in the real format, gzipped and raw."""

import gzip

import pytest
import torch

from trainctl.errors import UserError
from trainctl.data.idx import read_idx, write_idx


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize(
    "tensor",
    [
        torch.randint(0, 256, (7, 28, 28), dtype=torch.uint8),
        torch.randint(0, 10, (7,), dtype=torch.uint8),
        torch.arange(-6, 6, dtype=torch.int32).reshape(3, 4),
        torch.linspace(-1, 1, 10, dtype=torch.float32),
    ],
    ids=["images", "labels", "int32", "float32"],
)
def test_round_trip(tmp_path, suffix, tensor):
    path = tmp_path / f"data{suffix}"
    write_idx(path, tensor)
    loaded = read_idx(path)
    assert loaded.dtype == tensor.dtype and torch.equal(loaded, tensor)


def test_reads_the_published_header_layout(tmp_path):
    # Hand-written bytes as in the MNIST page: magic 0x00000803, then N, rows, cols big-endian, then pixels.
    raw = bytes([0, 0, 8, 3]) + (2).to_bytes(4, "big") + (2).to_bytes(4, "big") + (3).to_bytes(4, "big")
    raw += bytes(range(12))
    path = tmp_path / "x-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(raw))
    assert read_idx(path).tolist() == [[[0, 1, 2], [3, 4, 5]], [[6, 7, 8], [9, 10, 11]]]


def test_big_endian_multibyte_values(tmp_path):
    raw = bytes([0, 0, 0x0C, 1]) + (2).to_bytes(4, "big") + (1).to_bytes(4, "big", signed=True)
    raw += (-2).to_bytes(4, "big", signed=True)
    path = tmp_path / "ints"
    path.write_bytes(raw)
    assert read_idx(path).tolist() == [1, -2]


def test_truncated_file_names_the_file(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte"
    write_idx(path, torch.zeros(4, 28, 28, dtype=torch.uint8))
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(UserError, match=r"train-images-idx3-ubyte holds 3126 data bytes .* truncated or corrupt"):
        read_idx(path)


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"garbage!", "is not an IDX file"), (b"", "is not an IDX file"),
     (bytes([0, 0, 8, 3, 0, 0]), "truncated")],
)
def test_bad_headers(tmp_path, content, message):
    path = tmp_path / "bad-idx"
    path.write_bytes(content)
    with pytest.raises(UserError, match=message):
        read_idx(path)


def test_corrupt_gzip_names_the_file(tmp_path):
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    path.write_bytes(b"\x1f\x8b\x08\x00not really gzip")
    with pytest.raises(UserError, match=r"cannot read .*train-labels-idx1-ubyte.gz"):
        read_idx(path)
