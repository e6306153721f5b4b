"""Command-line arguments the CLI refuses with exit 2 and one message naming the culprit: unknown commands and
options, bad overrides, references to nothing, a working directory Hydra would misread (corpus: bad_cases.py)."""

from __future__ import annotations

import pytest

from conftest import NO_SYSTEM_DATA, run_cli

from bad_cases import assert_refused_cleanly, no_runs


CLI_CASES = [
    # (args, what the message must name)
    (["frobnicate"], "frobnicate"),
    (["train", "model=cnnn"], "cnnn"),
    (["train", "experiment=smok"], "smok"),
    (["train", "trainer.epochs=abc"], "trainer.epochs"),
    (["train", "trainer.epoch=3"], "trainer.epochs"),
    (["train", "modle=cnn"], "model"),
    (["train", "+trainer.x=1"], "trainer.x"),
    (["train", "optimizer.lr=-1"], "optimizer.lr"),
    (["train", "optimizer.lr=inf"], "optimizer.lr"),
    (["train", "model.batch_norm=2"], "model.batch_norm"),
    (["train", "~model"], "model"),
    (["train", "model.activation=swish"], "model.activation"),
    (["train", "experiment=smoke", "seed=${seed}"], "seed cannot be resolved"),
    (["train", "experiment=smoke", "model.hidden=${trainer.batch_size}"], "model.hidden=32 is not a list"),
    (["train", "experiment=smoke", "+trainer._target_=os.system"], "trainer._target_: trainer is trainctl's own"),
    (["train", "-m", "hydra/sweeper=optuna", "experiment=smoke", "optimizer.lr=interval(0.01,0.1)",
      "+hydra.sweeper.bogus=1"], "hydra.sweeper.bogus is not a setting of hydra.sweeper"),
    (["train", "-m", "hydra/sweeper=optuna", "experiment=smoke", "optimizer.lr=interval(0.01,0.1)",
      "hydra.sweeper.study_name=a/../../b"], "hydra.sweeper.study_name=a/../../b is not valid"),
    (["lr-find", "experiment=smoke", "lr_find.steps=100000000"], "lr_find.steps=100000000 is more than"),
    (["eval", "ckpt=a.pt", "ckpt=b.pt"], "ckpt= is given twice"),
    ([], "usage: trainctl <command>"),
    (["train", "experiment=smoke", "hydra.searchpath=[file:///no/such/confdir]"], "/no/such/confdir"),
    (["train", "-cd", "no_such_confdir", "experiment=smoke"], "no_such_confdir"),
    (["train", "experiment=smoke", "trainer.epochs=${oc.env:TRAINCTL_NO_SUCH_VARIABLE}"],
     "trainer.epochs cannot be resolved"),
    (["train", "experiment=smoke", "~seed"], "~seed: trainctl's settings can be changed but not removed"),
    (["train", "experiment=smoke", "hydra.run.dir="], "hydra.run.dir=: an empty output directory"),
    (["train", "experiment=smoke", "model.hidden=[1000000000]"], "model.hidden"),
    (["train", "experiment=smoke", "model=lenet"], "model.hidden is not a setting of model=lenet"),
    (["train", "-m", "experiment=smoke", "seed=range(0,100000000)"], "would launch 100,000,000 jobs"),
    (["train", "-m", "experiment=smoke", "trainer.epochs=range(1,3,0)"], "trainer.epochs=range(1,3,0)"),
    (["train", "-m", "hydra/sweeper=optuna", "experiment=smoke", "optimizer.lr=interval(0.1,0.1)"],
     "the interval holds one value"),
    (["train", "-m", "hydra/sweeper=optuna", "experiment=smoke", "optimizer.lr=tag(bogus,interval(0.1,1))"],
     "unknown tag(s) bogus"),
    (["train", "-m", "hydra/sweeper=optuna", "experiment=smoke", "optimizer.lr=tag(log,choice(0.1,0.2))"],
     "applies to interval(a,b) only"),
    (["train", "dataset.root=/nowhere", NO_SYSTEM_DATA], "/nowhere"),
    (["train", "device=tpu"], "tpu"),
    (["train", "-m", "model=mlp,lenet", "experiment=smoke"], "model.hidden"),
    (["train", "-m", "resume=runs/x", "experiment=smoke"], "resume"),
    (["train", "resume=/no/such/run"], "/no/such/run"),
    (["train", "--experimental-rerun", "x.pickle"], "--experimental-rerun"),
    (["train", "+loss._target_=os.system", "experiment=smoke"], "loss._target_=os.system"),
    (["train", "+callbacks.x._target_=os.getcwd", "experiment=smoke"], "callbacks.x._target_"),
    (["eval"], "which checkpoint"),
    (["eval", "ckpt=/no/such.pt"], "/no/such.pt"),
    (["eval", "split=test"], "which checkpoint"),
    (["eval", "ckpt"], "ckpt"),
    (["list", "modle"], "modle"),
    (["train", "dataset=fashionmnist", "dataset.mean=[0.5,0.5,0.5]"], "dataset.mean"),
    (["train", "-m", "experiment=smoke", "optimizer.lr=glob(*)"], "optimizer.lr=glob(*) selects nothing"),
    (["train", "-m", "experiment=smoke", "trainer.epochs=range(3,1)"], "trainer.epochs=range(3,1) expands to no value"),
    (["train", "-m", "hydra/sweeper=optuna", "experiment=smoke", "optimizer.lr=interval(1e-3,nan)"],
     "every bound must be a finite number"),
    (["train", "-m", "hydra/sweeper=optuna", "experiment=smoke", "optimizer.lr=0.1,0.2",
      "+hydra.sweeper.params={trainer.epochs:'choice(a,b)'}"], "trainer.epochs=a is not valid"),
    (["train", "experiment=smoke", "scheduler=lambda", "scheduler.formula=0.5*(1+cos(pi*epoch/10))"],
     "scheduler.formula='0.5*(1+cos(pi*epoch/10))'"),
]


