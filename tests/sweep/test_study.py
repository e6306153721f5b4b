"""Opening a sweep's study: the sweep directory, the study under its lock, and clean-up when that fails."""

from pathlib import Path

import pytest

from trainctl.errors import UserError
from trainctl.sweep.storage import storage_spec
from trainctl.sweep.study import make_sweep_dir, open_study, removed_on_error


def test_removed_on_error_removes_only_what_the_block_made(tmp_path):
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "kept.txt").write_text("x")
    made = [tmp_path / "old" / "kept.txt", tmp_path / "old" / "new.db", tmp_path / "a" / "b" / "c.lock",
            tmp_path / "d" / "e.db"]
    with pytest.raises(RuntimeError), removed_on_error(made):
        for path in made[1:]:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("x")
        (tmp_path / "d" / "someone_elses.txt").write_text("x")  # a folder that is not empty stays
        raise RuntimeError("failed half-way")
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == [
        "d", "d/someone_elses.txt", "old", "old/kept.txt"]


def test_removed_on_error_keeps_everything_on_success(tmp_path):
    with removed_on_error([tmp_path / "a" / "b.db"]):
        (tmp_path / "a").mkdir()
        (tmp_path / "a" / "b.db").write_text("x")
    assert (tmp_path / "a" / "b.db").is_file()


def test_an_unwritable_sweep_dir_names_the_setting():
    with pytest.raises(UserError, match=r"^hydra\.sweeper\.sweep_dir=/proc/nope: cannot create /proc/nope/.study.lock"
                                        r" \(.*\): give a writable directory"):
        make_sweep_dir(Path("/proc/nope"), "/proc/nope")


def test_a_study_reopened_with_other_directions_is_refused(tmp_path):
    spec = storage_spec(None, tmp_path)
    open_study("s", spec, None, ["maximize"], tmp_path)
    assert open_study("s", spec, None, ["maximize"], tmp_path).study_name == "s"  # the same study, loaded
    with pytest.raises(UserError, match=r"study s in sqlite:///.* optimises \['maximize'\], but this sweep's objective"
                                        r" and hydra.sweeper.direction ask for \['minimize'\]: give a new "
                                        r"hydra.sweeper.study_name"):
        open_study("s", spec, None, ["minimize"], tmp_path)


def test_a_storage_that_cannot_be_opened_names_the_setting(tmp_path):
    with pytest.raises(UserError, match=r"^hydra\.sweeper\.storage=journal:/proc/nope/j.log: cannot open the "
                                        r"study's storage journal:/proc/nope/j.log \(FileNotFoundError: "):
        open_study("s", "journal:/proc/nope/j.log", "journal:/proc/nope/j.log", ["maximize"], tmp_path)
