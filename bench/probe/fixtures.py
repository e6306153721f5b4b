"""Files the probe's cases start from: tiny IDX datasets, trained runs, crafted checkpoints and run dirs."""
from __future__ import annotations

import gzip
import os
import shutil
import sqlite3
import struct
import subprocess
from pathlib import Path

import random

# A payload writes this file; the harness passes its path in the environment as PROBE_MARKER.
PAYLOAD_PY = (
    "import os, pathlib\n"
    "pathlib.Path(os.environ.get('PROBE_MARKER', '/tmp/probe_marker_default')).write_text('pwned')\n"
)


def idx_images(n: int, rows: int = 28, cols: int = 28, seed: int = 0) -> bytes:
    rng = random.Random(seed)
    head = struct.pack(">IIII", 0x00000803, n, rows, cols)
    return head + bytes(rng.randrange(256) for _ in range(n * rows * cols))


def idx_labels(n: int, classes: int = 10, seed: int = 1) -> bytes:
    head = struct.pack(">II", 0x00000801, n)
    return head + bytes(i % classes for i in range(n))


def write_fashion(root: Path, n_train: int = 96, n_test: int = 32, gz: bool = False) -> Path:
    """A tiny Fashion-MNIST in IDX format (random pixels, balanced labels)."""
    root.mkdir(parents=True, exist_ok=True)
    files = {
        "train-images-idx3-ubyte": idx_images(n_train),
        "train-labels-idx1-ubyte": idx_labels(n_train),
        "t10k-images-idx3-ubyte": idx_images(n_test, seed=2),
        "t10k-labels-idx1-ubyte": idx_labels(n_test),
    }
    for name, data in files.items():
        if gz:
            (root / (name + ".gz")).write_bytes(gzip.compress(data))
        else:
            (root / name).write_bytes(data)
    return root


def write_png(path: Path, size: int = 28, mode: str = "L", seed: int = 0) -> None:
    from PIL import Image

    rng = random.Random(seed)
    ch = 1 if mode == "L" else 3
    data = bytes(rng.randrange(256) for _ in range(size * size * ch))
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.frombytes(mode, (size, size), data).save(path)


def write_imagefolder(root: Path, classes=("a", "b"), per_class: int = 6) -> Path:
    for split in ("train", "test"):
        for ci, c in enumerate(classes):
            for i in range(per_class):
                write_png(root / split / c / f"{i}.png", size=16, mode="RGB", seed=ci * 100 + i)
    return root


def make_base_runs(cache: Path, python: str, env: dict) -> dict[str, Path]:
    """Train the few real runs the checkpoint cases copy (once per harness run)."""
    cache.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}
    specs = {
        "smoke": ["experiment=smoke", "trainer.epochs=1", "hydra.run.dir=runs/base"],
        "fmnist": ["model=mlp", "model.hidden=[16]", "dataset=fashionmnist", "dataset.root=data",
                   "dataset.system_dirs=[]", "trainer.epochs=1", "trainer.batch_size=16", "device=cpu",
                   "trainer.progress=false", "hydra.run.dir=runs/base"],
    }
    for name, args in specs.items():
        d = cache / name
        if (d / "runs/base/checkpoints/best.pt").exists():
            out[name] = d / "runs/base"
            continue
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
        if name == "fmnist":
            write_fashion(d / "data")
        r = subprocess.run([python, "-m", "trainctl", "train", *args], cwd=d, env=env,
                           capture_output=True, text=True, timeout=600)
        if r.returncode != 0 or not (d / "runs/base/checkpoints/best.pt").exists():
            raise SystemExit(f"probe: could not train the base run {name!r} (rc {r.returncode}):\n"
                             f"{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
        out[name] = d / "runs/base"
    ck = cache / "ckpts"
    if not (ck / "nan_weights.pt").exists():
        r = subprocess.run([python, str(Path(__file__).with_name("craft_ckpt.py")),
                            str(out["fmnist"] / "checkpoints/best.pt"), str(ck)], env=env, capture_output=True,
                           text=True, timeout=600)
        if r.returncode != 0:
            raise SystemExit(f"probe: could not craft checkpoints:\n{r.stderr[-3000:]}")
    out["ckpts"] = ck
    out["fmnist_data"] = cache / "fmnist" / "data"
    return out


def copy_run(base: Path, cwd: Path, rel: str = "runs/shared") -> Path:
    dst = cwd / rel
    shutil.copytree(base, dst, symlinks=True)
    return dst


def garbage_sqlite(path: Path, mode: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if mode == "garbage":
        path.write_bytes(os.urandom(4096))
    elif mode == "empty":
        path.write_bytes(b"")
    elif mode == "truncated":
        con = sqlite3.connect(path)
        con.execute("create table studies (study_id integer primary key, study_name text)")
        con.execute("insert into studies values (1, 'x')")
        con.commit()
        con.close()
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 3])
    elif mode == "other_schema":
        con = sqlite3.connect(path)
        con.execute("create table t (a)")
        con.commit()
        con.close()
    elif mode == "text":
        path.write_text("this is not a database\n")


EVIL_MODULE = PAYLOAD_PY + """
import torch
class Net(torch.nn.Module):
    def __init__(self, *a, **k):
        super().__init__()
        self.l = torch.nn.Linear(784, 10)
    def forward(self, x):
        return self.l(x.flatten(1))
def transform(x, **k):
    return x
class Cb:
    pass
class Data:
    pass
"""


def plant_module(run: Path, with_init: bool = True) -> None:
    """evil.py inside the run directory: importing it (as runs.shared.evil) writes the marker."""
    (run / "evil.py").write_text(EVIL_MODULE)
    if with_init:
        (run / "__init__.py").write_text(PAYLOAD_PY)
        (run.parent / "__init__.py").write_text(PAYLOAD_PY)


def make_base_sweep(cache: Path, python: str, env: dict) -> Path:
    """A finished two-trial blobs sweep (the sweep-report cases copy its directory)."""
    d = cache / "sweep"
    sweep = d / "sw"
    if (sweep / "optuna.db").exists():
        return sweep
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    r = subprocess.run([python, "-m", "trainctl", "train", "-m", "sweep=blobs_mlp", "experiment=smoke",
                        "trainer.epochs=1", "hydra.sweeper.n_trials=2", "hydra.sweeper.sweep_dir=sw"],
                       cwd=d, env=env, capture_output=True, text=True, timeout=900)
    if r.returncode != 0 or not (sweep / "optuna.db").exists():
        raise SystemExit(f"probe: could not run the base sweep (rc {r.returncode}):\n{r.stdout[-2000:]}\n"
                         f"{r.stderr[-3000:]}")
    return sweep
