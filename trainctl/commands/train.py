"""The Hydra entry of `trainctl train`: a thin wrapper that calls `train(cfg)` and returns the objective.

Checks that need no output directory (ranges, the device, data presence) run in a Hydra callback before Hydra
creates the run directory, so a bad command writes nothing. Inside a multirun each job is checked again by
`train()`; a job that fails such a check has its (empty) directory removed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from trainctl.config.compose import config_dir, job_output_dir, raw_overrides, register_schemas
from trainctl.errors import EXIT_NON_FINITE, EXIT_USER_ERROR, UserError, report_user_error
from trainctl.engine.signals import SignalInterrupt, signal_pending


def preflight(cfg: DictConfig, overrides: list[str] = ()) -> None:
    """Validate a composed config without writing anything; raises UserError."""
    from trainctl.config.validate import validate
    from trainctl.data.locate import check_available

    validate(cfg, list(overrides))
    check_available(cfg.dataset)
    if cfg.device.name not in ("auto", "cpu") or cfg.device.get("index") is not None:
        from trainctl.device import config_device  # auto and cpu always exist: no need to load torch to ask

        config_device(cfg.device)
    from trainctl.commands.launch import processes

    processes(cfg)  # trainer.devices against the GPUs present (loads torch only when devices is set)


def multirun_preflight(cfg: DictConfig, overrides: list[str] = ()) -> None:
    """`preflight` for one job of a multirun, which also runs in one process."""
    from trainctl.commands.launch import refuse_in_multirun

    refuse_in_multirun(cfg)
    preflight(cfg, overrides)


def unresolvable_message(error: Exception, overrides: list[str]) -> str:
    """A value that cannot be resolved (`seed=${seed}`, `${oc.env:UNSET}`), named by its key when omegaconf does
    not say: the override that holds a reference."""
    key = next((o.split("=", 1)[0].lstrip("+~") for o in overrides if "${" in o.partition("=")[2]), "a value")
    return (f"{key} cannot be resolved: {str(error).strip().splitlines()[0]}. Give it a plain value or a reference "
            "to another key that resolves (e.g. ${trainer.epochs}).")


def _with_saved_source(error: UserError, overrides: list[str]) -> UserError:
    """On resume, a bad value may come from the run's saved overrides rather than the command line: say which
    file holds it and how to replace it, instead of "fix it on the command line"."""
    resume = next((a.split("=", 1)[1] for a in _user_args if a.startswith("resume=")), None)
    if resume is None:
        return error
    typed = {a.split("=", 1)[0].lstrip("+~") for a in _user_args}
    text = str(error)
    saved = [o for o in overrides if "=" in o and o.split("=", 1)[0].lstrip("+~") not in typed
             and not o.startswith("hydra") and o in text]
    if not saved:
        return error
    key = saved[0].split("=", 1)[0].lstrip("+~")
    return UserError(f"{text}\n{saved[0]} is not on your command line: it is replayed from the saved overrides of "
                     f"the run being resumed (resume={resume}, its .hydra/overrides.yaml). Give {key}=<value> on "
                     "the command line to replace it, or remove the line from that file.")


class Preflight(Callback):
    """Runs `preflight` on the composed config before Hydra makes the run or sweep directory."""

    def _check(self, config: DictConfig, multirun: bool = False) -> DictConfig:
        from trainctl.commands.launch import refuse_in_multirun
        from trainctl.config.aliases import old_name_notices
        from trainctl.sweep.grid_check import check_grid

        try:
            task_cfg = OmegaConf.masked_copy(config, [k for k in config.keys() if k != "hydra"])
            if multirun:
                refuse_in_multirun(task_cfg)
            preflight(task_cfg, raw_overrides(config.hydra.overrides.task))
            if multirun:  # each job of a grid, before the sweep directory exists (train() checks again)
                check_grid(config, multirun_preflight)
        except UserError as e:
            report_user_error(_with_saved_source(e, raw_overrides(config.hydra.overrides.task)))
            sys.exit(EXIT_USER_ERROR)
        except OmegaConfBaseException as e:  # Hydra would only warn about a callback's error and go on
            report_user_error(UserError(unresolvable_message(e, raw_overrides(config.hydra.overrides.task))))
            sys.exit(EXIT_USER_ERROR)
        for notice in old_name_notices(task_cfg):
            logging.getLogger("trainctl").warning(notice)
        return task_cfg

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        from trainctl.commands.launch import launch, processes, world

        task_cfg = self._check(config)
        n = processes(task_cfg)
        if n > 1:  # trainer.devices=N: torchrun runs this command line N times; this process only waits
            sys.exit(launch(_user_args, n))
        if world()[0] == 0:  # rank 0 writes the run directory (the others write to a scratch folder)
            HydraConfig.instance().set_config(config)  # as Hydra does next: the dir's `${hydra:...}` need it
            try:
                claim_run_dir(Path(str(config.hydra.run.dir)), resumed=bool(task_cfg.resume))
            except UserError as e:
                report_user_error(e)
                sys.exit(EXIT_USER_ERROR)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        global _sweep_dir
        from hydra_plugins.trainctl_optuna.config import adopt_sweeper_target

        notice = adopt_sweeper_target(config.hydra.sweeper)  # before Hydra instantiates the sweeper it names
        if notice:
            logging.getLogger("trainctl").warning(notice)
        self._check(config, multirun=True)
        from trainctl.config.job_names import remember_varied

        remember_varied(config.hydra.overrides.task)  # what each job's directory name shows
        _sweep_dir = Path(config.hydra.sweep.dir)  # the same value Hydra uses: the run-name token is cached


def claim_run_dir(run_dir: Path, resumed: bool) -> None:
    """Before Hydra writes into the run directory: take its lock for this process's life (a second `train` or
    `resume` of it stops here, naming the process that holds it), and refuse a directory that already holds a
    run unless this command resumes it."""
    from trainctl.files import check_not_locked, holds_run, lock_run_dir

    check_not_locked(run_dir)  # a live writer is named first; nothing of the directory is touched before
    if not resumed and holds_run(run_dir):
        raise UserError(f"hydra.run.dir={run_dir} already holds a run, and a run directory is never overwritten: "
                        f"continue that run with resume={run_dir}, or train anew in another directory (leave "
                        "hydra.run.dir out for a fresh one, or give the run a name with name=NAME).")
    lock_run_dir(run_dir)


_sweep_dir: Path | None = None  # the multirun's directory, once Hydra has chosen it
_user_args: list[str] = []  # `trainctl train`'s arguments as typed: what each process of trainer.devices=N runs
def remove_untouched_outputs() -> None:
    """After a config error found while Hydra composed a multirun's job: remove the multirun's directory when
    it holds only `multirun.yaml` (and the jobs' empty folders)."""
    if _sweep_dir is None or not _sweep_dir.is_dir():
        return
    files = [p for p in _sweep_dir.rglob("*") if p.is_file()]
    if all(p.name == "multirun.yaml" or ".hydra" in p.parts for p in files):
        shutil.rmtree(_sweep_dir, ignore_errors=True)
        with contextlib.suppress(OSError):
            _sweep_dir.parent.rmdir()


class NewRunDir(Callback):
    """Notes, before Hydra makes it, the run directory this command will make (none when it exists already: a
    resumed run's), so that a signal that stops the command before its run begins leaves no empty one behind."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        global _new_run_dir
        _new_run_dir = None
        with contextlib.suppress(Exception):  # a run.dir that cannot be resolved: Hydra reports it next
            HydraConfig.instance().set_config(config)  # as Hydra does next: `${hydra:...}` in run.dir needs it
            run_dir = Path(str(config.hydra.run.dir))  # the value Hydra will use: its resolvers are cached
            _new_run_dir = None if run_dir.exists() else run_dir


_new_run_dir: Path | None = None


def remove_interrupted_outputs() -> None:
    """After a signal that stopped the command before its run began: the run (or multirun) directory Hydra made
    for it, when it holds nothing of the run yet."""
    remove_untouched_outputs()
    if _new_run_dir is not None and _new_run_dir.is_dir():
        if not any(_new_run_dir.iterdir()):
            _new_run_dir.rmdir()  # made, and stopped before anything was written in it
        remove_if_untouched(_new_run_dir, resumed=False)


def remove_if_untouched(run_dir: Path, resumed: bool) -> None:
    """Delete a run directory that this command created and that holds only Hydra's config copy and the log,
    so a command that failed its checks leaves nothing behind. Never a resumed run's directory."""
    if resumed or not run_dir.is_dir():
        return
    from trainctl.files import LOCK_FILE, check_not_locked, unlock_run_dir

    try:
        check_not_locked(run_dir)
    except UserError:
        return  # another live process's run (this one failed to take its lock): never touched
    if {p.name for p in run_dir.iterdir()} <= {".hydra", "train.log", LOCK_FILE}:
        unlock_run_dir(run_dir)
        shutil.rmtree(run_dir, ignore_errors=True)
        with contextlib.suppress(OSError):  # and runs/ itself when this run was all it held
            run_dir.parent.rmdir()


def _task(cfg: DictConfig) -> Any:
    """Train; return the objective (a list for multi-objective) for sweepers."""
    from trainctl import clock

    clock.mark("compose and validate")
    from hydra.types import RunMode

    from trainctl.api import train
    from trainctl.commands.launch import quiet_other_ranks, refuse_in_multirun, remove_scratch, world
    from trainctl.engine.distributed import DistributedFailure
    from trainctl.engine.signals import Interrupted
    from trainctl.engine.step import NonFiniteLoss
    from trainctl.sweep.trial_link import in_sweep

    from trainctl.config.validate import validate_overrides

    clock.mark("torch and engine imports")
    run_dir = job_output_dir()
    first = world()[0] == 0  # rank 0, or the only process: it speaks for the run
    quiet_other_ranks()
    try:
        if HydraConfig.get().mode == RunMode.MULTIRUN:
            refuse_in_multirun(cfg)
        # each job's own values; train() does the rest
        validate_overrides(cfg, raw_overrides(HydraConfig.get().overrides.task))
        result = train(cfg, run_dir=run_dir)
    except UserError as e:
        if in_sweep():  # one bad trial is recorded FAIL by the optuna sweeper; the sweep goes on
            logging.getLogger("trainctl").error("trial failed: %s", e)
            raise
        if first:  # the other processes found the same
            report_user_error(e)
        remove_if_untouched(run_dir, resumed=bool(cfg.resume))
        sys.exit(EXIT_USER_ERROR)
    except DistributedFailure as e:
        logging.getLogger("trainctl.file").error("%s", e)
        report_user_error(e)
        sys.exit(1)
    except Interrupted as stop:
        if first:
            logging.getLogger("trainctl").warning("%s: saved checkpoints/last.pt; resume with resume=%s", stop,
                                                  run_dir)
        sys.exit(stop.exit_code)
    except NonFiniteLoss as e:
        if in_sweep():
            logging.getLogger("trainctl").error("%s", e)
            raise  # the trial is recorded FAIL and the sweep goes on
        logging.getLogger("trainctl.file").error("%s", e)  # train.log only: the console gets it once, below
        report_user_error(UserError(str(e)))
        sys.exit(EXIT_NON_FINITE)
    except Exception:
        logging.getLogger("trainctl").exception("run failed")  # the traceback lands in this run's own log
        raise
    finally:
        remove_scratch(run_dir)
    if result["status"] == "pruned":
        import optuna

        raise optuna.TrialPruned(f"pruned after epoch {result['epochs']}")
    value = result["objective_value"]
    return [float(v) for v in value] if isinstance(value, list) else float(value)


def register_sweeper() -> None:
    """Make `hydra/sweeper=optuna` available however trainctl is installed.

    Hydra finds plugins by walking the `hydra_plugins` namespace package; an editable install hides our part of
    that namespace from the walk, so the sweeper is also registered by hand (registering twice is harmless).
    """
    from hydra.core.plugins import Plugins

    from hydra_plugins.trainctl_optuna.optuna_sweeper import TrainctlOptunaSweeper

    Plugins.instance().register(TrainctlOptunaSweeper)


SHOW_CONFIG = ("--cfg", "-c", "--help", "-h")  # Hydra's flags that print the config instead of running


def _package_flag(args: list[str]) -> str | None:
    """The value of Hydra's `--package`/`-p` flag, or None."""
    for i, arg in enumerate(args):
        if arg in ("--package", "-p") and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith("--package="):
            return arg.split("=", 1)[1]
    return None


def run_train(args: list[str]) -> int:
    """Hand `args` to Hydra exactly as a `@hydra.main` script would receive them; report config errors that
    Hydra finds while composing in trainctl's words, with the user-error exit code."""
    from trainctl.config.hydra_args import check_flags
    from trainctl.config.hydra_errors import explain
    from trainctl.config.overrides import quote_paths
    from trainctl.engine.resume import resume_overrides

    if "${" in os.getcwd():  # Hydra stores the absolute run directory in its config, where `${` starts a reference
        raise UserError(f"the working directory {os.getcwd()} has '${{' in its path, which Hydra reads as the start "
                        "of an interpolation in every path under it: run trainctl from a directory without '${'.")
    check_flags(args)  # also here: run_train is an entry of its own (tests, the torchrun relaunch)
    register_schemas()
    register_sweeper()
    main = hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="train")(_task)
    completing = any(a in ("-sc", "--shell-completion") for a in args)
    from trainctl.commands.launch import scratch_overrides

    global _user_args
    _user_args = list(args)
    overrides = scratch_overrides(resume_overrides(quote_paths(args)))
    if any(a in SHOW_CONFIG or a.startswith("--cfg=") for a in args) and "--resolve" not in args:
        overrides.append("--resolve")  # values, not `${trainctl_first_set:...}`: what the run would use
    sys.argv = ["trainctl" if completing else "trainctl train", *overrides]
    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra raises instead of printing its own text and exiting 1
    try:
        main()
    except KeyboardInterrupt:  # a signal outside the loop (engine.signals): no directory it made stays behind empty
        remove_interrupted_outputs()
        raise
    except SystemExit as e:
        package = _package_flag(args)
        if e.code == 1 and package is not None:  # Hydra wrote "package 'x' not found in config" and exits 1
            raise UserError(f"--package {package}: the config has no key {package!r} to print; give one of its "
                            "top-level keys (model, optimizer, trainer, ...) or a dotted key under them "
                            "(--package model --cfg job)") from None
        raise
    except Exception as e:
        signum = signal_pending()
        if signum is not None:  # the signal struck inside a library, which failed on its way out: still the stop
            remove_interrupted_outputs()
            raise SignalInterrupt(signum) from None
        message = explain(e, [a for a in overrides if not a.startswith("-")])
        if message is None:
            raise  # not a config error: a bug, with its traceback
        remove_untouched_outputs()
        raise UserError(message) from None
    return 0
