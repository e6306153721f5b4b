"""A Hydra plugin the README names but this machine lacks (the SLURM launcher): one message that names what is
installed and the package to install, exit 2, nothing written; not Hydra's "check the path" words for a file."""

import pytest

from conftest import run_cli


@pytest.mark.parametrize(("override", "fix"), [
    ("hydra/launcher=submitit_slurm", "pip install hydra-submitit-launcher"),
    ("hydra/sweeper=nope", "install the Hydra plugin that provides it"),
])
def test_a_missing_plugin_names_the_options_here_and_the_fix(tmp_path, override, fix):
    proc = run_cli(["train", "-m", "sweep=fashionmnist_cnn", override, "hydra.sweeper.n_jobs=8"], tmp_path)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 2, output
    group, option = override.split("=")
    assert f"{group}={option} is not installed" in output and fix in output
    installed = "basic, joblib" if group == "hydra/launcher" else "basic, optuna"
    assert f"the options of {group} here are {installed}" in output
    assert "Check the path" not in output and "Traceback" not in output
    assert not (tmp_path / "runs").exists()
