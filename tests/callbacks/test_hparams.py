"""The HParams session a run writes: value types as TensorBoard shows them, statuses from how the run ended, and
one session per run in the run's own event file, read back with TensorBoard's own reader."""

import math

import pytest
from tensorboard.plugins.hparams import api_pb2

from conftest import hparams_session
from trainctl.callbacks.hparams import hparam_value, run_status, session_status, write_session


@pytest.mark.parametrize("value, kind, shown", [
    (0.003, "number_value", 0.003),
    (32, "string_value", "32"),  # TensorBoard would print the number 32 as 32.000
    (True, "bool_value", True),  # not 1 (bool is an int in Python)
    ("cnn", "string_value", "cnn"),
    ([64, 64], "string_value", "[64, 64]"),
    (None, "string_value", "None"),
])
def test_values_keep_the_type_tensorboard_should_show(value, kind, shown):
    proto = hparam_value(value)
    assert proto.WhichOneof("kind") == kind and getattr(proto, kind) == shown


@pytest.mark.parametrize("result, status", [
    ({"status": "completed", "objective_value": 0.9}, "completed"),
    ({"status": "early_stopped", "objective_value": 0.8}, "early_stopped"),
    ({"status": "pruned", "objective_value": 0.1}, "pruned"),
    ({"status": "pruned", "objective_value": math.nan}, "pruned"),
    ({"status": "completed", "objective_value": math.nan}, "failed"),  # the sweep records such a trial FAIL
    ({"status": "completed", "objective_value": [0.9, math.inf]}, "failed"),
    ({"status": "completed", "objective_value": [0.9, 0.2]}, "completed"),
])
def test_run_status_follows_the_sweeps_rule(result, status):
    assert run_status(result) == status


@pytest.mark.parametrize("status, expected", [
    ("completed", api_pb2.STATUS_SUCCESS),
    ("early_stopped", api_pb2.STATUS_SUCCESS),
    ("pruned", api_pb2.STATUS_UNKNOWN),  # Optuna's PRUNED: neither success nor failure
    ("failed", api_pb2.STATUS_FAILURE),  # Optuna's FAIL
])
def test_only_runs_that_ended_with_their_objective_are_success(status, expected):
    assert session_status(status) == expected


def test_the_session_goes_to_the_writers_own_directory(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(log_dir=str(tmp_path))
    writer.add_scalar("val/acc", 0.5, 1)
    write_session(writer.file_writer, {"optimizer.lr": 0.01, "trainer.batch_size": 64, "model": "cnn"}, "pruned",
                  1, started=1000.0)
    writer.close()
    params, status = hparams_session(tmp_path)
    assert params == {"optimizer.lr": 0.01, "trainer.batch_size": "64", "model": "cnn", "status": "pruned"}
    assert status == "STATUS_UNKNOWN"
    assert [p.name for p in tmp_path.iterdir()] == [next(tmp_path.glob("events.out.tfevents.*")).name]
