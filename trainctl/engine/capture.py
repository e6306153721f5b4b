"""A run's training state in and out of a checkpoint: `capture` is the one place that writes it and `restore` the
one place that reads it back (the files themselves are `trainctl.engine.checkpoint`'s)."""

from __future__ import annotations

import logging
from typing import Any

from omegaconf import OmegaConf

from trainctl.components.naming import upgrade_state_dict
from trainctl.engine.checkpoint import on_cpu, restore_rng_state, rng_state
from trainctl.engine.step import Trainer


def capture(t: Trainer) -> dict[str, Any]:
    """Everything needed to continue the run exactly where it stands. In a data-parallel run every process
    calls it together: the RNG states and running sums of all of them are gathered (`ranks`), rank 0's also
    stand where a single process keeps its own."""
    state = {
        "model": t.raw_model.state_dict(), "optimizer": t.optimizer.state_dict(), "scheduler": t.schedule.state_dict(),
        "ema": t.ema.state_dict() if t.ema is not None else None,
        "scaler": t.scaler.state_dict() if t.scaler is not None else None,
        **t.state.checkpointed(),
        "rng": rng_state(), "config": OmegaConf.to_container(t.cfg, resolve=True),
    }
    state = on_cpu(state)
    if t.dist.enabled:
        state["ranks"] = t.dist.gather({"rng": state["rng"], "partial": state["partial"]})
    return state


def restore_process_state(t: Trainer, state: dict[str, Any]) -> None:
    """This process's RNG state and running sums: its own when the checkpoint was written by as many processes;
    else rank 0's sums and, for the other processes, fresh seeds: the run goes on, no longer exactly."""
    ranks, world = state.get("ranks"), t.dist.world
    if (len(ranks) if ranks else 1) == world:
        if ranks:
            own = ranks[t.dist.rank]
            restore_rng_state(own["rng"])
            if own["partial"] is not None:
                t.state.partial = own["partial"]  # CPU tensors: the accumulator copies them to its device
        else:
            restore_rng_state(state["rng"])
        return
    if t.dist.is_main:
        logging.getLogger("trainctl").warning(
            "this checkpoint was written by %d process(es) and the run resumes with %d: it continues, but no "
            "longer bit-identical to an uninterrupted run (resume with trainer.devices=%d for that)",
            len(ranks) if ranks else 1, world, len(ranks) if ranks else 1)
    restore_rng_state(state["rng"])
    t.dist.seed_process(t.cfg.seed + t.state.step)


def restore(t: Trainer, state: dict[str, Any]) -> None:
    """Put a captured state back into a freshly built trainer (the inverse of `capture`)."""
    t.raw_model.load_state_dict(upgrade_state_dict(t.raw_model, state["model"]))  # older index names too
    t.optimizer.load_state_dict(state["optimizer"])
    t.schedule.load_state_dict(state["scheduler"])
    if t.ema is not None and state.get("ema") is not None:
        t.ema.load_state_dict(upgrade_state_dict(t.ema.model, state["ema"]))
    if t.scaler is not None and state.get("scaler"):
        t.scaler.load_state_dict(state["scaler"])
    t.state.restore(state)
    restore_process_state(t, state)
