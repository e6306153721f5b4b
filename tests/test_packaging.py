"""A plain (non-editable) install must carry the config tree: the wheel holds every YAML of conf/."""

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_wheel_ships_the_config_tree(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
                   check=True, capture_output=True)
    [wheel] = tmp_path.glob("trainctl-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {f"trainctl/conf/{p.relative_to(ROOT / 'conf')}" for p in (ROOT / "conf").rglob("*.yaml")}
    assert "trainctl/conf/train.yaml" in expected and "trainctl/conf/model/cnn.yaml" in expected
    assert expected <= names, sorted(expected - names)
    assert "trainctl/cli.py" in names
    entry_points = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "trainctl = trainctl.cli:main" in entry_points
