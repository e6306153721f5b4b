"""Start-up, side by side: what the commands a user types cost as whole processes, against `import torch`.

Each round runs every command once as a fresh process, in a rotating order, so machine noise hits all alike;
medians of the rounds are reported, as CPU seconds (user + system, from the kernel's accounting of children)
and wall seconds, with each command's ratio to the floor:

    floor      python -c "import torch"
    smoke      trainctl train experiment=smoke
    error      trainctl train trainer.epochs=abc          (a config error, exit 2)
    list       trainctl list
    eval       trainctl eval ckpt=<a smoke run>
    predict    trainctl predict ckpt=<a small image model> inputs=<one PNG>

Then the smoke run's phases: where its imports go, by top-level package (`python -X importtime`, one extra run),
and the run's own clock from metrics.json (`time/phases`: compose and validate, data, model build, first step,
test, pictures and writers; `exit` is the rest of the process's wall time, measured from here).

    python bench/startup.py [--rounds 5] [--baseline /path/to/other/python] [--only smoke,list]

`--baseline` runs the trainctl commands a second time per round with another interpreter (another checkout's
venv), alternated with this one: before and after a change, in one run. Setup (a smoke run to evaluate, a tiny
image model to predict with) is done once, untimed, in a temporary directory.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TINY_IMAGES = """
import sys
from pathlib import Path
import torch
from PIL import Image
from trainctl.data.idx import write_idx
root = Path(sys.argv[1]); root.mkdir(parents=True, exist_ok=True)
g = torch.Generator().manual_seed(0)
for prefix, n in (("train", 300), ("t10k", 100)):
    labels = torch.arange(n, dtype=torch.uint8) % 10
    images = torch.randint(0, 60, (n, 28, 28), generator=g, dtype=torch.uint8)
    for k in range(10):
        images[labels == k, 2 + 2 * k:4 + 2 * k, :] = 250
    write_idx(root / f"{prefix}-images-idx3-ubyte", images)
    write_idx(root / f"{prefix}-labels-idx1-ubyte", labels)
Image.fromarray(images[0].numpy()).save(root / "one.png")
"""


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(command: list[str], cwd: Path, expect: int = 0) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of one whole process."""
    cpu, wall = cpu_seconds(), time.perf_counter()
    proc = subprocess.run(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                          env={**os.environ, "COLUMNS": "120"})
    wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
    if proc.returncode != expect:
        sys.exit(f"{' '.join(command)} exited {proc.returncode} (expected {expect}):\n{proc.stderr[-2000:]}")
    return cpu, wall


