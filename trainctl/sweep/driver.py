"""The sweep: ask Optuna for a trial, launch it as one Hydra job, tell Optuna how it ended; repeat to n_trials.

Trials are launched one job at a time so that, with `n_jobs > 1` workers on a parallel launcher, a new trial
starts as soon as any one finishes rather than when a whole batch does. The count-then-ask step holds the study
lock, which lives with the storage (`storage_lock`), so several sweep processes sharing one study, on one machine
or many, stop at exactly `n_trials`. On a machine with GPUs each running trial is lent one (`gpus`).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import optuna
from hydra.core.utils import JobStatus
from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict, read_write
from optuna.trial import TrialState

from trainctl.errors import UserError
from trainctl.files import atomic_write_bytes
from trainctl.sweep import results
from trainctl.sweep.algorithms import make_pruner, make_sampler, setting_line
from trainctl.sweep.conditional import add_structure, candidates, overrides_of, structured
from trainctl.sweep.enqueue import check_points, enqueue
from trainctl.sweep.gpus import GpuPool, overrides_for, plan_pool
from trainctl.sweep.heartbeat import ask, beating, fail_silent_trials, heartbeat_arguments
from trainctl.sweep.space import SearchSpace, describe, format_value, grid_values, parse_search_space, quoted
from trainctl.sweep.settings import check_settings
from trainctl.sweep.space_check import check_space
from trainctl.sweep.storage import check_storage, check_storage_files, storage_files, storage_spec
from trainctl.sweep.storage_lock import LOCK_FILE, lock_path, make_study_lock
from trainctl.sweep.study import fail_stale_trials, make_sweep_dir, name_metrics, open_study, owner, removed_on_error
from trainctl.sweep.study_name import default_study_name
from trainctl.sweep.trial_link import (ENV_STORAGE, ENV_STUDY, ENV_TRIAL_NUMBER, forget_in_process,
                                       register_in_process)
from trainctl.metrics import direction as metric_direction
from trainctl.metrics import objectives

log = logging.getLogger("trainctl.sweep")
optuna.logging.set_verbosity(optuna.logging.WARNING)  # our own log lines say what happened, once


def _plain(value: Any) -> Any:
    return OmegaConf.to_container(value, resolve=True) if isinstance(value, (DictConfig, ListConfig)) else value


RESUME_IN_MULTIRUN = ("resume= continues one run and cannot be part of a multirun (-m): resume each run with its "
                      "own `trainctl train resume=<run dir>`; an optuna sweep continues when the same command "
                      "runs again")
def _outcome_text(ret: Any, reason: str | None, values: Any) -> str:
    """What follows a trial's state in the log: its error, its objective value(s), or why it was pruned."""
    if reason:
        return f": {reason}"
    if values is not None:
        return f" {values}"
    pruned = getattr(ret, "_return_value", None)
    return f" ({pruned})" if isinstance(pruned, optuna.TrialPruned) and str(pruned) else ""


