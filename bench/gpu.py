"""GPU speed, side by side in one process on one CUDA GPU: images/s and ratios, and time to accuracy.

  loop      the seed CNN (`model=cnn`) with fused Adam at batch 64 and 512 on real Fashion-MNIST held on the GPU
            as uint8, whole epochs each:
              trainctl   trainctl.engine.step.train_one_epoch with the default callbacks listening, with its
                         defaults: whole-step CUDA graphs (trainer.cuda_graphs=auto)
              eager      the same with trainer.cuda_graphs=false: the step launched kernel by kernel
              minimal    a hand-written loop: on-GPU randperm, gather, scale and standardise, step
              lightning  PyTorch Lightning's fit on the same model, optimizer and GPU batches, with logging,
                         checkpointing, progress bar and model summary off
  airbench  airbench94's network (the `airbench` package, make_net94) at its batch size 1024 on CIFAR-shaped
            uint8 data generated on the GPU: airbench's own train94 loop vs trainctl's loop training that network
            (bf16 autocast, channels-last, crop+flip on the GPU), with whole-step CUDA graphs and eagerly
  fashion   time to accuracy: `trainctl train experiment=fashionmnist_fast seed=S` on real Fashion-MNIST, one
            process per seed: test accuracy, seconds from the first training step to the test metric
            (metrics.json time/train_to_test_s), and the whole process's seconds

Rounds alternate between the contenders so that the GPU's clocks and the host's noise hit all alike; the median
of the rounds is reported.

    python bench/gpu.py [--root DIR] [--sections loop,airbench,fashion] [--rounds 3] [--seeds 5] [--out FILE]
    python bench/gpu.py --device cpu --limit 2048 --rounds 1 --epochs 1 --seeds 2 \
        --fashion-overrides "trainer.epochs=1 dataset.train_per_class=20 trainer.precision=32"   # a dry run
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from trainctl.callbacks import all_callbacks
from trainctl.config.compose import compose
from trainctl.data.catalog import build_dataset
from trainctl.data.splits import DataBundle, DataSpec, Split
from trainctl.data.transforms import image_transforms
from trainctl.engine.build import build_trainer, deterministic_mode
from trainctl.engine.step import train_one_epoch

# The device every contender runs on: CUDA for the figures; `--device cpu` only checks that the script works.
DEVICE = torch.device("cuda")


def synchronize() -> None:
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()


def seconds_of(work: Callable[[], Any]) -> float:
    """Wall seconds of `work` with the GPU idle before and finished after."""
    synchronize()
    start = time.perf_counter()
    work()
    synchronize()
    return time.perf_counter() - start


def present(module: str) -> bool:
    """Whether a peer's package is installed: required on a GPU, skipped (with a note) in a CPU dry run."""
    if importlib.util.find_spec(module) is not None:
        return True
    if DEVICE.type == "cuda":
        sys.exit(f"bench/gpu.py: {module} is not installed (bench/gpu_prepare.sh carries it)")
    print(f"  (dry run: {module} is not installed, so its contender is left out)", flush=True)
    return False


def ratios(median: dict[str, float], of: str, to: tuple[str, ...]) -> dict[str, float]:
    return {f"{of}/{peer}": median[of] / median[peer] for peer in to}


def median_rates(contenders: dict[str, Callable[[], float]], rounds: int, label: str) -> dict[str, float]:
    rates: dict[str, list[float]] = {name: [] for name in contenders}
    for r in range(rounds):
        for name, measure in contenders.items():
            rates[name].append(measure())
        print(f"  {label} round {r + 1}: " + "  ".join(f"{k} {v[-1]:,.0f}" for k, v in rates.items()), flush=True)
    return {name: statistics.median(values) for name, values in rates.items()}


