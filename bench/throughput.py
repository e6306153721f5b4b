"""Training throughput, side by side in one process: trainctl's loop vs the quickstart DataLoader vs a minimal loop.

All three train the seed CNN (trainctl's `model=cnn`) with Adam at batch 64 on real Fashion-MNIST:
  quickstart  torchvision.datasets.FashionMNIST(transform=ToTensor()) through a DataLoader (the PyTorch tutorial)
  minimal     a hand-written loop over in-memory uint8 tensors: randperm, slice, float, step
  trainctl    trainctl.engine.step.train_one_epoch on the data, model and optimizer trainctl builds from its
              config, with the default callbacks (console, TensorBoard, checkpointing) listening
Rounds alternate between the three so machine noise hits all alike; the median images/s of each is reported.

    python bench/throughput.py [--root /usr/share/datasets/fashion-mnist] [--images 20000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import gzip
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from trainctl.callbacks import all_callbacks
from trainctl.components import build_dataset, build_model
from trainctl.config.compose import compose
from trainctl.engine.build import build_trainer
from trainctl.engine.step import train_one_epoch


def torchvision_root(source: Path, scratch: Path) -> Path:
    """torchvision wants the raw (not gzipped) files in <root>/FashionMNIST/raw/."""
    raw = scratch / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for gz in source.glob("*-ubyte.gz"):
        with gzip.open(gz) as src, open(raw / gz.name[:-3], "wb") as dst:
            shutil.copyfileobj(src, dst)
    return scratch


def timed(step_batches, model, optimizer, loss_fn, images: int) -> float:
    """images/s of plain training steps over `images` samples (after 20 warm-up steps)."""
    seen, start = 0, None
    for i, (x, y) in enumerate(step_batches):
        if i == 20:
            seen, start = 0, time.perf_counter()
        loss = loss_fn(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        seen += y.shape[0]
        if start is not None and seen >= images:
            break
    return seen / (time.perf_counter() - start)


def forever(make_epoch):
    while True:
        yield from make_epoch()


def quickstart(cfg, root: Path, images: int) -> float:
    from torch.utils.data import DataLoader
    from torchvision import datasets
    from torchvision.transforms import ToTensor

    data = datasets.FashionMNIST(root=str(root), train=True, download=False, transform=ToTensor())
    loader = DataLoader(data, batch_size=64, shuffle=True)
    model, optimizer, loss_fn = plain_parts(cfg)
    return timed(forever(lambda: iter(loader)), model, optimizer, loss_fn, images)


def plain_parts(cfg):
    """The same network as trainctl's, with the optimizer a tutorial would write (no fused kernel)."""
    model = build_model(cfg.model, build_dataset(cfg.dataset, 0).spec)
    return model, torch.optim.Adam(model.parameters(), lr=1e-3), nn.CrossEntropyLoss()


def minimal(cfg, images: int) -> float:
    data = build_dataset(cfg.dataset, 0)
    x_all, y_all = data.train.x, data.train.y

    def epoch():
        order = torch.randperm(len(y_all))
        for i in range(0, len(y_all), 64):
            idx = order[i : i + 64]
            yield x_all[idx].float().div(255), y_all[idx]

    model, optimizer, loss_fn = plain_parts(cfg)
    return timed(forever(epoch), model, optimizer, loss_fn, images)


def trainctl_loop(cfg, images: int, run_dir: Path) -> float:
    """trainctl's own epoch function (engine.step.train_one_epoch) with the default callbacks listening,
    capped to the same number of images."""
    data = build_dataset(cfg.dataset, cfg.seed)
    t = build_trainer(cfg, data, torch.device("cpu"), run_dir, all_callbacks(cfg))
    t.events.emit("on_fit_start", t)
    t.batches = 20
    t.events.emit("on_epoch_start", t, 1)
    train_one_epoch(t, 0)  # warm-up
    t.batches = images // cfg.trainer.batch_size
    t.events.emit("on_epoch_start", t, 2)
    _, rate = train_one_epoch(t, 1)
    t.events.emit("on_exception", t, KeyboardInterrupt())  # closes the event file; nothing else to finish
    return rate


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     allow_abbrev=False)
    parser.add_argument("--root", type=Path, default=Path("/usr/share/datasets/fashion-mnist"))
    parser.add_argument("--images", type=int, default=20000, help="images timed per method and round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if not (args.root / "train-images-idx3-ubyte.gz").exists():
        sys.exit(f"no Fashion-MNIST .gz files in {args.root}: apt-get install dataset-fashion-mnist or pass --root")
    cfg = compose(["model=cnn", "dataset=fashionmnist", f"dataset.root={args.root}", "device=cpu",
                   "trainer.progress=false", "trainer.batch_size=64"])
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device cpu, {args.images} images/round")
    rates: dict[str, list[float]] = {"quickstart": [], "minimal": [], "trainctl": []}
    with tempfile.TemporaryDirectory() as scratch:
        tv_root = torchvision_root(args.root, Path(scratch))
        for r in range(args.rounds):
            rates["quickstart"].append(quickstart(cfg, tv_root, args.images))
            rates["minimal"].append(minimal(cfg, args.images))
            rates["trainctl"].append(trainctl_loop(cfg, args.images, Path(scratch) / f"run{r}"))
            print(f"round {r + 1}: " + "  ".join(f"{k} {v[-1]:,.0f}" for k, v in rates.items()))
    median = {k: statistics.median(v) for k, v in rates.items()}
    print("\nmethod       images/s (median)")
    for name, value in median.items():
        print(f"{name:<12} {value:>10,.0f}")
    print(f"\ntrainctl / quickstart = {median['trainctl'] / median['quickstart']:.2f}x")
    print(f"trainctl / minimal    = {median['trainctl'] / median['minimal']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
