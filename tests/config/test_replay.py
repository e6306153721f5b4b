"""What `resume=` may replay from a run directory's saved overrides, what Hydra flags and keys trainctl takes
from a command line, and how run directories are named: the checks themselves, without starting a run
(tests/test_security.py drives the same through the CLI with payloads)."""

import pytest
import yaml

from trainctl.config.hydra_args import check_flags, check_hydra_keys
from trainctl.config.replay import check_saved_overrides
from trainctl.engine.resume import resume_overrides
from trainctl.errors import UserError
from trainctl.files import run_dir_name


def saved_run(tmp_path, lines):
    run = tmp_path / "runs" / "shared"
    (run / ".hydra").mkdir(parents=True)
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / "last.pt").write_bytes(b"not read by this check")
    (run / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(["experiment=smoke", *lines]))
    return run


@pytest.mark.parametrize("line, why", [
    ("-m", "is a Hydra flag"),
    ("--multirun", "is a Hydra flag"),
    ("--exp=/tmp/config.pickle", "is a Hydra flag"),
    ("--experimental-rerun=runs/shared/config.pickle", "is a Hydra flag"),
    ("--config-dir=runs/shared/conf", "is a Hydra flag"),
    ("-cn", "is a Hydra flag"),
    ("hydra/job_logging=evil", "sets Hydra's own config"),
    ("hydra.searchpath=[file://runs/shared]", "sets Hydra's own config"),
    ("+hydra.callbacks.x._target_=os.getcwd", "sets Hydra's own config"),
    ("++hydra.job_logging.handlers.x.class=logging.FileHandler", "sets Hydra's own config"),
    ("experiment=../../../elsewhere/evil", "names a config file by a path"),
    ("+model=/tmp/evil", "names a config file by a path"),
    ("foo=1", "sets foo, which is not a key of trainctl's config"),
    ("model@x=cnn", "is not a key=value override"),
    ("trainer.epochs", "is not a key=value override"),
])
def test_a_saved_override_that_trainctl_never_writes_is_refused_naming_it(tmp_path, line, why):
    run = saved_run(tmp_path, [line])
    with pytest.raises(UserError, match="holds '(.*)', which") as error:
        resume_overrides([f"resume={run}"])
    assert f"holds '{line}', which {why}" in str(error.value)
    assert "someone edited this run directory" in str(error.value)


def test_saved_group_choices_are_checked_as_if_typed(tmp_path):
    with pytest.raises(UserError, match=r"overrides.yaml: unknown model 'nosuch' \(valid: cnn"):
        check_saved_overrides(["model=nosuch"], tmp_path / "overrides.yaml")
    with pytest.raises(UserError, match="overrides.yaml: ~seed: trainctl's settings can be changed but not removed"):
        check_saved_overrides(["~seed"], tmp_path / "overrides.yaml")


def test_a_saved_permission_is_never_replayed(tmp_path):
    run = saved_run(tmp_path, ["trust_targets=true", "resume_allow_changes=true", "trainer.epochs=1"])
    replayed = resume_overrides([f"resume={run}"])
    assert "trainer.epochs=1" in replayed
    assert not any(o.startswith(("trust_targets", "resume_allow_changes")) for o in replayed)


def test_plain_saved_overrides_are_replayed(tmp_path):
    run = saved_run(tmp_path, ["model=mlp", "callbacks=none", "trainer.epochs=1", "++seed=3", "name=first"])
    replayed = resume_overrides([f"resume={run}", "trainer.epochs=2"])
    assert replayed[:6] == ["experiment=smoke", "model=mlp", "callbacks=none", "trainer.epochs=2", "++seed=3",
                            "name=first"]
    assert f"hydra.run.dir='{run}'" in replayed or f"hydra.run.dir={run}" in replayed


@pytest.mark.parametrize("arg", ["--exp=/tmp/x.pickle", "--experimental-re", "--e=x", "--experimental-rerun",
                                 "--experimental-rerun=x"])
def test_every_prefix_of_experimental_rerun_is_refused(arg):
    with pytest.raises(UserError, match="does not take --experimental-rerun"):
        check_flags(["experiment=smoke", arg, "/tmp/x.pickle"])


@pytest.mark.parametrize("arg, full", [("--config-d=/tmp", "--config-dir"), ("--mult", "--multirun"),
                                       ("--h", "--help or --hydra-help"), ("--conf", "--config-")])
def test_abbreviated_hydra_flags_are_refused_naming_the_full_flag(arg, full):
    with pytest.raises(UserError, match="write the flag in full") as error:
        check_flags([arg])
    assert full in str(error.value)


def test_full_flags_and_overrides_pass():
    check_flags(["--cfg", "job", "--config-dir=/tmp", "-m", "--multirun", "--", "--help", "a=1"])


@pytest.mark.parametrize("arg", ["+hydra.job_logging.handlers.x={class: logging.FileHandler, filename: /tmp/x}",
                                 "+hydra.job_logging.handlers.x.class=logging.FileHandler",
                                 "+hydra.hydra_logging.formatters.f={'()': os.getcwd}",
                                 "hydra.job_logging.handlers={x: {class: logging.StreamHandler}}",
                                 "~hydra.callbacks.preflight", "hydra.callbacks={}",
                                 "hydra.callbacks.preflight._target_=hydra.experimental.callback.Callback"])
def test_hydra_keys_that_name_code_are_refused(arg):
    with pytest.raises(UserError, match=r"\(from the command line\)"):
        check_hydra_keys([arg])


@pytest.mark.parametrize("arg", ["+hydra.callbacks.x._target_=os.getcwd", "+hydra.callbacks.x._target_=os.system",
                                 "+hydra.callbacks.x={_target_: subprocess.Popen, args: [touch, x]}"])
def test_a_hydra_callback_must_be_a_hydra_callback_class(arg):
    with pytest.raises(UserError, match=r"hydra.callbacks.x._target_=\S+ is not a Hydra callback"):
        check_hydra_keys([arg])


def test_a_hydra_callback_class_passes():
    check_hydra_keys(["+hydra.callbacks.x._target_=hydra.experimental.callbacks.LogJobReturnCallback",
                      "+hydra.callbacks.x.count=2"])


def test_hydra_logging_levels_and_the_run_dir_pass():
    check_hydra_keys(["hydra.job_logging.root.level=DEBUG", "hydra.run.dir=runs/mine",
                      "++hydra.job_logging.handlers.file.delay=true", "hydra/job_logging=disabled"])


def test_a_named_run_gets_its_name_and_never_an_existing_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert run_dir_name("runs", "2026-01-01_00-00-00", "baseline", "cnn-mnist") == "runs/2026-01-01_00-00-00_baseline"
    (tmp_path / "runs" / "2026-01-01_00-00-00_baseline").mkdir(parents=True)
    again = run_dir_name("runs", "2026-01-01_00-00-00", "baseline", "cnn-mnist")
    assert again.startswith("runs/2026-01-01_00-00-00_baseline_") and len(again) == len("runs/") + 35
    unnamed = run_dir_name("runs", "2026-01-01_00-00-00", None, "cnn-mnist")
    assert unnamed.startswith("runs/2026-01-01_00-00-00_cnn-mnist_")
    for bad in ("../x", "a/b", ".hidden", "a..b"):
        with pytest.raises(ValueError, match="a run name is up to 64"):
            run_dir_name("runs", "2026-01-01_00-00-00", bad, "cnn-mnist")