# ---------------------------------------------------------------------------------------------------- loop
def gpu_batches(x: torch.Tensor, y: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, batch: int,
                epochs: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """What a careful hand-written GPU loop feeds its model: a randperm per epoch on the GPU, a gather, then
    scale and standardise on the GPU (the same arithmetic as trainctl's transform)."""
    for _ in range(epochs):
        order = torch.randperm(len(y), device=x.device)
        for start in range(0, len(y), batch):
            idx = order[start : start + batch]
            yield x[idx].float().div_(255.0).sub_(mean).div_(std), y[idx]


def minimal_loop(model: nn.Module, batches: Iterator) -> None:
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)
    for x, y in batches:
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()


class EpochOfBatches:
    """An epoch of `gpu_batches` each time Lightning iterates (a plain list would be read as many loaders)."""

    def __init__(self, make: Callable[[], Iterator], length: int) -> None:
        self.make, self.length = make, length

    def __iter__(self) -> Iterator:
        return self.make()

    def __len__(self) -> int:
        return self.length


def lightning_fit(model: nn.Module, batches: EpochOfBatches, steps: int) -> None:
    import logging

    import lightning.pytorch as pl

    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)  # its banner per fit is not the benchmark's

    class Module(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def training_step(self, batch, batch_idx):
            x, y = batch
            return F.cross_entropy(self.model(x), y)

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=1e-3, fused=True)

    trainer = pl.Trainer(accelerator="gpu" if DEVICE.type == "cuda" else "cpu", devices=1, max_steps=steps, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                         limit_val_batches=0, precision="32-true")
    trainer.fit(Module(), train_dataloaders=batches)


