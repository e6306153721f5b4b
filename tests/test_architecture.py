"""The architecture contract (.importlinter) holds on the real tree, and it breaks when a forbidden import appears.

`lint-imports` analyses the package it finds on sys.path (its working directory comes first), so the breaking cases
run it on a copy of the tree in tmp_path, never on the installed editable package.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ".importlinter"
LAYERS = "Layers: a module imports only from its own layer or lower ones"
ACYCLIC = "No import cycles between the packages of trainctl or the modules inside one"


def lint_imports(cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run the venv's lint-imports in `cwd`, with `cwd` first on the path so that it analyses the tree found there."""
    exe = Path(sys.executable).with_name("lint-imports")
    command = [str(exe)] if exe.exists() else [shutil.which("lint-imports") or "lint-imports"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(cwd), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([*command, "--config", str(cwd / CONFIG), "--no-cache", "--no-logo"],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_the_real_tree_keeps_every_contract():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{LAYERS} KEPT" in result.stdout
    assert f"{ACYCLIC} KEPT" in result.stdout


@pytest.fixture
def tree_copy(tmp_path: Path) -> Path:
    """trainctl/, hydra_plugins/ and the contract, copied into tmp_path."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for package in ("trainctl", "hydra_plugins"):
        shutil.copytree(ROOT / package, tmp_path / package, ignore=ignore)
    shutil.copy2(ROOT / CONFIG, tmp_path / CONFIG)
    return tmp_path


def append(path: Path, code: str) -> int:
    """Append `code` to a module; return the line number of its first line."""
    text = path.read_text()
    if not text.endswith("\n"):
        text += "\n"
    line = text.count("\n") + 1
    path.write_text(text + code)
    return line


@pytest.mark.parametrize(("module", "code", "importer", "imported", "broken", "kept"), [
    # A bottom shared module importing the top of the stack, at module level.
    ("trainctl/metrics.py", "import trainctl.commands.train\n",
     "trainctl.metrics", "trainctl.commands.train", LAYERS, None),
    # A lazy (function-level) import counts too; the namespace-package plugin is a layer like the others.
    ("trainctl/sweep/study.py", "\n\ndef _late():\n    from hydra_plugins.trainctl_optuna import optuna_sweeper\n",
     "trainctl.sweep.study", "hydra_plugins.trainctl_optuna.optuna_sweeper", LAYERS, None),
    # A type-checking-only import of a higher layer still breaks the layers.
    ("trainctl/data/splits.py", "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import trainctl.engine.step\n",
     "trainctl.data.splits", "trainctl.engine.step", LAYERS, None),
    # Inside the bottom layer the shared modules may import one another, but not both ways round.
    ("trainctl/errors.py", "\n\ndef _late():\n    import trainctl.metrics\n",
     "trainctl.errors", "trainctl.metrics", ACYCLIC, LAYERS),
    # Inside one package too, and a type-checking-only import closes a cycle as well as a real one.
    ("trainctl/engine/events.py", "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import trainctl.engine.step\n",
     "trainctl.engine.events", "trainctl.engine.step", ACYCLIC, LAYERS),
    # A function-level import closes one too.
    ("trainctl/data/user_transforms.py", "\n\ndef _late():\n    import trainctl.data.imagefolder\n",
     "trainctl.data.user_transforms", "trainctl.data.imagefolder", ACYCLIC, LAYERS),
], ids=["metrics-imports-commands", "sweep-imports-plugin", "data-type-checks-engine", "errors-metrics-cycle",
        "events-type-checks-step", "transforms-import-a-source"])
def test_a_forbidden_import_breaks_the_contract(tree_copy, module, code, importer, imported, broken, kept):
    line = append(tree_copy / module, code)
    result = lint_imports(tree_copy)
    out = result.stdout + result.stderr
    assert result.returncode != 0, out
    assert f"{broken} BROKEN" in result.stdout, out
    if kept:
        assert f"{kept} KEPT" in result.stdout, out
    if broken == LAYERS:
        # The report names the injected import at its line in the copy, so the copy is what was analysed.
        import_line = line + code.count("\n") - 1
        assert f"{importer} -> {imported} (l.{import_line})" in result.stdout, out
    else:
        # The cycle is reported as the dependency to remove to break it: either edge of it.
        a, b = ("." + name.rsplit(".", 1)[1] for name in (importer, imported))  # trainctl.errors -> .errors
        assert f"{a} -> {b}" in result.stdout or f"{b} -> {a}" in result.stdout, out
