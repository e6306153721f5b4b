"""Commands that make no tensor must not pay for torch: help, `list`, `--cfg` and config errors answer in
a fraction of a second because they never import torch (or torchvision)."""

import json
import subprocess
import sys

import pytest

DRIVER = """
import json, sys
from trainctl.cli import main
try:
    code = main(json.loads(sys.argv[1]))
except SystemExit as e:
    code = e.code
print(json.dumps({"code": code, "torch": "torch" in sys.modules, "torchvision": "torchvision" in sys.modules}))
"""

LIGHT = [
    (["--help"], 0),
    (["list"], 0),
    (["list", "model"], 0),
    (["list", "model", "cnn"], 0),
    (["train", "model.batch_norm=true", "model.norm=layer"], 2),  # keys that contradict each other
    (["train", "--help"], 0),
    (["train", "--cfg", "job"], 0),
    (["train", "--cfg", "job", "experiment=smoke", "optimizer=sgd"], 0),
    (["train", "trainer.epochs=abc"], 2),  # wrong type (Hydra's check, trainctl's message)
    (["train", "optimizer.lrr=0.1"], 2),  # unknown key
    (["train", "optimizer.lr=-1"], 2),  # out of range (trainctl's validator)
    (["train", "model=cnnn"], 2),  # unknown option
    (["train", "dataset.root=/nowhere", "dataset.system_dirs=[]"], 2),  # data files missing
    (["eval"], 2),  # usage error
    (["eval", "ckpt=runs/nope"], 2),  # no such checkpoint: said before torch loads
    (["sweep-report", "nowhere"], 2),  # Optuna and matplotlib only, even to draw
]


@pytest.mark.parametrize(("args", "code"), LIGHT, ids=[" ".join(a) for a, _ in LIGHT])
def test_no_torch_where_no_tensor_is_made(tmp_path, args, code):
    proc = subprocess.run([sys.executable, "-c", DRIVER, json.dumps(args)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    outcome = json.loads(proc.stdout.strip().splitlines()[-1])
    assert outcome["code"] == code, proc.stderr
    assert not outcome["torch"] and not outcome["torchvision"]


def test_a_training_run_does_import_torch(tmp_path):
    # The check above can fail: the same driver sees torch once a command builds a model.
    proc = subprocess.run([sys.executable, "-c", DRIVER, json.dumps(["train", "experiment=smoke", "trainer.epochs=1"])],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    outcome = json.loads(proc.stdout.strip().splitlines()[-1])
    assert outcome == {"code": 0, "torch": True, "torchvision": False}
