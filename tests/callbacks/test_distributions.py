"""Opt-in insight into training: weight and gradient histograms with the gradient norm, the model graph, and the
profiler trace. Three CLI runs shared by the tests: all three on, a run with none (the defaults), and a run whose
model cannot be traced and that is shorter than its profile."""

import json
import shutil
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from omegaconf import OmegaConf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch import nn

from conftest import run_cli, run_dirs
from trainctl.callbacks.distributions import NORM_TAG, STEP_NORM_TAG, Distributions
from trainctl.callbacks.graph import write_graph
from trainctl.callbacks.profiler import DIR, TOP_OPS, TRACE

EPOCHS, STEPS = 2, 3  # optimizer steps per epoch
TINY = ["experiment=smoke", f"trainer.epochs={EPOCHS}", f"trainer.max_steps_per_epoch={STEPS}",
        "trainer.log_every_n_steps=2", "tensorboard.images=false", "tensorboard.figures=false"]


def events(folder: Path) -> EventAccumulator:
    accumulator = EventAccumulator(str(folder), size_guidance={"histograms": 0, "scalars": 0})
    accumulator.Reload()
    return accumulator


@pytest.fixture(scope="module")
def insight_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    cwd = tmp_path_factory.mktemp("insight")
    proc = run_cli(["train", *TINY, "tensorboard.histograms=true", "tensorboard.graph=true", "trainer.profile=true",
                    "trainer.profile_steps=2"], cwd)
    assert proc.returncode == 0, proc.stderr
    [run] = run_dirs(cwd)
    return run, proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def default_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cwd = tmp_path_factory.mktemp("defaults")
    proc = run_cli(["train", *TINY, "trainer.epochs=1"], cwd)
    assert proc.returncode == 0, proc.stderr
    [run] = run_dirs(cwd)
    return run


