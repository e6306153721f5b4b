"""`trainctl train trainer.devices=N`: start the N processes of a data-parallel run through
`torch.distributed.run` (torchrun), run in this process on a free port, each process running the user's own
command line. The launcher forwards SIGINT and SIGTERM to them (each stops at the same step boundary and rank
0 saves once) and exits with their code: 130 or 143 after a signal, 0 when they finished.

Under torchrun (WORLD_SIZE set, whether by this launcher or by the user's own `torchrun ... -m trainctl
train`), the processes exist already: each trains, and those of rank > 0 compose the config into a scratch
directory, since rank 0's run directory is everyone's (`trainctl.engine.run`).
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import tempfile
from pathlib import Path

from omegaconf import DictConfig

from trainctl.errors import UserError

log = logging.getLogger("trainctl")
SCRATCH_ENV = "TRAINCTL_LAUNCH_SCRATCH"  # where the processes of rank > 0 put Hydra's output


def world() -> tuple[int, int]:
    """(rank, world size) from torchrun's environment; (0, 1) outside it."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def wants_processes(cfg: DictConfig) -> bool:
    """Whether the config asks for the distributed checks (they load torch, so only then)."""
    return cfg.trainer.get("devices", 1) not in (1, None) or bool(cfg.trainer.get("sync_batchnorm")) or world()[1] > 1


def processes(cfg: DictConfig) -> int:
    """Processes this command must start itself: 1 when torchrun already started them, or for one device."""
    if not wants_processes(cfg):
        return 1
    from trainctl.engine.distributed import check_devices

    n = check_devices(cfg)
    return 1 if world()[1] > 1 else n


def refuse_in_multirun(cfg: DictConfig) -> None:
    if cfg.trainer.get("devices", 1) not in (1, None) or world()[1] > 1:
        raise UserError(
            f"trainer.devices={cfg.trainer.get('devices')} (or torchrun) runs one job on several processes and cannot "
            "be part of a multirun (-m): sweep with trainer.devices=1 (parallel trials come from a Hydra launcher "
            "or several sweep workers sharing a study), or train one configuration with trainctl train "
            "trainer.devices=N.")


def scratch_overrides(overrides: list[str]) -> list[str]:
    """For a process of rank > 0: Hydra's own output goes to a scratch directory (removed at its end), since
    rank 0 alone creates and writes the run directory."""
    from trainctl.config.overrides import quote_value

    rank, size = world()
    if size <= 1 or rank == 0:
        return overrides
    # Inside the launcher's own scratch folder when trainctl started the processes: it removes that folder even
    # when a process was killed before it could clean up.
    scratch = tempfile.mkdtemp(prefix=f"trainctl-rank{rank}-", dir=os.environ.get(SCRATCH_ENV))
    kept = [o for o in overrides if not o.startswith(("hydra.run.dir=", "hydra.output_subdir="))]
    return [*kept, f"hydra.run.dir={quote_value(scratch)}", "hydra.output_subdir=null"]


def quiet_other_ranks() -> None:
    """Only rank 0 talks: the others keep their warnings and errors."""
    if world()[0] > 0:
        from trainctl.terminal import console

        log.setLevel(logging.WARNING)
        console.quiet = True


def remove_scratch(output_dir: Path) -> None:
    if world()[0] > 0 and output_dir.name.startswith("trainctl-rank"):
        shutil.rmtree(output_dir, ignore_errors=True)


def launch(args: list[str], n: int) -> int:
    """Run `trainctl train ARGS` as n processes through torchrun; their exit code."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    # torchrun's own log (rendezvous, each worker's exit) would repeat what the processes and `failure_code` say
    for name in [n for n in logging.root.manager.loggerDict if n.startswith("torch.distributed")]:
        logging.getLogger(name).setLevel(logging.CRITICAL)  # torch's elastic loggers set their own levels
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // n)))
    log.info("starting %d processes (torchrun --standalone --nproc-per-node=%d)", n, n)
    os.environ[SCRATCH_ENV] = tempfile.mkdtemp(prefix="trainctl-launch-")
    try:
        run(parse_args(["--standalone", f"--nproc-per-node={n}", "--module", "trainctl", "train", *args]))
    except SignalException as stop:  # forwarded to the processes, which saved and exited
        return 128 + int(stop.sigval)
    except ChildFailedError as failed:
        return failure_code(failed.failures)
    finally:
        shutil.rmtree(os.environ.pop(SCRATCH_ENV), ignore_errors=True)
    return 0


def failure_code(failures: dict) -> int:
    """The processes' exit code when they agree (130/143 after a signal, 2 for bad input, ...). A process killed
    by a signal is named, since it could not say so itself; SIGTERM is torchrun's own way of stopping the
    processes still running once one has ended, so it names no culprit."""
    killed = {rank: f for rank, f in failures.items() if f.exitcode < 0 and -f.exitcode != signal.SIGTERM}
    for rank, failure in sorted(killed.items()):
        name = signal.Signals(-failure.exitcode).name
        log.error("the process of rank %d (pid %d) was killed by %s; the others stopped. The run directory keeps its "
                  "last checkpoint: continue with trainctl train resume=<run dir>", rank, failure.pid, name)
    if killed:
        return 128 - min(f.exitcode for f in killed.values())
    codes = {f.exitcode for f in failures.values() if f.exitcode > 0}
    if not codes:
        return 128 + signal.SIGTERM
    return codes.pop() if len(codes) == 1 else 1
