"""Whole-step CUDA graphs (`trainer.cuda_graphs`), driven on the CPU by a fake graph that records what it is
asked to capture and runs it again at each replay, as a CUDA graph replays its kernels. tests/gpu/ has the same
on a real GPU."""

import logging
import signal

import pytest
import torch

from trainctl.api import train
from trainctl.config.compose import compose
from trainctl.config.validate import validate
from trainctl.engine import cuda_graph
from trainctl.engine.checkpoint import load_checkpoint
from trainctl.engine.cuda_graph import StepGraphs
from trainctl.engine.graph_step import graph_mode
from trainctl.engine.signals import Interrupted
from trainctl.errors import UserError

BLOBS = ["model=mlp", "model.hidden=[16]", "dataset=blobs", "dataset.n_train=640", "device=cpu",
         "trainer.progress=false", "tensorboard.figures=false", "tensorboard.images=false"]


class FakeGraph:
    """Records the function a capture is given without running it (as CUDA does); a replay runs it."""

    made: list["FakeGraph"] = []

    def __init__(self) -> None:
        self.record, self.replays, self.pool_given = None, 0, "unset"
        FakeGraph.made.append(self)

    def capture(self, record, pool) -> None:
        self.record, self.pool_given = record, pool

    def replay(self) -> None:
        self.replays += 1
        self.record()

    def pool(self) -> str:
        return f"pool of graph {FakeGraph.made.index(self)}"


class FailingGraph(FakeGraph):
    def capture(self, record, pool) -> None:
        raise RuntimeError("operation not permitted when stream is capturing\nmore detail")


def counting_body(calls):
    def body(x, y, first, steps):
        calls.append((tuple(x.shape), first, steps))
        return x.sum(), y.sum().float()
    return body


@pytest.fixture(autouse=True)
def fresh_graphs():
    FakeGraph.made = []


def test_each_kind_warms_up_then_is_captured_once_and_replayed():
    calls, said = [], []
    graphs = StepGraphs(counting_body(calls), torch.device("cpu"), said.append, factory=FakeGraph, warmup=2)
    full, short = torch.ones(4, 3), torch.ones(2, 3)
    for _ in range(5):
        assert graphs.run(full, torch.arange(4), True, True)[0].item() == 12.0
    [graph] = FakeGraph.made
    assert graph.replays == 3 and len(calls) == 5  # 2 eager warm-ups, then the capture's batch and 2 more
    assert graph.pool_given is None
    for _ in range(4):  # the short last batch: warm-ups and a graph of its own, in the first graph's pool
        assert graphs.run(short, torch.arange(2), True, True)[0].item() == 6.0
    assert len(FakeGraph.made) == 2 and FakeGraph.made[1].replays == 2
    assert FakeGraph.made[1].pool_given == "pool of graph 0"
    graphs.run(full, torch.arange(4), True, True)
    assert graph.replays == 4 and said == []


def test_a_new_batch_is_copied_into_the_static_buffers_before_a_replay():
    graphs = StepGraphs(counting_body([]), torch.device("cpu"), print, factory=FakeGraph, warmup=0)
    for k in range(3):
        loss, _ = graphs.run(torch.full((2, 2), float(k)), torch.zeros(2), True, True)
        assert loss.item() == 4.0 * k


def test_too_many_shapes_stop_the_graphs_and_say_so_once():
    calls, said = [], []
    graphs = StepGraphs(counting_body(calls), torch.device("cpu"), said.append, factory=FakeGraph, warmup=0,
                        max_graphs=2)
    for n in (1, 2, 3, 4, 1, 2):
        assert graphs.run(torch.ones(n, 2), torch.zeros(n), True, True)[0].item() == 2.0 * n
    assert said == ["the batches come in more than 2 kinds of shape"]
    assert len(calls) == 6 and graphs.reason == said[0]
    assert sum(g.replays for g in FakeGraph.made) == 2  # the two graphs ran once each, then eager only


def test_a_failed_capture_runs_the_batch_eagerly_and_says_why_once():
    calls, said, failures = [], [], []
    graphs = StepGraphs(counting_body(calls), torch.device("cpu"), said.append, factory=FailingGraph, warmup=1,
                        after_failure=lambda: failures.append(1))
    for _ in range(4):
        graphs.run(torch.ones(3, 2), torch.zeros(3), True, True)
    assert len(calls) == 4 and failures == [1]
    assert said == ["capturing the step failed: operation not permitted when stream is capturing"]


def test_the_first_micro_batch_and_the_stepping_one_are_kinds_of_their_own():
    graphs = StepGraphs(counting_body([]), torch.device("cpu"), print, factory=FakeGraph, warmup=0)
    for first, steps in [(True, False), (False, True)] * 3:
        graphs.run(torch.ones(2, 2), torch.zeros(2), first, steps)
    assert [g.replays for g in FakeGraph.made] == [3, 3]


