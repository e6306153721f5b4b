"""What the console callback prints when stdout is not a terminal (a pipe, a CI log)."""

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
