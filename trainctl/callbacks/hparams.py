"""A run's row in TensorBoard's HParams tab: one session (the run's hyperparameters and how it ended) written
into the run's own event file, for TensorBoard's hparams plugin.

Not `SummaryWriter.add_hparams`: it writes into a new subdirectory, a second run beside every run, and logs the
metrics again as one-point scalars. No experiment summary either: TensorBoard shows the first one it finds under
the log directory, so with several studies (or different runs) under one directory only one set of columns
would appear. Without one, TensorBoard builds the columns from every session (all of them appear), gives each
text column a discrete filter of the values seen, and takes the metric columns from the runs' own scalar tags
(`val/acc`, `test/acc`, ...), so "show metrics" draws the run's real curves.

TensorBoard shows the first five metric columns, in the tags' alphabetical order, and hides the rest until
ticked. So each run also writes its headline results once, at its best epoch, under `best/` (which sorts before
every curve's tag): the objective, val/loss and the test metrics are the columns a person sees first, and every
run of a mixed log directory (a run, a grid, a sweep) has them, so the parallel-coordinates view draws its lines.
"""

from __future__ import annotations

import math
import time
from typing import Any

from omegaconf import DictConfig, OmegaConf

HPARAM_GROUPS = ("model", "dataset", "optimizer", "scheduler", "loss", "device")
# Recorded by every run with the value it used, overridden or not: the columns that compare any two runs.
MAIN_KEYS = ("optimizer.lr", "trainer.batch_size", "trainer.epochs", "seed")
HEADLINE = "best/"  # the prefix of the headline results' tags
STATUS_KEY = "status"  # the column that says how the run ended, in trainctl's words (metrics.json's "status")
FAILED = "failed"
PRUNED = "pruned"


def hparams_of(cfg: DictConfig) -> dict[str, Any]:
    """What tells runs apart in the HParams tab: the chosen option of each config group, the value of each of
    MAIN_KEYS, and every override on the command line (a grid's or a sweep trial's parameters among them), with
    the config's own types."""
    chosen: dict[str, Any] = {}
    overrides: list[str] = []
    from hydra.core.hydra_config import HydraConfig

    from trainctl.config.compose import raw_overrides

    if HydraConfig.initialized():
        hydra = HydraConfig.get()
        chosen = {g: c for g, c in hydra.runtime.choices.items()
                  if c is not None and g in (*HPARAM_GROUPS, "experiment", "sweep", "debug")}
        overrides = raw_overrides(hydra.overrides.task)
    else:  # a run started from Python: the groups' names are all there is
        from trainctl.config.targets import component_name

        chosen = {g: component_name(cfg[g]) for g in HPARAM_GROUPS if g in cfg}
    params: dict[str, Any] = {k: str(v) for k, v in chosen.items()}
    for key in MAIN_KEYS:
        value = OmegaConf.select(cfg, key, default=None)
        if value is not None:
            params[key] = value
    for override in overrides:
        key, _, value = override.partition("=")
        key = key.lstrip("+~")
        if key.startswith("hydra.") or key in params:
            continue
        params[key] = OmegaConf.select(cfg, key, default=value)
    return params


def headline_results(result: dict[str, Any]) -> dict[str, float]:
    """The scalars HParams shows first (`best/<metric>`): the objective(s) and val/loss at the best epoch, and
    the test metrics of the best checkpoint."""
    objective = result.get("objective")
    names = [objective] if isinstance(objective, str) else list(objective or [])
    names += ["val/loss", *(k for k in result if k.startswith("test/"))]
    return {HEADLINE + name: result[name] for name in dict.fromkeys(names)
            if isinstance(result.get(name), float) and math.isfinite(result[name])}


def run_status(result: dict[str, Any]) -> str:
    """How a finished run ended: metrics.json's status, except that a run whose objective is not a finite
    number is "failed", the rule by which the sweep driver records such a trial FAIL."""
    status = str(result.get(STATUS_KEY, "completed"))
    value = result.get("objective_value")
    values = value if isinstance(value, list) else [value]
    finite = all(isinstance(v, (int, float)) and math.isfinite(v) for v in values)
    return status if status == PRUNED or finite else FAILED


def session_status(status: str) -> int:
    """TensorBoard's session status for a run's status: only runs that ended with their objective (completed,
    stopped early) are Success; failed runs are Failure. A pruned sweep trial is Unknown: TensorBoard has no
    pruned status, and a pruned trial neither succeeded nor failed (its `status` column says "pruned")."""
    from tensorboard.plugins.hparams import api_pb2

    if status == FAILED:
        return api_pb2.STATUS_FAILURE
    if status == PRUNED:
        return api_pb2.STATUS_UNKNOWN
    return api_pb2.STATUS_SUCCESS


def hparam_value(value: Any) -> Any:
    """A hyperparameter as a protobuf Value of the type TensorBoard should show: floats as numbers (range
    filters), booleans as booleans. Integers go as their text: TensorBoard prints every number with five
    significant digits (a batch size of 32 reads "32.000"), while text reads as written and its column gets a
    filter of the values seen. Lists and everything else also go as text (`[64, 64]`)."""
    from google.protobuf import struct_pb2

    if isinstance(value, bool):
        return struct_pb2.Value(bool_value=value)
    if isinstance(value, float):
        return struct_pb2.Value(number_value=value)
    return struct_pb2.Value(string_value=str(value))


def write_session(file_writer: Any, params: dict[str, Any], status: str, step: int, started: float) -> None:
    """The run's session, start and end, through the run's own file writer. Both are written once the status is
    known: TensorBoard keeps the first value of each hparams tag it reads, and the status is also a column."""
    from tensorboard.compat.proto.summary_pb2 import Summary
    from tensorboard.plugins.hparams import metadata, plugin_data_pb2

    start = plugin_data_pb2.SessionStartInfo(start_time_secs=started)
    for name, value in {**params, STATUS_KEY: status}.items():
        start.hparams[name].CopyFrom(hparam_value(value))
    end = plugin_data_pb2.SessionEndInfo(status=session_status(status), end_time_secs=time.time())
    for tag, data in ((metadata.SESSION_START_INFO_TAG, plugin_data_pb2.HParamsPluginData(session_start_info=start)),
                      (metadata.SESSION_END_INFO_TAG, plugin_data_pb2.HParamsPluginData(session_end_info=end))):
        value = Summary.Value(tag=tag, metadata=metadata.create_summary_metadata(data), tensor=metadata.NULL_TENSOR)
        file_writer.add_summary(Summary(value=[value]), step)
