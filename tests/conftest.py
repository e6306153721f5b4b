"""Shared fixtures: tiny datasets in the real IDX format, the real CLI in a subprocess, and config composition."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

from trainctl.config import config_dir, register_schemas
from trainctl.idx import write_idx
from trainctl.rundir import token

NO_SYSTEM_DATA = "dataset.system_dirs=[]"  # tests never read the machine's real datasets


def make_idx_dataset(folder: Path, n_train: int = 600, n_test: int = 200, gz: bool = True, seed: int = 0) -> Path:
    """Write the four Fashion-MNIST files for a learnable toy task: class k lights up horizontal band k."""
    folder.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(seed)
    suffix = ".gz" if gz else ""
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = torch.arange(n, dtype=torch.uint8) % 10
        images = torch.randint(0, 60, (n, 28, 28), generator=g, dtype=torch.uint8)
        for k in range(10):
            rows = slice(2 + 2 * k, 4 + 2 * k)
            images[labels == k, rows, :] = 250
        order = torch.randperm(n, generator=g)
        write_idx(folder / f"{prefix}-images-idx3-ubyte{suffix}", images[order].contiguous())
        write_idx(folder / f"{prefix}-labels-idx1-ubyte{suffix}", labels[order].contiguous())
    return folder


@pytest.fixture(scope="session")
def fake_fashion(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A dataset.root holding small Fashion-MNIST-format files (flat, gzipped)."""
    return make_idx_dataset(tmp_path_factory.mktemp("fashion"))


def compose_cfg(overrides: list[str] = ()) -> DictConfig:
    """The real config tree composed with overrides, as `trainctl train` would see it (minus `hydra`)."""
    register_schemas()
    if not OmegaConf.has_resolver("trainctl_token"):
        OmegaConf.register_new_resolver("trainctl_token", token, use_cache=True)
    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        return compose("train", overrides=list(overrides))


def run_cli(args: list[str], cwd: Path, timeout: int = 300, **env: str) -> subprocess.CompletedProcess:
    """Run `python -m trainctl ARGS` in `cwd` and capture its output."""
    full_env = {**os.environ, "COLUMNS": "200", **env}
    return subprocess.run(
        [sys.executable, "-m", "trainctl", *args], cwd=cwd, env=full_env, capture_output=True, text=True,
        timeout=timeout,
    )


def run_dirs(cwd: Path) -> list[Path]:
    runs = cwd / "runs"
    return sorted(p for p in runs.iterdir() if p.is_dir()) if runs.exists() else []
