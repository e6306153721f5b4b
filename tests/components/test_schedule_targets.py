"""A scheduler given by `_target_` is stepped as its config declares: `scheduler.interval` and `scheduler.monitor`."""

import pytest
from torch import nn

from trainctl.components.optimizers import build_optimizer
from trainctl.components.schedulers import build_scheduler
from trainctl.config.compose import compose
from trainctl.errors import UserError

from test_schedules import lrs as schedule_lrs

TORCH = "torch.optim.lr_scheduler"


def target(cls, **settings):
    """Overrides that replace the scheduler option with `_target_: torch.optim.lr_scheduler.<cls>`."""
    return ["~scheduler", f"+scheduler._target_={TORCH}.{cls}", *(f"+scheduler.{k}={v}" for k, v in settings.items())]


def lrs(overrides, metric=lambda epoch: 1.0, epochs=4, steps=3):
    """The lr at every optimizer step, feeding `metric(epoch)` as val/loss after each epoch."""
    return schedule_lrs(overrides, epochs, steps, metrics=lambda epoch: {"val/loss": metric(epoch), "val/acc": 0.5})


def test_a_target_plateau_reads_its_monitor_after_each_epoch_and_decays_when_it_stalls():
    plateau = target("ReduceLROnPlateau", interval="epoch", monitor="val/loss", patience=0, factor=0.5)
    assert lrs(plateau)[::3] == [1.0, 1.0, 0.5, 0.25]  # val/loss stalls from the second epoch on
    improving = lrs(plateau, metric=lambda epoch: 1.0 / (epoch + 1))
    assert improving == [1.0] * 12  # not a per-step schedule: the lr holds within and across epochs


def test_a_target_plateau_without_a_monitor_is_refused():
    with pytest.raises(UserError, match=rf"^scheduler._target_={TORCH}.ReduceLROnPlateau is a ReduceLROnPlateau, "
                                        r"which needs the metric it watches: set scheduler.monitor"):
        lrs(target("ReduceLROnPlateau"))


@pytest.mark.parametrize("settings", [{"interval": "step"}, {}], ids=["interval=step", "default"])
def test_a_target_cyclic_lr_steps_every_batch(settings):
    cyclic = target("CyclicLR", base_lr=1.0, max_lr=3.0, step_size_up=2, cycle_momentum=False, **settings)
    assert lrs(cyclic, epochs=2) == pytest.approx([1, 2, 3, 2, 1, 2])


def test_a_target_epoch_schedule_steps_after_each_epoch_unless_told_otherwise():
    assert lrs(target("StepLR", step_size=1, gamma=0.5))[::3] == [1.0, 0.5, 0.25, 0.125]
    per_step = lrs(target("StepLR", step_size=1, gamma=0.5, interval="step"), epochs=1)
    assert per_step == [1.0, 0.5, 0.25]


@pytest.mark.parametrize(("overrides", "message"), [
    (target("StepLR", step_size=1, interval="batch"),
     r"^scheduler.interval='batch' is not allowed: choose epoch .* or step"),
    (target("ReduceLROnPlateau", monitor="val/loss", interval="step"),
     r"^scheduler.monitor=val/loss needs scheduler.interval=epoch: metrics exist only after validation"),
    (target("StepLR", step_size=1, monitor="val/loss"),
     rf"^scheduler.monitor=val/loss is for a scheduler whose step\(\) takes a metric .*{TORCH}.StepLR.step\(\) takes "
     "an epoch: remove scheduler.monitor"),
])
def test_stepping_a_target_cannot_do_is_refused(overrides, message):
    with pytest.raises(UserError, match=message):
        lrs(overrides)


def test_the_schedule_state_of_a_target_plateau_round_trips():
    overrides = ["optimizer=sgd", *target("ReduceLROnPlateau", monitor="val/loss", patience=1)]
    cfg = compose(overrides)
    first = build_scheduler(cfg.scheduler, build_optimizer(cfg.optimizer, nn.Linear(2, 2)), 4, 3)
    first.step_epoch({"val/loss": 1.0})
    first.step_epoch({"val/loss": 2.0})
    second = build_scheduler(cfg.scheduler, build_optimizer(cfg.optimizer, nn.Linear(2, 2)), 4, 3)
    second.load_state_dict(first.state_dict())
    assert second.scheduler.num_bad_epochs == 1 and second.scheduler.best == 1.0
