"""Extending trainctl without editing it: a `_target_` class from a user config dir, and an installed plugin."""

import json
import subprocess
import textwrap

import pytest

from conftest import install_plugin, run_cli, run_dirs

pytestmark = pytest.mark.slow
SMALL_RUN = ["dataset=blobs", "device=cpu", "trainer.epochs=2", "optimizer.lr=0.01", "trainer.progress=false"]

PLUGIN_MODULE = '''
import math
from dataclasses import dataclass

from torch import nn

from trainctl.components.models import MODELS


@dataclass
class MyNetConfig:
    name: str = "mynet"
    width: int = 24


@MODELS.register("mynet", config=MyNetConfig)
def build_mynet(cfg, spec):
    """A two-layer net from a third-party package."""
    return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(spec.input_shape), cfg.width), nn.ReLU(),
                         nn.Linear(cfg.width, spec.num_classes))
'''

@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory):
    """The throwaway plugin package, pip-installed into its own directory (put on PYTHONPATH to enable it)."""
    return install_plugin(tmp_path_factory, "mynet_plugin", PLUGIN_MODULE, "trainctl.components",
                          'mynet = "mynet_plugin"')


def test_plugin_name_is_listed_and_trains(tmp_path, plugin_site):
    listed = run_cli(["list", "model"], tmp_path, PYTHONPATH=str(plugin_site))
    assert listed.returncode == 0, listed.stderr
    assert "mynet" in listed.stdout and "A two-layer net from a third-party package." in listed.stdout
    assert "width=24" in listed.stdout
    proc = run_cli(["train", *SMALL_RUN, "model=mynet", "model.width=8"], tmp_path, PYTHONPATH=str(plugin_site))
    assert proc.returncode == 0, proc.stderr
    [run] = run_dirs(tmp_path)
    assert "mynet-blobs" in run.name
    assert json.loads((run / "metrics.json").read_text())["test/acc"] > 0.9


def test_without_the_plugin_the_name_is_unknown(tmp_path):
    proc = run_cli(["train", "experiment=smoke", "model=mynet"], tmp_path)
    assert proc.returncode == 2 and "unknown model 'mynet'" in proc.stderr


def test_broken_plugin_is_named(tmp_path, plugin_site):
    broken = tmp_path / "site"
    subprocess.run(["cp", "-r", str(plugin_site), str(broken)], check=True)
    (broken / "mynet_plugin.py").write_text("raise ImportError('missing dependency foo')\n")
    proc = run_cli(["train", "experiment=smoke"], tmp_path, PYTHONPATH=str(broken))
    assert proc.returncode == 2
    assert "plugin 'mynet' (mynet_plugin, entry point group trainctl.components) failed to load" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_target_model_from_a_user_config_dir(tmp_path):
    (tmp_path / "mymodels.py").write_text(textwrap.dedent('''
        import math
        from torch import nn

        class TinyNet(nn.Module):
            def __init__(self, hidden, input_shape, num_classes):
                super().__init__()
                self.net = nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), hidden), nn.Tanh(),
                                         nn.Linear(hidden, num_classes))

            def forward(self, x):
                return self.net(x)
    '''))
    (tmp_path / "myconf" / "model").mkdir(parents=True)
    (tmp_path / "myconf" / "model" / "tiny.yaml").write_text("_target_: mymodels.TinyNet\nhidden: 12\n")
    proc = run_cli(["train", "--config-dir", "myconf", *SMALL_RUN, "model=tiny", "model.hidden=6"],
                   tmp_path, PYTHONPATH=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    [run] = run_dirs(tmp_path)
    assert json.loads((run / "metrics.json").read_text())["test/acc"] > 0.9
    import torch

    state = torch.load(run / "checkpoints" / "best.pt", weights_only=True)
    assert state["model"]["net.1.weight"].shape == (6, 2)  # hidden from the override, inputs from the data


def test_target_that_cannot_be_imported(tmp_path):
    (tmp_path / "myconf" / "model").mkdir(parents=True)
    (tmp_path / "myconf" / "model" / "ghost.yaml").write_text("_target_: nosuchpkg.Net\n")
    proc = run_cli(["train", "-cd", "myconf", "experiment=smoke", "model=ghost"], tmp_path)
    assert proc.returncode == 2 and "cannot import _target_ 'nosuchpkg.Net'" in proc.stderr
    assert not list((tmp_path / "runs").rglob("*"))  # the failed run's directory is removed (runs/ may stay, empty)
