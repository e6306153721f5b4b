"""What the console callback prints when stdout is not a terminal (a pipe, a CI log)."""

import re

import pytest

from conftest import run_cli, run_dirs

pytestmark = pytest.mark.slow


def test_the_run_directory_is_printed_whole_on_a_narrow_pipe(tmp_path):
    proc = run_cli(["train", "experiment=smoke", "debug=fast_dev_run"], tmp_path, COLUMNS="40")
    assert proc.returncode == 0, proc.stderr
    [run] = run_dirs(tmp_path)
    assert len(str(run)) > 40  # longer than a line: the table around it would have split it
    lines = proc.stdout.splitlines()
    assert f"run: {run}" in lines  # one line, whole, ready to paste into resume=
    assert any("test/samples" in line for line in lines)  # after the summary table
    assert lines.index(f"run: {run}") > max(i for i, line in enumerate(lines) if "test/samples" in line)


RECORD = re.compile(r"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}\]\[(INFO|WARNING|ERROR)\] \S")


def test_off_a_terminal_every_log_record_is_one_line_in_the_documented_format(tmp_path):
    """`trainctl train ... 2>&1 | cat` on an 80-column setting: each record one line, ISO-dated, as in train.log."""
    proc = run_cli(["train", "experiment=smoke", "trainer.progress=true", "trainer.log_every_n_steps=4"], tmp_path,
                   COLUMNS="80")
    assert proc.returncode == 0, proc.stderr
    [run] = run_dirs(tmp_path)
    output = (proc.stdout + proc.stderr).splitlines()
    records = [line for line in output if line.startswith("[")]
    log_file = (run / "train.log").read_text().splitlines()
    assert records == log_file  # the same lines, none split: train.log writes one per record
    assert all(RECORD.match(line) for line in records)
    assert any(len(line) > 80 and "verdict:" in line for line in records)  # not wrapped at 80 columns
    assert any(line.endswith(f"outputs in {run}") for line in records)
    assert sum("batch 4/13" in line for line in records) == 2  # progress lines, one per log point
    assert not any("/26 " in line for line in output)  # no `12/04/26` dates