def loop_section(root: Path, rounds: int, epochs: int, scratch: Path, limit: int | None) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for batch in (64, 512):
        overrides = ["model=cnn", "dataset=fashionmnist", f"dataset.root={root}", f"device={DEVICE.type}",
                     "trainer.progress=false", f"trainer.batch_size={batch}", f"trainer.epochs={epochs + 1}"]
        cfg = compose(overrides)
        data = build_dataset(cfg.dataset, cfg.seed).to(DEVICE)
        if limit:
            data.train = Split(data.train.x[:limit], data.train.y[:limit])
        x, y = data.train.x, data.train.y
        mean = torch.tensor(list(cfg.dataset.mean), device=DEVICE).view(1, -1, 1, 1)
        std = torch.tensor(list(cfg.dataset.std), device=DEVICE).view(1, -1, 1, 1)
        steps = epochs * math.ceil(len(y) / batch)
        images = epochs * len(y)

        def fresh_model() -> nn.Module:
            from trainctl.components import build_model
            return build_model(cfg.model, data.spec).to(DEVICE)

        def minimal() -> float:
            model = fresh_model()
            minimal_loop(model, gpu_batches(x, y, mean, std, batch, 1))  # warm-up epoch
            return images / seconds_of(lambda: minimal_loop(model, gpu_batches(x, y, mean, std, batch, epochs)))

        def lightning() -> float:
            batches = EpochOfBatches(lambda: gpu_batches(x, y, mean, std, batch, 1), math.ceil(len(y) / batch))
            lightning_fit(fresh_model(), batches, steps // 4)  # warm-up fit (Lightning builds its loop per fit)
            return images / seconds_of(lambda: lightning_fit(fresh_model(), batches, steps))

        def trainctl() -> float:
            return images / seconds_of_trainctl(cfg, data, scratch, epochs)

        def eager() -> float:
            return images / seconds_of_trainctl(eager_cfg, data, scratch, epochs)

        eager_cfg = compose([*overrides, "trainer.cuda_graphs=false"])
        print(f"loop: seed cnn, batch {batch}, {epochs} epochs of {len(y):,} images per measurement", flush=True)
        contenders = {"trainctl": trainctl, "eager": eager, "minimal": minimal, "lightning": lightning}
        if not present("lightning"):
            del contenders["lightning"]
        median = median_rates(contenders, rounds, f"batch {batch}")
        peers = tuple(k for k in ("minimal", "lightning") if k in median)
        results[f"batch_{batch}"] = {**median, **ratios(median, "trainctl", (*peers, "eager")),
                                     **ratios(median, "eager", peers)}
    return results


def seconds_of_trainctl(cfg: Any, data: DataBundle, scratch: Path, epochs: int) -> float:
    """Seconds trainctl's own loop (with its default callbacks listening) takes for `epochs` epochs, after a
    warm-up epoch that compiles kernels, tunes cuDNN for every batch shape and fills caches."""
    with deterministic_mode(False):
        t = build_trainer(cfg, data, DEVICE, Path(tempfile.mkdtemp(dir=scratch)), all_callbacks(cfg))
        t.events.emit("on_fit_start", t)
        t.events.emit("on_epoch_start", t, 1)
        train_one_epoch(t, 0)

        def timed() -> None:
            for epoch in range(1, epochs + 1):
                t.state.batches_in_epoch, t.state.partial = 0, None  # as fit starts each epoch
                t.events.emit("on_epoch_start", t, epoch + 1)
                train_one_epoch(t, epoch)

        seconds = seconds_of(timed)
        t.events.emit("on_exception", t, KeyboardInterrupt())  # closes the event files
    return seconds


# ------------------------------------------------------------------------------------------------ airbench
class Airbench94Net(nn.Module):
    """airbench94's network as `airbench.make_net94` builds it, kept in float32: trainctl's bf16 autocast casts
    per operation (airbench itself stores the weights in fp16)."""

    def __init__(self, **unused: Any) -> None:
        super().__init__()
        from unittest import mock

        from airbench import make_net94

        if DEVICE.type == "cuda":
            self.net = make_net94().float()
        else:  # a dry run: make_net94 moves its network with .cuda(), which a CPU-only torch cannot do
            with mock.patch.object(nn.Module, "cuda", lambda module, *args, **kwargs: module):
                self.net = make_net94().float()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def cifar_shaped(n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    images = torch.randint(0, 256, (n, 32, 32, 3), dtype=torch.uint8, device=DEVICE, generator=generator)
    labels = torch.randint(0, 10, (n,), device=DEVICE, generator=generator)
    return images, labels


def airbench_section(rounds: int, epochs: int, scratch: Path, limit: int | None) -> dict[str, Any]:
    import airbench
    from airbench import lib_airbench94

    generator = torch.Generator(device=DEVICE).manual_seed(0)
    train_x, train_y = cifar_shaped(limit or 50_000, generator)
    test_x, test_y = cifar_shaped(10_000, generator)
    folder = scratch / "airbench"
    (folder / "cifar10").mkdir(parents=True)
    classes = [str(k) for k in range(10)]
    torch.save({"images": train_x, "labels": train_y, "classes": classes}, folder / "cifar10" / "train.pt")
    torch.save({"images": test_x, "labels": test_y, "classes": classes}, folder / "cifar10" / "test.pt")
    batch = lib_airbench94.hyp["opt"]["batch_size"]

    def own_loop() -> float:
        cwd = os.getcwd()
        os.chdir(folder)  # airbench reads cifar10/{train,test}.pt from the working directory
        try:
            loader = airbench.CifarLoader("cifar10", train=True, batch_size=batch, aug=lib_airbench94.hyp["aug"],
                                          altflip=True)
            airbench.train94(loader, epochs=0.2, verbose=False)  # warm-up (cuDNN's autotuner, allocations)
            # Each train94 call also loads the test set and builds and whitens a network before it trains: a
            # one-step call timed beside the measured one is subtracted, leaving airbench's training loop.
            one_step = 1 / len(loader)
            setup = seconds_of(lambda: airbench.train94(loader, epochs=one_step, verbose=False))
            seconds = seconds_of(lambda: airbench.train94(loader, epochs=epochs, verbose=False))
        finally:
            os.chdir(cwd)
        return (math.ceil(len(loader) * epochs) - 1) * batch / max(seconds - setup, 1e-9)

    # One-cycle on the lr only, at airbench's fixed momentum: a momentum cycled every step would keep the step
    # out of a CUDA graph.
    overrides = ["model=mlp", "+model._target_=__main__.Airbench94Net", "dataset=cifar10", f"device={DEVICE.type}",
                 "optimizer=sgd", "optimizer.lr=0.01", "optimizer.momentum=0.85", "optimizer.nesterov=true",
                 "optimizer.weight_decay=5e-4", "scheduler=onecycle", "scheduler.cycle_momentum=false",
                 "loss.label_smoothing=0.2", f"trainer.batch_size={batch}", "trainer.eval_batch_size=2000",
                 "trainer.precision=bf16", "trainer.channels_last=true", "trainer.progress=false",
                 f"trainer.epochs={epochs + 1}", "dataset.crop_padding=2", "dataset.hflip=true", "dataset.system_dirs=[]"]
    cfg = compose(overrides)
    eager_cfg = compose([*overrides, "trainer.cuda_graphs=false"])
    mean, std = list(cfg.dataset.mean), list(cfg.dataset.std)
    train_tf, eval_tf = image_transforms(mean, std, True, crop_padding=2, hflip=True)
    nchw = train_x.permute(0, 3, 1, 2).contiguous()
    test_nchw = test_x.permute(0, 3, 1, 2).contiguous()
    data = DataBundle(Split(nchw, train_y), Split(test_nchw[:1000], test_y[:1000]), Split(test_nchw, test_y),
                      DataSpec((3, 32, 32), 10), train_tf, eval_tf)

    def trainctl() -> float:
        return epochs * len(train_y) / seconds_of_trainctl(cfg, data, scratch, epochs)

    def eager() -> float:
        return epochs * len(train_y) / seconds_of_trainctl(eager_cfg, data, scratch, epochs)

    print(f"airbench: airbench94's network, batch {batch}, {epochs} epochs of {len(train_y):,} CIFAR-shaped "
          "images per measurement", flush=True)
    if DEVICE.type != "cuda":  # airbench's loop times itself with CUDA events
        median = median_rates({"trainctl": trainctl, "eager": eager}, rounds, "airbench94 (dry run: no airbench)")
        return {**median, **ratios(median, "trainctl", ("eager",))}
    median = median_rates({"trainctl": trainctl, "eager": eager, "airbench": own_loop}, rounds, "airbench94")
    return {**median, **ratios(median, "trainctl", ("airbench", "eager")), **ratios(median, "eager", ("airbench",))}


# ------------------------------------------------------------------------------------------------- fashion
def fashion_section(root: Path, seeds: int, scratch: Path, extra: list[str]) -> dict[str, Any]:
    rows = []
    print(f"fashion: experiment=fashionmnist_fast {' '.join(extra)}, {seeds} seeds", flush=True)
    for seed in range(seeds):
        run = scratch / f"fashion-{seed}-{time.time_ns()}"
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "trainctl", "train", "experiment=fashionmnist_fast",
                               f"seed={seed}", f"dataset.root={root}", f"device={DEVICE.type}", "trainer.progress=false",
                               f"hydra.run.dir={run}", *extra], capture_output=True, text=True)
        process_s = time.perf_counter() - start
        if proc.returncode != 0:
            print(proc.stdout[-2000:] + proc.stderr[-3000:])
            raise SystemExit(f"seed {seed}: trainctl exited {proc.returncode}")
        metrics = json.loads((run / "metrics.json").read_text())
        rows.append({"seed": seed, "test_acc": metrics["test/acc"], "train_to_test_s": metrics["time/train_to_test_s"],
                     "process_s": process_s, "epochs": metrics["epochs"]})
        print(f"  seed {seed}: test acc {rows[-1]['test_acc']:.4f}  first step to test metric "
              f"{rows[-1]['train_to_test_s']:.2f} s  whole process {process_s:.2f} s", flush=True)

    def mean_sd(key: str) -> tuple[float, float]:
        values = [r[key] for r in rows]
        return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0

    return {"rows": rows, **{k: mean_sd(k) for k in ("test_acc", "train_to_test_s", "process_s")}}