def fake_cuda(monkeypatch):
    """The CPU treated as a device that captures, with the fake graph and one warm-up run per kind."""
    monkeypatch.setattr(cuda_graph, "CAPTURING_DEVICES", frozenset({"cpu"}))
    monkeypatch.setattr(cuda_graph, "GRAPH_FACTORY", FakeGraph)
    monkeypatch.setattr(cuda_graph, "WARMUP_RUNS", 1)


def run(tmp_path, name, *overrides):
    result = train(compose([*BLOBS, *overrides]), run_dir=tmp_path / name)
    return result, load_checkpoint(tmp_path / name / "checkpoints" / "last.pt")


ROWS = {
    "adam": ["optimizer=adam"],
    "adamw, accumulation, clipping, ema, cosine": ["optimizer=adamw", "trainer.grad_accum_steps=3",
                                                   "trainer.gradient_clip_val=0.5", "trainer.ema_decay=0.9",
                                                   "scheduler=cosine"],
    "sgd, warm-up, bf16": ["optimizer=sgd", "scheduler.warmup_steps=5", "trainer.precision=bf16"],
}


@pytest.mark.parametrize("extra", ROWS.values(), ids=ROWS.keys())
def test_training_through_graphs_matches_the_eager_loop(tmp_path, monkeypatch, extra):
    common = ["trainer.epochs=3", "trainer.batch_size=48", *extra]  # 512 training samples: a short last batch
    eager_result, eager = run(tmp_path, "eager", *common, "trainer.cuda_graphs=false")
    fake_cuda(monkeypatch)
    result, graphed = run(tmp_path, "graphs", *common, "trainer.cuda_graphs=true")
    assert len(FakeGraph.made) >= 2 and all(g.replays > 0 for g in FakeGraph.made)  # full and short batches
    assert graphed["step"] == eager["step"]
    for key in eager["model"]:
        torch.testing.assert_close(graphed["model"][key], eager["model"][key], rtol=1e-5, atol=1e-6)
    assert graphed.get("ema") is None or eager.get("ema") is not None
    assert result["train/loss"] == pytest.approx(eager_result["train/loss"], rel=1e-5)
    assert result["train/acc"] == eager_result["train/acc"]


def test_a_schedule_that_cycles_the_momentum_runs_eagerly_and_says_why_once(tmp_path, monkeypatch, caplog):
    fake_cuda(monkeypatch)
    caplog.set_level(logging.INFO, logger="trainctl")
    result, _ = run(tmp_path, "cycle", "trainer.epochs=2", "optimizer=sgd", "optimizer.momentum=0.9",
                    "scheduler=onecycle")
    said = [r for r in caplog.records if "CUDA graphs: the step runs eagerly" in r.getMessage()]
    assert len(said) == 1 and "OneCycleLR schedule changes the momentum every step" in said[0].getMessage()
    assert FakeGraph.made == [] and result["epochs"] == 2


def test_an_optimizer_without_a_capturable_step_runs_eagerly_with_a_warning_when_asked_for(tmp_path, monkeypatch,
                                                                                       caplog):
    fake_cuda(monkeypatch)
    run(tmp_path, "rms", "trainer.epochs=1", "optimizer=rmsprop", "trainer.cuda_graphs=true")
    [warning] = [r for r in caplog.records if r.levelno == logging.WARNING and "cuda_graphs" in r.getMessage()]
    assert "optimizer RMSprop has no step that runs inside a CUDA graph" in warning.getMessage()
    assert FakeGraph.made == []


def test_a_callback_that_hooks_the_optimizer_step_keeps_the_step_eager(tmp_path, monkeypatch, caplog):
    fake_cuda(monkeypatch)
    caplog.set_level(logging.INFO, logger="trainctl")
    run(tmp_path, "hooked", "trainer.epochs=1", "tensorboard.histograms=true")
    assert "Python hooks run inside the step (a callback's, such as tensorboard.histograms" in caplog.text
    assert FakeGraph.made == []


def test_the_log_says_once_that_the_step_is_captured(tmp_path, monkeypatch, caplog):
    fake_cuda(monkeypatch)
    caplog.set_level(logging.INFO, logger="trainctl")
    run(tmp_path, "captured", "trainer.epochs=2")
    said = [r.getMessage() for r in caplog.records if "CUDA graphs" in r.getMessage()]
    assert said == ["CUDA graphs: the training step is captured and replayed (1 kind(s) of step so far, the first "
                    "for batches of shape (64, 2))"]


def test_auto_on_the_cpu_is_the_eager_loop_bit_for_bit_and_says_nothing(tmp_path, caplog):
    common = ["trainer.epochs=2", "trainer.batch_size=48", "trainer.grad_accum_steps=2"]
    caplog.set_level(logging.INFO, logger="trainctl")
    auto_result, auto = run(tmp_path, "auto", *common)  # the default
    assert "CUDA graphs" not in caplog.text
    off_result, off = run(tmp_path, "off", *common, "trainer.cuda_graphs=false")
    assert all(torch.equal(auto["model"][k], off["model"][k]) for k in off["model"])
    assert auto_result["train/loss"] == off_result["train/loss"] and auto_result["val/acc"] == off_result["val/acc"]


