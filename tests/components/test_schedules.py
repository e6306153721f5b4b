"""Schedules: per-epoch and per-batch stepping, warm-up on top of any schedule, lambda factors, decay groups."""

import math

import pytest
from torch import nn

from trainctl.components.optimizers import build_optimizer
from trainctl.components import schedulers
from trainctl.components.schedulers import build_scheduler
from trainctl.errors import UserError
from trainctl.config.compose import compose
from conftest import run_cli, run_dirs




def lrs(overrides, epochs=4, steps=5, metrics=lambda epoch: {"val/loss": 1.0}):
    """The lr used at every optimizer step of a run, feeding `metrics(epoch)` to the schedule after each epoch."""
    chosen = any(o.startswith("optimizer=") for o in overrides)
    cfg = compose([*([] if chosen else ["optimizer=sgd"]), "optimizer.lr=1.0", *overrides])
    model = nn.Linear(2, 2)
    optimizer = build_optimizer(cfg.optimizer, model)
    schedule = build_scheduler(cfg.scheduler, optimizer, epochs, steps)
    used = []
    for epoch in range(epochs):
        for _ in range(steps):
            used.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            schedule.step_batch()
        schedule.step_epoch(metrics(epoch))
    return used


def test_epoch_schedules_change_lr_between_epochs_only():
    used = lrs(["scheduler=step", "scheduler.step_size=1", "scheduler.gamma=0.5"])
    assert used[:5] == [1.0] * 5 and used[5:10] == [0.5] * 5 and used[-1] == 0.125
    assert lrs(["scheduler=exponential", "scheduler.gamma=0.5"])[::5] == [1.0, 0.5, 0.25, 0.125]
    assert lrs(["scheduler=multistep", "scheduler.milestones=[2,3]", "scheduler.gamma=0.1"])[::5] == pytest.approx(
        [1.0, 1.0, 0.1, 0.01])


def test_lambda_formula():
    assert lrs(["scheduler=lambda", "scheduler.formula='1 / (1 + epoch)'"])[::5] == pytest.approx(
        [1.0, 1 / 2, 1 / 3, 1 / 4])


@pytest.mark.parametrize(("formula", "message"), [
    ("1 - epoch / 3", r"^scheduler.formula='1 - epoch / 3' gives -0.333333 at epoch 4: a learning-rate factor must "
                      r"be >= 0 .* e.g. max\(0, 1 - epoch / 3\)$"),
    ("1e305 * 10 ** epoch", "failed at epoch=4: the result is inf, not a finite number"),
    ("1 / (4 - epoch)", "failed at epoch=4: float division by zero"),
])
def test_lambda_factor_is_checked_at_build_time_for_every_epoch_the_run_uses(formula, message):
    with pytest.raises(UserError, match=message):
        lrs(["scheduler=lambda", f"scheduler.formula='{formula}'"], epochs=4, steps=1)
    lrs(["scheduler=lambda", f"scheduler.formula='{formula}'"], epochs=3, steps=1)  # epoch 4 is never used


def test_lambda_factor_past_the_checked_epochs_is_checked_as_the_run_goes(monkeypatch):
    monkeypatch.setattr(schedulers, "MAX_CHECKED_EPOCHS", 1)
    with pytest.raises(UserError, match="gives -1 at epoch 3"):
        lrs(["scheduler=lambda", "scheduler.formula='2 - epoch'"], epochs=4, steps=1)


def test_onecycle_steps_every_batch():
    used = lrs(["scheduler=onecycle", "scheduler.max_lr=2.0"], epochs=2, steps=10)
    assert len(set(used)) == len(used)  # a new lr at every step
    assert max(used) == pytest.approx(2.0, rel=0.05) and used[0] == pytest.approx(2.0 / 25)


def test_plateau_reads_the_monitored_metric():
    used = lrs(["scheduler=plateau", "scheduler.patience=0", "scheduler.factor=0.5"])
    assert used[::5] == [1.0, 1.0, 0.5, 0.25]  # val/loss never improves after the first epoch


@pytest.mark.parametrize("schedule", ["none", "step", "cosine"])
def test_linear_warmup_composes_with_any_schedule(schedule):
    plain = lrs([f"scheduler={schedule}"])
    warm = lrs([f"scheduler={schedule}", "scheduler.warmup_steps=4", "scheduler.warmup_start_factor=0.2"])
    assert warm[:4] == pytest.approx([plain[i] * (0.2 + 0.8 * i / 4) for i in range(4)])
    assert warm[4:] == pytest.approx(plain[4:])  # after the warm-up, the schedule is untouched