@pytest.fixture(scope="module")
def odd_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A user model the tracer refuses, profiled for more steps than the run has."""
    cwd = tmp_path_factory.mktemp("odd")
    (cwd / "mymodels.py").write_text(textwrap.dedent('''
        import torch
        from torch import nn

        class NoTrace(nn.Module):
            def __init__(self, input_shape, num_classes, hidden=None):  # hidden: from experiment=smoke
                super().__init__()
                self.linear = nn.Linear(input_shape[0], num_classes)

            def forward(self, x):
                if torch.jit.is_tracing():
                    raise RuntimeError("this model refuses to be traced")
                return self.linear(x)
    '''))
    (cwd / "myconf" / "model").mkdir(parents=True)
    (cwd / "myconf" / "model" / "notrace.yaml").write_text("_target_: mymodels.NoTrace\n")
    proc = run_cli(["train", "--config-dir", "myconf", *TINY, "model=notrace", "tensorboard.graph=true",
                    "trainer.profile=true", "trainer.profile_steps=50"], cwd, PYTHONPATH=str(cwd))
    assert proc.returncode == 0, proc.stderr
    [run] = run_dirs(cwd)
    return run, proc.stdout + proc.stderr


@pytest.mark.slow
def test_weight_and_gradient_histograms_once_per_epoch(insight_run):
    run, _ = insight_run
    tags = events(run).Tags()["histograms"]
    names = ["fc1.weight", "fc1.bias", "fc.weight", "fc.bias"]  # the smoke mlp: flatten, fc1, relu1, fc
    assert sorted(tags) == sorted([f"weights/{n}" for n in names] + [f"gradients/{n}" for n in names])
    accumulator = events(run)
    for tag in tags:
        values = accumulator.Histograms(tag)
        assert [v.step for v in values] == list(range(1, EPOCHS + 1))
        assert all(v.histogram_value.num > 0 for v in values)
    weights = [accumulator.Histograms("weights/fc1.weight")[e].histogram_value for e in (0, 1)]
    assert weights[0].sum != weights[1].sum  # the weights of each epoch, not one copy
    gradients = accumulator.Histograms("gradients/fc1.weight")[-1].histogram_value
    assert gradients.max > gradients.min  # real gradients, not the zeros of a freed .grad


@pytest.mark.slow
def test_gradient_norm_per_epoch_and_per_log_point(insight_run):
    run, _ = insight_run
    per_epoch = events(run).Scalars(NORM_TAG)
    assert [s.step for s in per_epoch] == list(range(1, EPOCHS + 1))
    per_log = events(run).Scalars(STEP_NORM_TAG)
    assert [s.step for s in per_log] == [2, 5]  # batches 2 of 3 per epoch: optimizer steps 2 and 3 + 2
    assert all(torch.isfinite(torch.tensor(s.value)) and s.value > 0 for s in [*per_epoch, *per_log])


@pytest.mark.slow
def test_the_graph_is_in_the_event_file(insight_run):
    run, _ = insight_run
    graph = events(run).Graph()
    ops = {node.op for node in graph.node}
    assert "aten::linear" in ops and len(graph.node) > 4


@pytest.mark.slow
def test_the_profile_is_a_trace_and_a_table(insight_run):
    run, output = insight_run
    trace = json.loads((run / DIR / TRACE).read_text())
    steps = sorted(e["name"] for e in trace["traceEvents"] if e.get("name", "").startswith("ProfilerStep#"))
    assert steps == ["ProfilerStep#1", "ProfilerStep#2"]  # after the warm-up step 0
    table = (run / DIR / TOP_OPS).read_text()
    assert "Top operators by CPU self time" in table and "aten::" in table
    assert "profile: 2 training step(s) in" in output and "https://ui.perfetto.dev" in output


@pytest.mark.slow
def test_a_resumed_run_keeps_its_first_profile(insight_run, tmp_path):
    run = tmp_path / "runs" / insight_run[0].name  # a copy: the other tests read the original
    shutil.copytree(insight_run[0], run)
    before = {p.name: p.read_bytes() for p in (run / DIR).iterdir()}
    proc = run_cli(["train", f"resume={run}", f"trainer.epochs={EPOCHS + 1}"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert {p.name: p.read_bytes() for p in (run / DIR).iterdir()} == before  # profile=true replayed, not re-run
    assert "kept the profile the run wrote before it was resumed" in " ".join((proc.stdout + proc.stderr).split())


@pytest.mark.slow
def test_with_the_defaults_none_of_it_is_written(default_run):
    accumulator = events(default_run)
    tags = accumulator.Tags()
    assert tags["histograms"] == [] and not tags["graph"]
    assert NORM_TAG not in tags["scalars"] and "train/loss" in tags["scalars"]
    assert STEP_NORM_TAG not in tags["scalars"]
    assert not (default_run / DIR).exists()


@pytest.mark.slow
def test_an_untraceable_model_warns_and_a_short_run_writes_its_profile_at_the_end(odd_run):
    run, output = odd_run
    warnings = [line for line in output.splitlines() if "tensorboard.graph" in line]
    assert len(warnings) == 1 and "this model refuses to be traced" in warnings[0]
    assert "Traceback" not in output
    assert not events(run).Tags()["graph"]
    trace = json.loads((run / DIR / TRACE).read_text())
    steps = {e["name"] for e in trace["traceEvents"] if e.get("name", "").startswith("ProfilerStep#")}
    assert f"ProfilerStep#{EPOCHS * STEPS - 1}" in steps  # every step after the warm-up, and no more
    assert f"ProfilerStep#{EPOCHS * STEPS + 1}" not in steps
    assert (run / DIR / TOP_OPS).is_file()
    assert f"profile: {EPOCHS * STEPS - 1} training step(s) and the end of the run in" in output


class Writer:
    """Records what `add_graph` is given."""

    def __init__(self) -> None:
        self.graphs: list[nn.Module] = []

    def add_graph(self, model: nn.Module, sample: torch.Tensor) -> None:
        from torch.utils.tensorboard._pytorch_graph import graph

        graph(model, sample)
        self.graphs.append(model)


def test_tracing_leaves_modes_and_random_state_as_they_were():
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Dropout(0.5))
    model.train()
    model[1].eval()
    sample = torch.randn(2, 3)
    rng = torch.random.get_rng_state()
    writer = Writer()
    assert write_graph(writer, model, sample) is None and writer.graphs == [model]
    assert [m.training for m in model.modules()] == [True, True, False, True]  # Sequential, Linear, norm, dropout
    assert torch.equal(torch.random.get_rng_state(), rng)


def test_a_model_that_cannot_be_traced_gives_the_reason():
    class Dict(nn.Module):
        def forward(self, x: torch.Tensor) -> dict:
            return {"out": x, "note": "not a tensor"}

    problem = write_graph(Writer(), Dict(), torch.zeros(1, 2))
    assert problem is not None and problem.strip()


def fake_trainer(model: nn.Module, optimizer: torch.optim.Optimizer) -> SimpleNamespace:
    return SimpleNamespace(raw_model=model, optimizer=optimizer, device=torch.device("cpu"), batches=1,
                           state=SimpleNamespace(step=0, batches_in_epoch=0),
                           cfg=OmegaConf.create({"trainer": {"grad_accum_steps": 1}}))


def test_with_a_grad_scaler_the_norm_is_of_unscaled_gradients_and_skipped_steps_do_not_count():
    torch.manual_seed(0)
    model = nn.Linear(4, 2)
    optimizer = torch.optim.Adam(model.parameters(), fused=True)  # GradScaler hands it scaled gradients
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    trainer = fake_trainer(model, optimizer)  # an epoch of one step
    callback = Distributions()
    callback.on_fit_start(trainer)
    callback.on_epoch_start(trainer, 1)
    scaler.scale(model(torch.randn(8, 4)).square().mean()).backward()
    true_norm = torch.nn.utils.get_total_norm([p.grad for p in model.parameters()]) / 1024.0
    true_grad = model.weight.grad / 1024.0
    scaler.step(optimizer)
    scaler.update()
    optimizer.zero_grad(set_to_none=True)
    counted = torch.stack((true_norm, torch.tensor(1.0)))
    torch.testing.assert_close(callback.in_epoch, counted)
    torch.testing.assert_close(callback.grads["weight"], true_grad)  # the copy of the epoch's last step
    trainer.state.step = 1
    scaler.scale(model(torch.full((8, 4), float("inf"))).sum()).backward()
    scaler.step(optimizer)  # skipped: inf gradients
    torch.testing.assert_close(callback.in_epoch, counted)
    callback.on_fit_end(trainer, {})
    assert callback.handle is None and not optimizer._optimizer_step_pre_hooks


def test_the_defaults_do_not_even_build_these_callbacks():
    from trainctl.callbacks import default_callbacks
    from trainctl.callbacks.graph import ModelGraph
    from trainctl.callbacks.profiler import StepProfiler
    from trainctl.config.compose import compose

    mine = (Distributions, ModelGraph, StepProfiler)
    assert not [c for c in default_callbacks(compose(["experiment=smoke"])) if isinstance(c, mine)]
    switched_on = compose(["experiment=smoke", "tensorboard.histograms=true", "tensorboard.graph=true",
                           "trainer.profile=true"])
    assert sorted(type(c).__name__ for c in default_callbacks(switched_on) if isinstance(c, mine)) == [
        "Distributions", "ModelGraph", "StepProfiler"]


@pytest.mark.slow
def test_the_graph_is_traced_in_a_process_of_its_own(tmp_path):
    """As a user runs it: a fresh process that compiles nothing (the compiler's stand-in in place), graph only.
    Tracing imports torch.distributed.tensor, whose import asked the stand-in for `__file__` and failed."""
    proc = run_cli(["train", *TINY, "trainer.epochs=1", "tensorboard.graph=true"], tmp_path, subprocess=True)
    assert proc.returncode == 0, proc.stderr
    assert "could not be traced" not in proc.stdout + proc.stderr
    [run] = run_dirs(tmp_path)
    assert "aten::linear" in {node.op for node in events(run).Graph().node}
