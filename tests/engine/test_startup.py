"""Fast at the edges: the run's own clock (`time/startup_s`, `time/finish_s`, `time/phases` in metrics.json and
the summary table), and what a run no longer pays for: torch's compiler stack when it compiles nothing, idle
threads spinning beside tiny steps, pictures whose data does not exist, the exit's final garbage collection."""

import gc
import json
import subprocess
import sys
import time

import pytest
import torch

from trainctl.api import train
from trainctl.config.compose import compose
from trainctl.engine.build import one_thread_when_tiny

from conftest import run_cli, run_dirs

SMOKE = ["experiment=smoke", "trainer.epochs=1"]


@pytest.mark.slow
def test_metrics_json_says_where_a_cli_runs_time_went(tmp_path):
    started = time.perf_counter()
    proc = run_cli(["train", *SMOKE], tmp_path, subprocess=True)  # the clock starts with the process
    wall = time.perf_counter() - started
    assert proc.returncode == 0, proc.stderr
    [run] = run_dirs(tmp_path)
    metrics = json.loads((run / "metrics.json").read_text())
    startup, to_test, finish = (metrics[f"time/{k}_s"] for k in ("startup", "train_to_test", "finish"))
    # Start-up covers importing torch (never under 0.2 s) and the three add up to less than the process's wall
    # time as this test saw it (the exit and the process's creation are outside them).
    assert 0.2 < startup < wall and 0 < to_test < wall and 0 < finish < wall
    assert startup + to_test + finish < wall
    phases = metrics["time/phases"]
    assert list(phases) == ["python start-up", "compose and validate", "torch and engine imports", "data",
                            "model build", "summary, writers, log", "first step", "training and validation",
                            "test", "pictures, writers"]
    assert all(seconds >= 0 for seconds in phases.values())
    # The phases up to the first step are the start-up, from the same clock.
    before_first_step = sum(list(phases.values())[:6])
    assert before_first_step <= startup + 0.05
    table = proc.stdout[proc.stdout.index("trainctl run"):]
    rows = [line for line in table.splitlines() if "time/" in line]
    assert [row.split()[1] for row in rows] == ["time/startup_s", "time/train_to_test_s", "time/finish_s"]
    # The test line is logged before the pictures, the table printed after them: the table comes last.
    assert proc.stdout.rstrip().splitlines()[-1] == f"run: {run}"


DRIVER = """
import json, sys
from trainctl.cli import main
code = main(json.loads(sys.argv[1]))
print(json.dumps({"code": code, "dynamo": "torch._dynamo" in sys.modules}))
import torch, torch._dynamo
print(json.dumps({"real": hasattr(torch._dynamo, "optimize"),
                  "cache_left": hasattr(torch.optim.Optimizer.zero_grad.__wrapped__, "__dynamo_disable")}))
"""


@pytest.mark.slow
def test_a_run_that_compiles_nothing_never_imports_torchs_compiler(tmp_path):
    proc = subprocess.run([sys.executable, "-c", DRIVER, json.dumps(["train", *SMOKE])], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    ran, after = (json.loads(line) for line in proc.stdout.strip().splitlines()[-2:])
    assert ran == {"code": 0, "dynamo": False}
    # Afterwards the process gets the real module, and torch's own answers on the optimizer's methods.
    assert after == {"real": True, "cache_left": False}


STAND_IN = """
import sys, torch
from trainctl.engine.lazy_compiler import compiler_unloaded
model = torch.nn.Linear(2, 2)
with compiler_unloaded(False):
    opt = torch.optim.Adam(model.parameters())
    model(torch.ones(1, 2)).sum().backward()
    opt.step(); opt.zero_grad(); opt.state_dict()
    print(type(sys.modules["torch._dynamo"]).__name__)
    print(torch._dynamo.config.__name__)  # anything else asked of it: the real module, at once
    print(type(sys.modules["torch._dynamo"]).__name__)
"""


def test_the_stand_in_answers_eager_code_and_gives_way_to_the_real_module():
    proc = subprocess.run([sys.executable, "-c", STAND_IN], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["_StandIn", "torch._dynamo.config", "module"]


@pytest.mark.parametrize(("hidden", "batch", "threads_inside"), [(32, 32, 1), (1024, 256, 2)],
                         ids=["tiny-steps-one-thread", "larger-steps-all-threads"])
def test_tiny_cpu_steps_run_on_one_thread_and_the_count_comes_back(hidden, batch, threads_inside):
    model = torch.nn.Sequential(torch.nn.Linear(2, hidden), torch.nn.Linear(hidden, 2))
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with one_thread_when_tiny(model, batch, (2,), torch.device("cpu")):
            inside = torch.get_num_threads()
        assert (inside, torch.get_num_threads()) == (threads_inside, 2)
        with one_thread_when_tiny(model, batch, (2,), torch.device("meta")):  # not a CPU run: untouched
            assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(previous)


@pytest.mark.parametrize(("figures", "passes"), [(False, 0), (True, 1)], ids=["images-only", "with-figures"])
def test_no_pass_for_pictures_whose_data_does_not_exist(tmp_path, monkeypatch, figures, passes):
    # blobs are points, not images: the most-wrong images have nothing to show, so with figures off no
    # prediction pass is made at all; with figures on, one (the confusion matrix has its data).
    import trainctl.callbacks.pictures as pictures

    calls = []
    real = pictures.predict
    monkeypatch.setattr(pictures, "predict", lambda *a, **k: calls.append(k) or real(*a, **k))
    cfg = compose([*SMOKE, "tensorboard.images=true", f"tensorboard.figures={str(figures).lower()}"])
    train(cfg, run_dir=tmp_path / "run")
    assert len(calls) == passes


def test_the_command_line_freezes_the_gc_only_when_it_is_the_process(monkeypatch):
    from trainctl import clock
    from trainctl.cli import main

    monkeypatch.setattr(clock, "_process_is_the_run", False)  # main() without argv claims the process's clock
    gc.unfreeze()
    assert main(["--version"]) == 0 and gc.get_freeze_count() == 0  # a caller's process: left as it was
    monkeypatch.setattr(sys, "argv", ["trainctl", "--version"])
    try:
        assert main() == 0 and gc.get_freeze_count() > 0  # the console script: the process ends next
    finally:
        gc.unfreeze()


def test_a_run_started_from_python_counts_from_its_own_start(tmp_path):
    # Only a `trainctl` process's run counts from the process's start; a run started from Python (here, in a
    # pytest process that started long before), like a multirun's next job, counts from its own start.
    cfg = compose(SMOKE)
    for name in ("a", "b"):
        started = time.perf_counter()
        result = train(cfg, run_dir=tmp_path / name)
        assert 0 < result["time/startup_s"] < time.perf_counter() - started
        assert list(result["time/phases"])[:2] == ["data", "model build"]
        assert result["time/finish_s"] > 0


@pytest.mark.slow
def test_a_process_execd_by_a_long_lived_shell_counts_from_python_not_the_shell(tmp_path):
    """`bash -c '... && trainctl train'` execs trainctl in the shell's process, whose start time is the shell's."""
    command = f"sleep 6 && exec {sys.executable} -m trainctl train {' '.join(SMOKE)}"
    proc = subprocess.run(["bash", "-c", command], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    [run] = run_dirs(tmp_path)
    assert json.loads((run / "metrics.json").read_text())["time/startup_s"] < 6