def test_no_decay_on_biases_and_norms():
    model = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    cfg = compose(["optimizer=adamw", "optimizer.weight_decay=0.1", "optimizer.no_decay_bias_norm=true"])
    groups = build_optimizer(cfg.optimizer, model).param_groups
    assert [len(g["params"]) for g in groups] == [2, 4] and groups[1]["weight_decay"] == 0.0
    assert groups[0]["weight_decay"] == 0.1
    assert all(p.dim() == 2 for p in groups[0]["params"])
    one = build_optimizer(compose(["optimizer=adamw"]).optimizer, model).param_groups
    assert len(one) == 1 and len(one[0]["params"]) == 6


def test_cosine_reaches_eta_min():
    used = lrs(["scheduler=cosine", "scheduler.eta_min=0.1"], epochs=3, steps=1)
    assert used == pytest.approx([1.0, 0.1 + 0.9 * (1 + math.cos(math.pi / 3)) / 2,
                                  0.1 + 0.9 * (1 + math.cos(2 * math.pi / 3)) / 2])


@pytest.mark.parametrize("name", ["adam", "adamw", "nadam"])
@pytest.mark.parametrize("betas", ["[0.9]", "[]", "[0.9,0.99,0.999]"])
def test_betas_need_two_values(name, betas):
    cfg = compose([f"optimizer={name}", f"optimizer.betas={betas}"]).optimizer
    with pytest.raises(UserError, match=r"^optimizer.betas=\[.*\] needs two values, .* optimizer.betas=\[0.9,0.999\]$"):
        build_optimizer(cfg, nn.Linear(2, 2))


@pytest.mark.parametrize("overrides", [["optimizer.momentum=0"], ["optimizer.dampening=0.5"]])
def test_nesterov_needs_momentum_without_dampening(overrides):
    cfg = compose(["optimizer=sgd", "optimizer.nesterov=true", *overrides]).optimizer
    with pytest.raises(UserError, match="^optimizer.nesterov=true needs optimizer.momentum > 0 and "
                                        "optimizer.dampening=0, not momentum="):
        build_optimizer(cfg, nn.Linear(2, 2))


def test_a_model_without_trainable_parameters_is_refused():
    model = nn.Linear(2, 2).requires_grad_(False)
    with pytest.raises(UserError, match="^the model has no trainable parameters, so optimizer 'adam' has nothing"):
        build_optimizer(compose(["optimizer=adam"]).optimizer, model)


def test_values_torch_refuses_are_user_errors_naming_the_settings():
    cfg = compose(["optimizer=adagrad"]).optimizer
    cfg.lr_decay = -1.0  # as a caller that skips config validation would pass it
    with pytest.raises(UserError, match=r"^optimizer 'adagrad' cannot be built with .*optimizer.lr_decay=-1.0.*: "
                                        "Invalid lr_decay value"):
        build_optimizer(cfg, nn.Linear(2, 2))


def test_onecycle_with_an_optimizer_without_momentum_cycles_the_lr_only():
    used = lrs(["optimizer=adagrad", "scheduler=onecycle", "scheduler.max_lr=2.0"], epochs=2, steps=10)
    assert max(used) == pytest.approx(2.0, rel=0.05) and used[0] == pytest.approx(2.0 / 25)


