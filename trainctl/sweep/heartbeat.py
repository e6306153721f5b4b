"""Heartbeats: how a sweep learns that a trial's process died on another machine.

A trial in a database study (PostgreSQL, MySQL, SQLite) beats every `hydra.sweeper.heartbeat_interval` seconds
while it runs (Optuna's heartbeat table, stamped with the server's clock). A RUNNING trial whose last beat is
older than `grace_period` seconds has lost its process: the next sweep process that asks for a trial marks it
FAIL (Optuna's `fail_stale_trials`), so the study's count stays exact and nothing waits for it. On one machine
the owner's process id says the same sooner (`study.fail_stale_trials`); journal files have no heartbeats.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import threading
import warnings
from typing import Any, Callable, Iterator

import optuna
from optuna.trial import FrozenTrial

from trainctl.sweep.conditional import ask as ask_space
from trainctl.sweep.space import SearchSpace

log = logging.getLogger("trainctl.sweep")


def _announce(study: optuna.Study, trial: FrozenTrial) -> None:
    log.warning("trial %d marked FAIL: its sweep process stopped sending heartbeats (killed, or its machine was "
                "lost)", trial.number)


def heartbeat_arguments(interval: int | None, grace: int | None) -> dict[str, Any]:
    """RDBStorage's keyword arguments for heartbeats every `interval` s (None: none), stale after `grace` s
    (None: Optuna's 2 x interval)."""
    if interval is None:
        return {}
    # Optuna 4.9 renamed the callback's argument
    parameters = inspect.signature(optuna.storages.RDBStorage.__init__).parameters
    callback = "heartbeat_stale_trial_callback" if "heartbeat_stale_trial_callback" in parameters \
        else "failed_trial_callback"
    return {"heartbeat_interval": interval, "grace_period": grace, callback: _announce}


def _quiet(call: Callable[[], Any]) -> Any:
    with warnings.catch_warnings():  # Optuna's heartbeats are "experimental" since 2.9: the warning says nothing
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return call()


def fail_silent_trials(study: optuna.Study) -> None:
    """Mark FAIL the study's RUNNING trials whose heartbeats stopped (a no-op without heartbeats). Safe for
    several processes at once: the storage changes a trial's state only while it is RUNNING."""
    _quiet(lambda: optuna.storages.fail_stale_trials(study))


def _interval(study: optuna.Study) -> int | None:
    """The study's heartbeat interval; None for storages without heartbeats (memory, journal) or with them off."""
    return getattr(study._storage, "get_heartbeat_interval", lambda: None)()


def ask(study: optuna.Study, space: SearchSpace) -> optuna.trial.Trial:
    """The next trial of `space` (`trainctl.sweep.conditional.ask`), with its first beat: a trial that never beat
    is never found stale."""
    with warnings.catch_warnings():  # Optuna expects heartbeats only under Study.optimize; `beating` does its part
        warnings.filterwarnings("ignore", "Heartbeat of storage is supposed to be used with Study.optimize")
        trial = ask_space(study, space)
    if _interval(study):
        study._storage.record_heartbeat(trial._trial_id)  # Optuna's heartbeats are keyed by the trial's id
    return trial


@contextlib.contextmanager
def beating(study: optuna.Study, trial: optuna.trial.Trial) -> Iterator[None]:
    """Beat for `trial` every heartbeat interval while the block runs (nothing without heartbeats)."""
    interval = _interval(study)
    if not interval:
        yield
        return
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(interval):
            try:
                study._storage.record_heartbeat(trial._trial_id)
            except Exception as e:  # a database that is briefly away: the next beat tries again
                log.warning("trial %d: heartbeat not recorded (%s: %s)", trial.number, type(e).__name__, e)

    thread = threading.Thread(target=beat, name=f"heartbeat-{trial.number}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