@pytest.mark.parametrize(("value", "mode"), [("auto", "auto"), ("true", "true"), ("false", "false"),
                                             ("null", "auto")])
def test_the_key_takes_auto_true_or_false(value, mode):
    overrides = [*BLOBS, f"trainer.cuda_graphs={value}"]
    cfg = compose(overrides)
    validate(cfg, overrides)
    assert graph_mode(cfg.trainer.cuda_graphs) == mode
    assert graph_mode(compose(BLOBS).trainer.cuda_graphs) == "auto"


@pytest.mark.parametrize("value", ["maybe", "1"])
def test_any_other_value_is_refused_naming_the_key(value):
    overrides = [*BLOBS, f"trainer.cuda_graphs={value}"]
    with pytest.raises(UserError, match=r"trainer.cuda_graphs=.* is not allowed: give true, false or auto"):
        validate(compose(overrides), overrides)


def test_one_cycle_can_leave_the_momentum_alone_so_that_the_step_is_captured(tmp_path, monkeypatch):
    from torch import nn

    from trainctl.components import build_optimizer, build_scheduler

    cfg = compose(["optimizer=sgd", "optimizer.momentum=0.9", "scheduler=onecycle", "scheduler.cycle_momentum=false"])
    optimizer = build_optimizer(cfg.optimizer, nn.Linear(2, 2))
    schedule = build_scheduler(cfg.scheduler, optimizer, 2, 10)
    seen = set()
    for _ in range(20):
        seen.add((optimizer.param_groups[0]["lr"], optimizer.param_groups[0]["momentum"]))
        optimizer.step()
        schedule.step_batch()
    assert len({lr for lr, _ in seen}) > 10 and {m for _, m in seen} == {0.9}
    fake_cuda(monkeypatch)
    run(tmp_path, "onecycle", "trainer.epochs=1", "optimizer=sgd", "optimizer.momentum=0.9", "scheduler=onecycle",
        "scheduler.cycle_momentum=false")
    assert FakeGraph.made and all(g.replays > 0 for g in FakeGraph.made)


def test_the_fast_fashion_preset_has_a_step_that_graphs_capture(fake_fashion, monkeypatch, tmp_path):
    from trainctl.data.catalog import build_dataset
    from trainctl.engine.build import build_trainer
    from trainctl.engine.graph_step import blocker

    from conftest import NO_SYSTEM_DATA

    monkeypatch.setattr(cuda_graph, "CAPTURING_DEVICES", frozenset({"cpu"}))
    cfg = compose(["experiment=fashionmnist_fast", f"dataset.root={fake_fashion}", NO_SYSTEM_DATA, "device=cpu"])
    assert graph_mode(cfg.trainer.cuda_graphs) == "auto" and cfg.trainer.precision == "bf16"
    t = build_trainer(cfg, build_dataset(cfg.dataset, cfg.seed), torch.device("cpu"), tmp_path)
    assert blocker(t) is None


class StopAtStep:
    """Asks for a graceful stop (as SIGINT does) after optimizer step `step`: the run saves and ends."""

    def __init__(self, step):
        from trainctl.engine.events import Callback

        class Stop(Callback):
            def on_train_step(self, trainer):
                if trainer.state.step == step:
                    trainer.stop.signum = signal.SIGINT

        self.callback = Stop()


def test_a_run_with_graphs_stopped_mid_epoch_resumes_bit_identically(tmp_path, monkeypatch):
    fake_cuda(monkeypatch)
    common = [*BLOBS, "trainer.epochs=3", "trainer.batch_size=48", "model.dropout=0.2", "scheduler=cosine",
              "scheduler.warmup_steps=5", "trainer.ema_decay=0.9", "trainer.grad_accum_steps=2"]
    whole = train(compose(common), run_dir=tmp_path / "whole")
    with pytest.raises(Interrupted):
        train(compose(common), run_dir=tmp_path / "cut", callbacks=[StopAtStep(9).callback])  # mid-epoch 2
    made_before = len(FakeGraph.made)
    resumed = train(compose([*common, f"resume={tmp_path / 'cut'}"]))
    assert len(FakeGraph.made) > made_before  # captured afresh after the restore
    a, b = (load_checkpoint(tmp_path / name / "checkpoints" / "last.pt") for name in ("whole", "cut"))
    assert a["step"] == b["step"] == 3 * 6
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert all(torch.equal(a["ema"][k], b["ema"][k]) for k in a["ema"])
    assert {k: v for k, v in whole.items() if not k.startswith(("time/", "throughput/"))} == {
        k: v for k, v in resumed.items() if not k.startswith(("time/", "throughput/"))}
