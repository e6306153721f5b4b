"""Names from lightning-hydra-template configs that trainctl accepts, each with a one-line notice, so a ported
`hparams_search` file runs unchanged."""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from trainctl.config.schemas.run import DEFAULT_OBJECTIVE


def _objective_is_default(cfg: DictConfig) -> bool:
    node = cfg._get_node("objective")
    return OmegaConf.is_interpolation(cfg, "objective") and node._value() == DEFAULT_OBJECTIVE


def old_name_notices(cfg: DictConfig) -> list[str]:
    """What the config says by an old name, and the name to use: `optimized_metric` is `objective` (whose
    default takes it: see DEFAULT_OBJECTIVE); an objective set explicitly wins."""
    old = cfg.get("optimized_metric")
    if old is None:
        return []
    if not _objective_is_default(cfg) and cfg.objective != old:
        return [f"optimized_metric={old} is ignored: objective={cfg.objective} is set (optimized_metric is "
                "lightning-hydra-template's name for objective)"]
    return [f"optimized_metric is lightning-hydra-template's name for objective: the sweep optimises {old}; "
            f"write objective: {old}"]