@pytest.mark.slow
@pytest.mark.parametrize(("args", "culprit"), CLI_CASES, ids=[" ".join(a) for a, _ in CLI_CASES])
def test_the_cli_refuses_cleanly(tmp_path, args, culprit):
    proc = run_cli(args, tmp_path)
    assert_refused_cleanly(proc, culprit)
    assert no_runs(tmp_path)


@pytest.mark.slow
def test_a_working_directory_with_an_interpolation_in_its_path_is_refused_clearly(tmp_path):
    cwd = tmp_path / "odd${x}"
    cwd.mkdir()
    proc = run_cli(["train", "experiment=smoke"], cwd)
    assert proc.returncode == 2 and "has '${' in its path" in proc.stderr and "Traceback" not in proc.stderr
    assert not (cwd / "runs").exists()


@pytest.mark.slow
def test_a_broken_user_yaml_names_its_file_and_line(tmp_path):
    (tmp_path / "conf" / "model").mkdir(parents=True)
    (tmp_path / "conf" / "model" / "bad.yaml").write_text("hidden: [1, 2\nfoo: bar\n")
    proc = run_cli(["train", "-cd", "conf", "model=bad", "dataset=blobs"], tmp_path)
    assert proc.returncode == 2 and "bad.yaml, line 2" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("args", [["eval", "ckpt=" + "a" * 300], ["sweep-report", "b" * 300]],
                         ids=["eval-ckpt", "sweep-report"])
def test_a_path_too_long_for_the_system_is_named_not_a_traceback(tmp_path, args):
    proc = run_cli(args, tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "File name too long" in proc.stderr and args[-1].split("=")[-1][:50] in proc.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("args,named", [
    (["train", "--cfg", "job", "seed=${nosuch}"], "Interpolation key 'nosuch' not found"),
    (["train", "--shell-completion"], "--shell-completion needs what to do"),
    (["train", "experiment=smoke", "hydra=1"], "hydra: Config group override must be a string"),
], ids=["reference-to-nothing", "completion-without-action", "hydra-group-given-a-number"])
def test_what_hydra_refuses_is_one_message_not_a_traceback(tmp_path, args, named):
    proc = run_cli(args, tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and named in proc.stderr, proc.stderr[-2000:]
    assert no_runs(tmp_path)


def test_a_number_too_long_for_pythons_reader_is_named_typed_or_saved(tmp_path):
    huge = "7" * 5000
    proc = run_cli(["train", "experiment=smoke", f"seed={huge}"], tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "seed (on the command line)" in proc.stderr
    run = tmp_path / "runs" / "saved"
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "overrides.yaml").write_text(f"- experiment=smoke\n- seed={huge}\n")
    proc = run_cli(["train", f"resume={run}"], tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert "holds a number of 5000 digits" in proc.stderr or "no checkpoint" in proc.stderr
    assert sorted(p.name for p in run.rglob("*")) == [".hydra", "overrides.yaml"]