def ratio_text(row: dict[str, float]) -> str:
    """trainctl is trainctl with its defaults (whole-step CUDA graphs on a GPU); eager is trainctl without them."""
    return "  ".join(f"{k} {v:.2f}x" for k, v in row.items() if "/" in k)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     allow_abbrev=False)
    parser.add_argument("--root", type=Path, default=Path("/usr/share/datasets/fashion-mnist"))
    parser.add_argument("--sections", default="loop,airbench,fashion")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=2, help="epochs per throughput measurement")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--fashion-overrides", default="", help="extra overrides for the fashion runs")
    parser.add_argument("--out", type=Path, help="also write the results here as JSON")
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"],
                        help="cpu: a dry run that checks the script itself (figures meaningless; airbench's own loop "
                             "is left out, it needs CUDA)")
    parser.add_argument("--limit", type=int, help="train on the first N images only (dry runs)")
    args = parser.parse_args()
    global DEVICE
    DEVICE = torch.device(args.device)
    if DEVICE.type == "cuda" and not torch.cuda.is_available():
        sys.exit("bench/gpu.py needs a CUDA GPU; torch sees none (bench/throughput.py compares loops on a CPU; "
                 "--device cpu only checks this script)")
    sections = args.sections.split(",")
    if {"loop", "fashion"} & set(sections) and not (args.root / "train-images-idx3-ubyte.gz").exists():
        sys.exit(f"no Fashion-MNIST .gz files in {args.root}: apt-get install dataset-fashion-mnist or pass --root")
    args.root = args.root.resolve()
    torch.backends.cudnn.benchmark = True  # for every contender (trainctl turns it on for its runs)
    device = torch.cuda.get_device_name() if DEVICE.type == "cuda" else f"CPU dry run ({os.cpu_count()} cores)"
    print(f"{device}, torch {torch.__version__}, CUDA {torch.version.cuda}", flush=True)
    results: dict[str, Any] = {"device": device, "torch": torch.__version__}
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        for section in sections:
            if section == "loop":
                results["loop"] = loop_section(args.root, args.rounds, args.epochs, scratch, args.limit)
            elif section == "airbench":
                if present("airbench"):
                    results["airbench"] = airbench_section(args.rounds, args.epochs, scratch, args.limit)
            elif section == "fashion":
                extra = args.fashion_overrides.split()
                results["fashion"] = fashion_section(args.root, args.seeds, scratch, extra)
            else:
                sys.exit(f"unknown section {section}: loop, airbench or fashion")
            if args.out:  # after each section: a run cut short by its time limit keeps what it measured
                args.out.write_text(json.dumps(results, indent=2))
    print(f"\n{device}, torch {torch.__version__}")
    for batch, row in results.get("loop", {}).items():
        print(f"seed cnn {batch}: " + "  ".join(f"{k} {v:,.0f}" for k, v in row.items() if "/" not in k)
              + " images/s;  " + ratio_text(row))
    if "airbench" in results:
        row = results["airbench"]
        print("airbench94 net: " + "  ".join(f"{k} {v:,.0f}" for k, v in row.items() if "/" not in k)
              + " images/s;  " + ratio_text(row))
    if "fashion" in results:
        row = results["fashion"]
        print(f"fashionmnist_fast over {len(row['rows'])} seeds: test acc {row['test_acc'][0]:.4f} "
              f"(sd {row['test_acc'][1]:.4f}), first step to test metric {row['train_to_test_s'][0]:.2f} s "
              f"(sd {row['train_to_test_s'][1]:.2f}), whole process {row['process_s'][0]:.2f} s "
              f"(sd {row['process_s'][1]:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