@pytest.mark.slow
def test_the_cli_refuses_a_formula_too_large_to_compute_at_once(tmp_path):
    # A process: were the formula computed, the hang would be inside one C call, which only a kill can end.
    proc = run_cli(["train", "experiment=smoke", "scheduler=lambda", "scheduler.formula='9**9**9**9'"], tmp_path,
                   timeout=60, subprocess=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stdout + proc.stderr
    assert "error: scheduler.formula='9**9**9**9': failed at epoch=0: 9 ** 3.8742e+08 would be about" in proc.stderr
    assert run_dirs(tmp_path) == []


# ---- cyclic -------------------------------------------------------------------------------------------------
CYCLE = ["scheduler=cyclic", "scheduler.unit=steps", "scheduler.step_size_up=2", "scheduler.max_lr=3.0"]


def test_cyclic_lr_cycles_every_step():
    assert lrs(CYCLE, epochs=2, steps=5) == pytest.approx([1, 2, 3, 2, 1, 2, 3, 2, 1, 2])
    halved = lrs([*CYCLE, "scheduler.mode=triangular2"], epochs=2, steps=5)
    assert halved == pytest.approx([1, 2, 3, 2, 1, 1.5, 2, 1.5, 1, 1.25])  # the amplitude halves every cycle
    shrinking = lrs([*CYCLE, "scheduler.mode=exp_range", "scheduler.gamma=0.5"], epochs=1, steps=3)
    assert shrinking == pytest.approx([1, 1 + 2 * 0.5 * 0.5, 1 + 2 * 0.5 ** 2])


def test_cyclic_counts_half_cycles_in_epochs_and_defaults_to_a_factor_of_the_lr():
    # 4 steps per epoch, half an epoch up and one down: 2 steps up to 4 × optimizer.lr, 4 steps down.
    used = lrs(["scheduler=cyclic", "scheduler.step_size_up=0.5", "scheduler.step_size_down=1"], epochs=2, steps=4)
    assert used == pytest.approx([1, 2.5, 4, 3.25, 2.5, 1.75, 1, 2.5])


def momenta(overrides, steps=4):
    cfg = compose(["optimizer.lr=1.0", *overrides])
    optimizer = build_optimizer(cfg.optimizer, nn.Linear(2, 2))
    schedule = build_scheduler(cfg.scheduler, optimizer, 1, steps)
    group, seen = optimizer.param_groups[0], []
    for _ in range(steps):
        seen.append(group["betas"][0] if "betas" in group else group["momentum"])
        optimizer.step()
        schedule.step_batch()
    return seen


@pytest.mark.parametrize(("optimizer", "cycled"), [("optimizer=sgd optimizer.momentum=0.9", True),
                                                  ("optimizer=adam", True), ("optimizer=sgd", False),
                                                  ("optimizer=rmsprop", False), ("optimizer=adagrad", None)])
def test_cyclic_momentum_by_default_only_where_the_optimizer_has_it(optimizer, cycled):
    if cycled is None:  # adagrad has no momentum at all: the lr still cycles
        assert lrs([*optimizer.split(), *CYCLE], epochs=1, steps=3) == pytest.approx([1, 2, 3])
        return
    seen = momenta([*optimizer.split(), *CYCLE])
    # sgd's and rmsprop's momentum is 0 by default: turning it on would change the optimizer the user chose
    assert seen == (pytest.approx([0.9, 0.85, 0.8, 0.85]) if cycled else [0.0] * 4)


def test_cyclic_momentum_that_cannot_apply_is_a_clear_error():
    with pytest.raises(UserError, match=r"^scheduler.cycle_momentum=true needs an optimizer with momentum or betas, "
                                        r"and Adagrad has neither: set scheduler.cycle_momentum=false"):
        lrs(["optimizer=adagrad", *CYCLE, "scheduler.cycle_momentum=true"])
    assert momenta(["optimizer=sgd", "optimizer.momentum=0.9", *CYCLE, "scheduler.cycle_momentum=false"]) == [0.9] * 4
    with pytest.raises(UserError, match="^scheduler.base_momentum=0.95 is above scheduler.max_momentum=0.9"):
        lrs(["optimizer=sgd", "optimizer.momentum=0.9", *CYCLE, "scheduler.base_momentum=0.95"])


@pytest.mark.parametrize(("overrides", "message"), [
    (["scheduler.base_lr=2.0", "scheduler.max_lr=1.0"], r"^the cycle's max lr 1 \(scheduler.max_lr\) is not above "
                                                        r"its base lr 2"),
    (["scheduler.unit=steps", "scheduler.step_size_up=2.5"], "^scheduler.step_size_up=2.5 is not a whole number"),
    (["scheduler.step_size_up=0.1"], r"^scheduler.step_size_up=0.1 epochs is less than one optimizer step \(5 per"),
])
def test_cyclic_settings_torch_would_misread_are_refused(overrides, message):
    with pytest.raises(UserError, match=message):
        lrs(["scheduler=cyclic", *overrides])


def test_plateau_passes_cooldown_eps_and_threshold_mode_to_torch():
    cfg = compose(["scheduler=plateau", "scheduler.cooldown=3", "scheduler.eps=0.01", "scheduler.threshold_mode=abs",
                   "scheduler.threshold=0.5"])
    inner = build_scheduler(cfg.scheduler, build_optimizer(cfg.optimizer, nn.Linear(2, 2)), 4, 5).scheduler
    assert (inner.cooldown, inner.eps, inner.threshold_mode, inner.threshold) == (3, 0.01, "abs", 0.5)


def test_plateau_cooldown_waits_after_a_decay():
    plain = lrs(["scheduler=plateau", "scheduler.patience=0", "scheduler.factor=0.5"], epochs=5)
    cooled = lrs(["scheduler=plateau", "scheduler.patience=0", "scheduler.factor=0.5", "scheduler.cooldown=1"],
                 epochs=5)
    assert plain[::5] == [1.0, 1.0, 0.5, 0.25, 0.125] and cooled[::5] == [1.0, 1.0, 0.5, 0.5, 0.25]
