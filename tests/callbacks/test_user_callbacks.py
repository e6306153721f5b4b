"""A user's own callbacks, added without editing trainctl: from a config group file in their config dir
(`_target_`) and from an installed package (entry-point group `trainctl.callbacks`), through the real CLI."""

import json

import pytest

from conftest import install_plugin, run_cli, run_dirs

pytestmark = pytest.mark.slow

# 2 epochs of 13 batches (410 training points at batch 32), a log point every 5 batches.
SMOKE = ["experiment=smoke", "trainer.log_every_n_steps=5", "tensorboard.figures=false"]

RECORDER = '''
import json
from trainctl.callbacks import Callback


class Recorder(Callback):
    """Appends every event it hears, as one JSON line, to `path`."""

    def __init__(self, path):
        self.path = path

    def _write(self, *fields):
        with open(self.path, "a") as f:
            f.write(json.dumps(fields) + "\\n")

    def on_fit_start(self, trainer):
        self._write("fit_start", trainer.state.epoch)

    def on_epoch_start(self, trainer, epoch):
        self._write("epoch_start", epoch)

    def on_step_end(self, trainer, step):
        self._write("step_end", step.epoch, step.batch)

    def on_validation_end(self, trainer, end):
        self._write("validation_end", end.epoch)

    def on_epoch_end(self, trainer, end):
        self._write("epoch_end", end.epoch, end.is_best)

    def on_checkpoint_saved(self, trainer, path):
        self._write("checkpoint_saved", path.name)

    def on_fit_end(self, trainer, result):
        self._write("fit_end", result["epochs"])

    def on_exception(self, trainer, error):
        self._write("exception", type(error).__name__)
'''


def events(path):
    return [tuple(json.loads(line)) for line in path.read_text().splitlines()]


def expected_epoch(epoch, best):
    saved = [("checkpoint_saved", "last.pt")] + ([("checkpoint_saved", "best.pt")] if best else [])
    return [("epoch_start", epoch), ("step_end", epoch, 5), ("step_end", epoch, 10), ("validation_end", epoch),
            *saved, ("epoch_end", epoch, best)]


def test_a_callback_from_the_users_config_dir_hears_every_event_in_order(tmp_path):
    (tmp_path / "recorder.py").write_text(RECORDER)  # importable from the working directory, as with python -m
    (tmp_path / "myconf" / "callbacks").mkdir(parents=True)
    (tmp_path / "myconf" / "callbacks" / "recorder.yaml").write_text(
        "recorder:\n  _target_: recorder.Recorder\n  path: events.jsonl\n")
    proc = run_cli(["train", *SMOKE, f"hydra.searchpath=[file://{tmp_path / 'myconf'}]", "callbacks=recorder"],
                   tmp_path)
    assert proc.returncode == 0, proc.stderr
    seen = events(tmp_path / "events.jsonl")
    best = [e[2] for e in seen if e[0] == "epoch_end"]
    assert best[0] is True  # the first epoch is always the best so far
    assert seen == [("fit_start", 0), *expected_epoch(1, best[0]), *expected_epoch(2, best[1]), ("fit_end", 2)]


def test_a_signal_is_announced_as_an_exception_after_the_checkpoint(tmp_path):
    (tmp_path / "recorder.py").write_text(RECORDER)
    proc = run_cli(["train", *SMOKE, "+callbacks.rec._target_=recorder.Recorder", "+callbacks.rec.path=ev.jsonl"],
                   tmp_path, TRAINCTL_FAULTS="signal_at_step=7:TERM")
    assert proc.returncode == 143, proc.stderr
    seen = events(tmp_path / "ev.jsonl")
    assert seen[-2:] == [("checkpoint_saved", "last.pt"), ("exception", "Interrupted")]
    assert ("epoch_end", 1, True) not in seen  # stopped inside epoch 1


def test_a_callback_that_is_not_one_is_a_clear_error(tmp_path):
    proc = run_cli(["train", *SMOKE, "+callbacks.bad._target_=collections.OrderedDict"], tmp_path)
    assert proc.returncode == 2
    # Refused before the class is called: an OrderedDict has none of the event methods.
    assert "callbacks.bad._target_=collections.OrderedDict is not a callback class" in " ".join(proc.stderr.split())
    assert "Traceback" not in proc.stderr
    assert not run_dirs(tmp_path)


PLUGIN_MODULE = '''
from trainctl.callbacks import Callback


class EpochCounter(Callback):
    """Writes how many epochs it saw into the run directory."""

    def __init__(self):
        self.epochs = 0

    def on_epoch_end(self, trainer, end):
        self.epochs += 1

    def on_fit_end(self, trainer, result):
        (trainer.run_dir / "epochs_seen.txt").write_text(str(self.epochs))
'''


@pytest.fixture(scope="module")
def callback_plugin(tmp_path_factory):
    return install_plugin(tmp_path_factory, "epoch_counter", PLUGIN_MODULE, "trainctl.callbacks",
                          'epoch_counter = "epoch_counter:EpochCounter"')


def test_an_installed_callback_runs_in_every_run_and_can_be_switched_off(tmp_path, callback_plugin):
    (tmp_path / "on").mkdir()
    (tmp_path / "off").mkdir()
    proc = run_cli(["train", *SMOKE], tmp_path / "on", PYTHONPATH=str(callback_plugin))
    assert proc.returncode == 0, proc.stderr
    [run] = run_dirs(tmp_path / "on")
    assert (run / "epochs_seen.txt").read_text() == "2"
    proc = run_cli(["train", *SMOKE, "+callbacks.epoch_counter=null"], tmp_path / "off",
                   PYTHONPATH=str(callback_plugin))
    assert proc.returncode == 0, proc.stderr
    [run] = run_dirs(tmp_path / "off")
    assert not (run / "epochs_seen.txt").exists()