def newest_run(cwd: Path) -> Path:
    return max((p for p in (cwd / "runs").iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime)


def setup(python: str, work: Path) -> tuple[Path, Path, Path]:
    """A smoke run (for eval), and a tiny mlp trained on generated 28x28 images with one of them as a PNG."""
    data = work / "images"
    subprocess.run([python, "-c", TINY_IMAGES, str(data)], check=True)
    smoke_dir = work / "setup-smoke"
    smoke_dir.mkdir()
    subprocess.run([python, "-m", "trainctl", "train", "experiment=smoke"], cwd=smoke_dir, check=True,
                   stdout=subprocess.DEVNULL)
    image_dir = work / "setup-image"
    image_dir.mkdir()
    subprocess.run([python, "-m", "trainctl", "train", "model=mlp", "dataset=fashionmnist", f"dataset.root={data}",
                    "dataset.system_dirs=[]", "dataset.download=false", "trainer.epochs=1", "trainer.progress=false",
                    "tensorboard.images=false", "tensorboard.figures=false", "device=cpu"],
                   cwd=image_dir, check=True, stdout=subprocess.DEVNULL)
    return newest_run(smoke_dir), newest_run(image_dir), data / "one.png"


def commands(python: str, smoke_run: Path, image_run: Path, png: Path) -> dict[str, tuple[list[str], int]]:
    cli = [python, "-m", "trainctl"]
    return {
        "smoke": ([*cli, "train", "experiment=smoke"], 0),
        "error": ([*cli, "train", "trainer.epochs=abc"], 2),
        "list": ([*cli, "list"], 0),
        "eval": ([*cli, "eval", f"ckpt={smoke_run}"], 0),
        "predict": ([*cli, "predict", f"ckpt={image_run}", f"inputs={png}", "device=cpu",
                     f"out={png.parent / 'predictions.csv'}"], 0),
    }


def import_breakdown(python: str, cwd: Path, top: int = 12) -> tuple[float, list[tuple[str, float]]]:
    """Seconds of a smoke run's imports by top-level package (each module's own time, `-X importtime`)."""
    proc = subprocess.run([python, "-X", "importtime", "-m", "trainctl", "train", "experiment=smoke"], cwd=cwd,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=True)
    by_package: collections.Counter[str] = collections.Counter()
    for line in proc.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+\d+ \|\s*(\S+)", line)
        if m:
            by_package[m[2].split(".")[0]] += int(m[1]) / 1e6
    return sum(by_package.values()), by_package.most_common(top)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--python", default=sys.executable, help="the interpreter whose trainctl is measured")
    parser.add_argument("--baseline", help="another interpreter (checkout) to alternate with, e.g. before a change")
    parser.add_argument("--only", help="comma-separated commands (floor always runs)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="trainctl-startup-") as scratch:
        work = Path(scratch)
        smoke_run, image_run, png = setup(args.python, work)
        interpreters = {"": args.python, **({"before ": args.baseline} if args.baseline else {})}
        jobs: dict[str, tuple[list[str], int]] = {"floor": ([args.python, "-c", "import torch"], 0)}
        for label, python in interpreters.items():
            for name, job in commands(python, smoke_run, image_run, png).items():
                if not args.only or name in args.only.split(","):
                    jobs[label + name] = job
        cwd = {name: work / re.sub(r"\W", "_", name) for name in jobs}
        for folder in cwd.values():
            folder.mkdir()
        samples: dict[str, list[tuple[float, float]]] = {name: [] for name in jobs}
        names = list(jobs)
        for r in range(args.rounds):
            order = names[r % len(names):] + names[:r % len(names)]
            for name in order:
                samples[name].append(timed(jobs[name][0], cwd[name], jobs[name][1]))
            print(f"round {r + 1}/{args.rounds} done", file=sys.stderr, flush=True)
        med = {n: (statistics.median(c for c, _ in s), statistics.median(w for _, w in s)) for n, s in samples.items()}
        floor_cpu, floor_wall = med["floor"]
        print(f"\nmedians of {args.rounds} alternated rounds, whole processes ({os.cpu_count()} CPUs)")
        print(f"{'command':<16}{'CPU s':>8}{'wall s':>9}{'CPU / floor':>13}{'wall / floor':>14}")
        for name, (c, w) in med.items():
            print(f"{name:<16}{c:8.2f}{w:9.2f}{c / floor_cpu:12.2f}x{w / floor_wall:13.2f}x")
        if "smoke" not in jobs:
            return
        smoke_walls = [w for _, w in samples["smoke"]]
        phases: collections.defaultdict[str, list[float]] = collections.defaultdict(list)
        for run in (cwd["smoke"] / "runs").iterdir():
            metrics = json.loads((run / "metrics.json").read_text())
            for phase, seconds in metrics.get("time/phases", {}).items():
                phases[phase].append(seconds)
            phases["(startup_s: start to first step)"].append(metrics["time/startup_s"])
            phases["(finish_s: test metric to end)"].append(metrics["time/finish_s"])
        print("\nsmoke run, wall seconds by phase (medians, from metrics.json time/phases):")
        for phase, values in phases.items():
            print(f"  {phase:<36}{statistics.median(values):7.3f}")
        accounted = sum(statistics.median(v) for p, v in phases.items() if not p.startswith("("))
        print(f"  {'exit (the rest of the process)':<36}{statistics.median(smoke_walls) - accounted:7.3f}")
        total, packages = import_breakdown(args.python, cwd["smoke"])
        print(f"\nsmoke run, imports by package (-X importtime, one run, {total:.2f} s in all):")
        for package, seconds in packages:
            print(f"  {package:<36}{seconds:7.3f}")


if __name__ == "__main__":
    main()
