"""Per-step host cost, side by side in one process: trainctl's loop vs a minimal hand-written loop.

Small models on a GPU are bound by what the host does per step: Python, and one dispatch and kernel launch per
tensor operation. This measures that regime on the CPU, with a model that does almost no arithmetic (an MLP
784-8-10 at batch 8 on real Fashion-MNIST held in memory), so a step costs its dispatches:
  minimal   randperm, gather, scale and standardise, forward, cross entropy, backward, fused Adam
  trainctl  trainctl.engine.step.train_one_epoch on what trainctl builds from the same config (fused Adam too),
            with the default callbacks listening
It prints microseconds per step (medians of alternating rounds) and the tensor operations each loop dispatches
per step (counted with a TorchDispatchMode): on a GPU each is a kernel launch.

    python bench/step_overhead.py [--root /usr/share/datasets/fashion-mnist] [--steps 1000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from trainctl.callbacks import all_callbacks
from trainctl.components import build_dataset, build_model
from trainctl.config.compose import compose
from trainctl.data.splits import Split
from trainctl.engine.build import build_trainer
from trainctl.engine.step import train_one_epoch

BATCH = 8


class CountOps(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.ops = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops += 1
        return func(*args, **(kwargs or {}))


def minimal_loop(cfg: Any, x: torch.Tensor, y: torch.Tensor, spec: Any) -> Callable[[int], None]:
    model = build_model(cfg.model, spec)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)
    mean = torch.tensor(list(cfg.dataset.mean)).view(1, -1, 1, 1)
    std = torch.tensor(list(cfg.dataset.std)).view(1, -1, 1, 1)

    def steps(n: int) -> None:
        order = torch.randperm(len(y))
        for start in range(0, n * BATCH, BATCH):
            idx = order[start : start + BATCH]
            loss = F.cross_entropy(model(x[idx].float().div_(255.0).sub_(mean).div_(std)), y[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    return steps


def trainctl_loop(cfg: Any, data: Any, run_dir: Path) -> Callable[[int], None]:
    t = build_trainer(cfg, data, torch.device("cpu"), run_dir, all_callbacks(cfg))
    t.events.emit("on_fit_start", t)
    epoch = [0]

    def steps(n: int) -> None:
        t.batches, t.state.batches_in_epoch, t.state.partial = n, 0, None
        t.events.emit("on_epoch_start", t, epoch[0] + 1)
        train_one_epoch(t, epoch[0])
        epoch[0] += 1

    return steps


def per_step(steps: Callable[[int], None], n: int) -> tuple[float, float]:
    """(microseconds, dispatched operations) per step, after a warm-up."""
    steps(20)
    start = time.perf_counter()
    steps(n)
    micros = (time.perf_counter() - start) / n * 1e6
    counter = CountOps()
    with counter:
        steps(100)
    return micros, counter.ops / 100


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     allow_abbrev=False)
    parser.add_argument("--root", type=Path, default=Path("/usr/share/datasets/fashion-mnist"))
    parser.add_argument("--steps", type=int, default=1000, help="steps timed per loop and round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if not (args.root / "train-images-idx3-ubyte.gz").exists():
        sys.exit(f"no Fashion-MNIST .gz files in {args.root}: apt-get install dataset-fashion-mnist or pass --root")
    torch.set_num_threads(1)  # the arithmetic is negligible; one thread keeps the timing steady
    cfg = compose(["model=mlp", "model.hidden=[8]", "dataset=fashionmnist", f"dataset.root={args.root}",
                   "device=cpu", "optimizer=adam", "trainer.progress=false", f"trainer.batch_size={BATCH}",
                   f"trainer.epochs={2 * args.rounds + 2}"])
    data = build_dataset(cfg.dataset, cfg.seed)
    n_train = (args.steps + 100) * BATCH
    data.train = Split(data.train.x[:n_train], data.train.y[:n_train])
    print(f"torch {torch.__version__}, 1 thread, MLP 784-8-10, batch {BATCH}, {args.steps} steps/round")
    loops = {"minimal": minimal_loop(cfg, data.train.x, data.train.y, data.spec)}
    micros: dict[str, list[float]] = {"minimal": [], "trainctl": []}
    ops: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as scratch:
        loops["trainctl"] = trainctl_loop(cfg, data, Path(scratch))
        for r in range(args.rounds):
            for name, steps in loops.items():
                us, ops[name] = per_step(steps, args.steps)
                micros[name].append(us)
            print(f"round {r + 1}: " + "  ".join(f"{k} {v[-1]:.0f} us" for k, v in micros.items()))
    median = {k: statistics.median(v) for k, v in micros.items()}
    print("\nloop       us/step (median)  operations/step")
    for name in micros:
        print(f"{name:<10} {median[name]:>16.0f}  {ops[name]:>15.1f}")
    print(f"\ntrainctl steps/s / minimal steps/s = {median['minimal'] / median['trainctl']:.2f}x "
          f"({median['trainctl'] - median['minimal']:+.0f} us and {ops['trainctl'] - ops['minimal']:+.1f} "
          "operations per step)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