class SweepDriver:
    def __init__(self, settings: dict[str, Any], config: DictConfig, launcher: Any) -> None:
        self.s = {k: _plain(v) for k, v in settings.items()}
        self.config, self.launcher = config, launcher
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.failure: str | None = None
        self.gpus: GpuPool | None = None  # the GPUs lent to running trials, when there are several (gpus.py)

    # ---- setup -----------------------------------------------------------------------------------------------
    def _objectives(self) -> tuple[list[str], list[str]]:
        names = objectives(self.config.objective)
        direction = self.s["direction"]
        if direction is None:
            directions = [metric_direction(name) for name in names]
        elif isinstance(direction, list):
            directions = direction
        elif len(names) > 1:  # one word for several metrics would maximise a loss or minimise an accuracy
            raise UserError(f"objective names {len(names)} metrics {names} but hydra.sweeper.direction={direction} "
                            "is one direction: give one per metric, e.g. hydra.sweeper.direction=["
                            f"{','.join(metric_direction(n) for n in names)}], or leave it out (each metric's own)")
        else:
            directions = [direction]
        bad = [d for d in directions if d not in ("maximize", "minimize")]
        if bad:
            raise UserError(f"hydra.sweeper.direction has {bad}: use maximize or minimize (a list for several)")
        if len(directions) != len(names):
            raise UserError(f"objective names {len(names)} metric(s) {names} but hydra.sweeper.direction gives "
                            f"{len(directions)}: give one direction per metric")
        return names, directions

    def _sampler(self, space: SearchSpace, joined: int) -> optuna.samplers.BaseSampler:
        # each process that joins the study draws its own sequence, even if they start together
        return make_sampler(self.s["sampler"], self.s["seed"], space, joined)

    def _pruner(self) -> optuna.pruners.BasePruner:
        return make_pruner(self.s["pruner"], self.s["pruner_startup_trials"], self.s["pruner_warmup_epochs"],
                           int(self.config.trainer.epochs))

    # ---- run -------------------------------------------------------------------------------------------------
    def run(self, arguments: list[str]) -> list[Any]:
        space, directions = self._validate(arguments)
        if self.s["dry_run"]:
            return self._dry_run(space, directions)
        study = self._open_study(space, directions)
        name_metrics(study, self.names)
        log.info("study %s in %s: %d of %d trials exist; storage %s", self.study_name, self.sweep_dir,
                 len(study.trials), self.n_trials, self.spec)
        self.study, self.space = study, space
        timeout = self.s["timeout"]
        self.deadline = time.monotonic() + timeout if timeout is not None else math.inf
        self._link_jobs()
        if self.s["n_jobs"] == 1:
            self._worker()
        else:
            with ThreadPoolExecutor(self.s["n_jobs"]) as pool:
                for future in [pool.submit(self._worker) for _ in range(self.s["n_jobs"])]:
                    future.result()
        fail_silent_trials(study)  # a trial whose process died after this one's last ask
        results.write_all(study, self.sweep_dir, self.names, self.spec)
        results.print_top(study, self.names)
        self._report(study)
        if self.failure:
            raise UserError(self.failure)
        return []

    def _report(self, study: optuna.Study) -> None:
        """The sweep's report (report.html, report_*.png) and its importance table; a report that cannot be
        written costs the sweep nothing: its results are saved, and `trainctl sweep-report` writes it later."""
        from trainctl.sweep.report import print_importances, write_report

        try:
            page, sections = write_report(study, self.sweep_dir, self.names)
        except OSError as e:
            log.warning("could not write the sweep report (%s): run trainctl sweep-report %s", e, self.sweep_dir)
            return
        print_importances(sections)
        log.info("report: %s", page)

    def _validate(self, arguments: list[str]) -> tuple[SearchSpace, list[str]]:
        """Every check the command can fail, done before anything is written: settings, search space,
        objective, sampler and pruner, storage URL."""
        check_settings(self.s)
        if self.s["n_jobs"] > 1 and type(self.launcher).__name__ == "BasicLauncher":
            raise UserError("hydra.sweeper.n_jobs > 1 needs a parallel launcher: add hydra/launcher=joblib "
                            "(the default launcher runs one job at a time in this process)")
        space = parse_search_space(arguments, self.s["params"])
        add_structure(space, self.s.get("conditional"), self.s.get("depth"))
        if structured(space) and self.s["sampler"] == "grid":
            raise UserError("sampler=grid cannot search hydra.sweeper.conditional or hydra.sweeper.depth (its grid "
                            "is fixed before any value is drawn): use tpe or random")
        if not space.distributions and not structured(space):
            raise UserError("the search space is empty: sweep at least one key, e.g. "
                            "'optimizer.lr=tag(log,interval(1e-4,1e-1))', or use hydra.sweeper.params")
        if self.config.get("resume") or "resume" in space.distributions or space.fixed_values.get("resume"):
            raise UserError(RESUME_IN_MULTIRUN)
        self.names, directions = self._objectives()
        self.study_name = self.s["study_name"] or default_study_name(self.config, arguments, self.s,
                                                                     list(space.distributions))
        self.sweep_dir = Path(self.s["sweep_dir"] or Path("runs") / "optuna" / self.study_name)
        self.n_trials = self.s["n_trials"]
        if self.s["sampler"] == "grid":
            self.n_trials = min(self.n_trials, math.prod(len(v) for v in grid_values(space).values()))
        self._sampler(space, 0), self._pruner()  # they refuse what they cannot work with
        self.points = check_points(self.s["enqueue_trials"], space)
        context = getattr(self.launcher, "hydra_context", None)
        if context is not None:  # every trial's values composed and validated now, not trial by trial
            check_space(space, lambda overrides: context.config_loader.load_sweep_config(self.config, overrides),
                        candidates(space))
        self.spec = storage_spec(self.s["storage"], self.sweep_dir)
        check_storage(self.s["storage"], self.spec)
        check_storage_files(self.s["storage"], self.spec)
        if type(self.launcher).__name__ == "JoblibLauncher":  # its jobs run on this machine, on its GPUs
            self.gpus = plan_pool(self.config.device, list(space.distributions), self.s["n_jobs"],
                                  self.s["gpus_per_trial"])
        return space, directions

    def _open_study(self, space: SearchSpace, directions: list[str]) -> optuna.Study:
        """Create the sweep directory, the study and multirun.yaml; if any of it fails, remove what was made."""
        made = [self.sweep_dir / LOCK_FILE, self.sweep_dir / "multirun.yaml", *storage_files(self.spec),
                *filter(None, [lock_path(self.spec)])]
        with removed_on_error(made):
            make_sweep_dir(self.sweep_dir, self.s["sweep_dir"])
            self.study_lock = make_study_lock(self.spec, self.sweep_dir)
            heartbeat = heartbeat_arguments(self.s.get("heartbeat_interval"), self.s.get("grace_period"))
            study = open_study(self.study_name, self.spec, self.s["storage"], directions, self.sweep_dir,
                               self.study_lock, heartbeat)
            with self.study_lock():  # number the sweep processes that have joined this study: 0, 1, ...
                joined = int(study.user_attrs.get("sweep_processes", 0))
                study.set_user_attr("sweep_processes", joined + 1)
                stale = fail_stale_trials(study)
                fail_silent_trials(study)
                enqueued = enqueue(study, self.points, self.n_trials)
            with read_write(self.config.hydra), open_dict(self.config.hydra):
                self.config.hydra.sweep.dir = str(self.sweep_dir)  # where the launcher writes
            yaml_text = OmegaConf.to_yaml(self.config)
            atomic_write_bytes(self.sweep_dir / "multirun.yaml", lambda f: f.write(yaml_text.encode()))
        if stale:
            log.warning("marked FAIL trials %s left RUNNING by a sweep that was killed", stale)
        if enqueued:
            log.info("enqueued %d of hydra.sweeper.enqueue_trials; they run first", enqueued)
        study.sampler = self._sampler(space, joined)
        study.pruner = self._pruner()
        for kind, built in (("sampler", study.sampler), ("pruner", study.pruner)):  # how the study was searched
            study.set_user_attr(kind, {"class": type(built).__name__, "setting": self.s[kind]})
        return study

    def _link_jobs(self) -> None:
        """Tell each job which trial it runs, through environment variables Hydra sets for that job alone.

        They go into the hydra overrides that the launcher replays for every job but does not print (the
        per-job overrides are printed as each job starts), and the trial is named by its number, which is
        the job's number (`initial_job_idx`), so one set of variables serves every job of the sweep.
        """
        env = {ENV_STUDY: quoted(self.study_name), ENV_STORAGE: quoted(self.spec), ENV_TRIAL_NUMBER: "${hydra:job.num}"}
        with read_write(self.config.hydra), open_dict(self.config.hydra):
            self.config.hydra.overrides.hydra += [f"++hydra.job.env_set.{k}={v}" for k, v in env.items()]

    def _ask(self) -> tuple[optuna.trial.Trial, int | None] | None:
        """The next trial and the GPU lent to it (taken under the ask's lock and given back under the tell's, so
        trials that Optuna shows running at once held their GPUs at once); None once the study is complete."""
        with self.lock, self.study_lock():
            fail_silent_trials(self.study)  # a trial whose process died stays in the count, as FAIL
            if self.stop.is_set() or len(self.study.get_trials(deepcopy=False)) >= self.n_trials:
                return None
            if time.monotonic() > self.deadline:  # trials still running finish; none starts
                self.stop.set()
                log.info("hydra.sweeper.timeout=%s s reached: no new trials (%d of %d exist; the same command "
                         "continues the study)", self.s["timeout"], len(self.study.trials), self.n_trials)
                return None
            trial = ask(self.study, self.space)  # with its first heartbeat
            trial.set_user_attr("owner", owner())
            trial.set_user_attr("run_dir", str(self.sweep_dir / str(trial.number)))
            gpu = self.gpus.lend(trial) if self.gpus is not None else None
            return trial, gpu

    def _worker(self) -> None:
        while (asked := self._ask()) is not None:
            self._run_trial(*asked)

    def _overrides(self, trial: optuna.trial.Trial, gpu: int | None) -> list[str]:
        lent = overrides_for(gpu) if gpu is not None else []
        return [*self.space.fixed, *overrides_of(trial.params, self.space), *lent,
                f"hydra.sweep.dir={format_value(str(self.sweep_dir))}",
                "hydra.sweep.subdir=${hydra.job.num}"]  # a trial's directory is its number (run_dir above)

    def _run_trial(self, trial: optuna.trial.Trial, gpu: int | None) -> None:
        register_in_process(trial)
        try:
            with beating(self.study, trial):
                [ret] = self.launcher.launch([self._overrides(trial, gpu)], initial_job_idx=trial.number)
        except Exception as e:  # the launcher itself broke: record it and go on
            ret = None
            error: BaseException | None = e
        else:
            error = None
        finally:
            forget_in_process(trial)
        state, values, reason = self._outcome(ret, error)
        with self.lock:
            if reason:
                trial.set_user_attr("error", reason)
            if state == TrialState.COMPLETE:
                self.study.tell(trial, values)
            else:
                self.study.tell(trial, state=state)
            if gpu is not None:
                self.gpus.release(gpu)
            where = f" on cuda:{gpu}" if gpu is not None else ""
            log.info("trial %d%s %s%s", trial.number, where, state.name, _outcome_text(ret, reason, values))
            self._check_failures()

    def _outcome(self, ret: Any, error: BaseException | None) -> tuple[TrialState, Any, str | None]:
        if ret is None:
            return TrialState.FAIL, None, f"{type(error).__name__}: {error}"
        if ret.status != JobStatus.COMPLETED:
            if isinstance(ret._return_value, optuna.TrialPruned):  # "pruned after epoch N": said, not an error
                return TrialState.PRUNED, None, None
            err = ret._return_value
            return TrialState.FAIL, None, f"{type(err).__name__}: {err}"
        values = ret._return_value if isinstance(ret._return_value, list) else [ret._return_value]
        if len(values) != len(self.names):
            return TrialState.FAIL, None, f"the job returned {len(values)} value(s) for objectives {self.names}"
        if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in values):
            return TrialState.FAIL, None, f"the objective is not finite: {values}"
        return TrialState.COMPLETE, values if len(values) > 1 else values[0], None

    def _check_failures(self) -> None:
        failed = len(self.study.get_trials(deepcopy=False, states=(TrialState.FAIL,)))
        if failed > self.s["max_failure_rate"] * self.n_trials and not self.stop.is_set():
            self.stop.set()
            self.failure = (f"sweep stopped: {failed} of {self.n_trials} trials failed, more than "
                            f"hydra.sweeper.max_failure_rate={self.s['max_failure_rate']}. Each failed trial's "
                            f"error is in its run directory's train.log and in {self.sweep_dir / 'trials.csv'}.")

    def _dry_run(self, space: SearchSpace, directions: list[str]) -> list[Any]:
        from trainctl.terminal import make_console
        from rich.markup import escape

        console = make_console()
        sampler, pruner = (escape(setting_line(self.s[k])) for k in ("sampler", "pruner"))
        console.print(f"[bold]dry run[/] of study {escape(self.study_name)}: {self.n_trials} trials, sampler "
                      f"{sampler}, pruner {pruner}, directions {directions}, in {self.sweep_dir}")
        for key, dist in space.distributions.items():
            console.print(f"  {escape(key)}: {escape(describe(dist))}")
        for key, condition in space.conditional.items():
            when = " and ".join(f"{k} in {v}" for k, v in condition.when.items())
            console.print(f"  {escape(key)}: {escape(describe(condition.distribution))} when {escape(when)}")
        for key, depth in space.depth.items():
            console.print(f"  {escape(key)}: a list of {escape(describe(depth.count))} items, each "
                          f"{escape(describe(depth.width))}")
        for line in space.fixed:
            console.print(f"  fixed: {escape(line)}")
        study = optuna.create_study(directions=directions, sampler=self._sampler(space, 0))
        enqueue(study, self.points, self.n_trials)
        for number in range(min(self.n_trials, 5)):
            trial = ask(study, space)
            overrides = [*space.fixed, *overrides_of(trial.params, space)]
            console.print(f"trial {number}: " + escape(" ".join(overrides)), soft_wrap=True)
        return []
