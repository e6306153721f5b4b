"""Composition of the config tree: the one `compose()` that the CLI's commands, the tests and the benchmark
share, and the typed re-composition of a config stored in a checkpoint.

Each YAML option (`conf/model/cnn.yaml`) starts from its schema (`/schema/model/cnn`), so Hydra rejects unknown
keys (`optimizer.lrr=0.1`) and wrong types (`trainer.epochs=abc`) while composing, naming the key. Ranges cannot
be expressed in OmegaConf types, so fields carry them as metadata and `trainctl.config.validate` checks them.

No torch here: `trainctl --help`, Hydra's `--help` and config errors import this.
"""

from __future__ import annotations

from importlib import util as importlib_util
from pathlib import Path
from typing import Any, Iterable

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from trainctl.config.schemas import SCHEMAS
from trainctl.config.schemas.run import TrainConfig
from trainctl.errors import UserError

GROUPS = ("model", "dataset", "optimizer", "scheduler", "loss", "device")
PRIMARY_CONFIG = "train"


_stored_in: list[ConfigStore] = []  # the store that holds the schemas: filled once per process, not per compose


def register_schemas() -> None:
    """Put every schema in Hydra's ConfigStore and the run-name resolver in OmegaConf (both idempotent). The
    schemas are stored once: that costs ~0.1 s, a quarter of a `compose()` (an in-process test run makes several)."""
    from trainctl.files import run_dir_name, token

    store = ConfigStore.instance()
    if not (_stored_in and _stored_in[0] is store and "train_schema.yaml" in store.repo):
        store.store(name="train_schema", node=TrainConfig)
        for group, options in SCHEMAS.items():
            for name, schema in options.items():
                store.store(group=f"schema/{group}", name=name, node=schema)
        for preset in sorted(p.stem for p in (config_dir() / "sweep").glob("*.yaml")):
            # `hparams_search=X` (lightning-hydra-template's group name) selects the preset `sweep=X`
            store.store(group="hparams_search", name=preset, node={"defaults": [f"/sweep/{preset}"]},
                        package="_global_")
        _stored_in[:] = [store]
    if not OmegaConf.has_resolver("trainctl_token"):
        OmegaConf.register_new_resolver("trainctl_token", token, use_cache=True)  # cached: one value per run
    if not OmegaConf.has_resolver("trainctl_run_dir"):
        OmegaConf.register_new_resolver("trainctl_run_dir", run_dir_name, use_cache=True)
    if not OmegaConf.has_resolver("trainctl_log_file"):
        OmegaConf.register_new_resolver("trainctl_log_file", log_file)
    if not OmegaConf.has_resolver("trainctl_groups"):
        OmegaConf.register_new_resolver("trainctl_groups", groups_help)
    from trainctl.config.job_names import RESOLVER, job_dir_name

    if not OmegaConf.has_resolver(RESOLVER):
        OmegaConf.register_new_resolver(RESOLVER, job_dir_name)


def config_dir() -> Path:
    """The config tree: `trainctl.conf` when installed, the repository's `conf/` when run from a checkout."""
    found = importlib_util.find_spec("trainctl.conf")
    if found is not None and found.submodule_search_locations:
        return Path(list(found.submodule_search_locations)[0])
    return Path(__file__).resolve().parent.parent.parent / "conf"


def compose(overrides: Iterable[str] = (), config_name: str = PRIMARY_CONFIG,
            return_hydra_config: bool = False) -> DictConfig:
    """The config tree composed with `overrides`, exactly as `trainctl train` composes it (less `hydra`)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    register_schemas()
    if GlobalHydra.instance().is_initialized():  # inside a Hydra app (a command run from a job): start clean
        GlobalHydra.instance().clear()
    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        return hydra_compose(config_name, overrides=list(overrides), return_hydra_config=return_hydra_config)


def option_file(group: str, name: str) -> Path:
    return config_dir() / group / f"{name}.yaml"


def option_description(group: str, name: str) -> str:
    """The option's own description: the comment that opens its YAML file."""
    path = option_file(group, name)
    if not path.is_file():
        return ""
    lines = []
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        if not line.startswith("# @package"):
            lines.append(line.lstrip("# ").strip())
    return " ".join(lines)


def option_defaults(group: str, name: str) -> DictConfig:
    """What `group=name` sets by default: its schema merged with its YAML file, or a plugin's stored config.

    The same values `compose([f"{group}={name}"])[group]` gives (a test holds them equal) in a millisecond
    instead of Hydra's ~0.15 s per option, so `trainctl list` can show every option at once."""
    schema = SCHEMAS.get(group, {}).get(name)
    path = option_file(group, name)
    if path.is_file():
        body = OmegaConf.load(path)
        body.pop("defaults", None)
        return OmegaConf.merge(OmegaConf.structured(schema), body) if schema is not None else body
    stored = ConfigStore.instance().load(f"{group}/{name}.yaml").node
    return OmegaConf.merge(stored)


def typed_config(saved: dict[str, Any]) -> DictConfig:
    """A config stored as plain containers (a checkpoint's) made typed again, so overrides applied to it are
    checked like command-line ones: unknown keys and wrong types fail, ranges are validated afterwards."""
    cfg = OmegaConf.structured(TrainConfig)
    top = {k: v for k, v in saved.items() if k not in GROUPS}
    try:
        cfg.merge_with(top)
        for group in GROUPS:
            node = saved.get(group)
            schema = (SCHEMAS.get(group, {}).get(node.get("name"))
                      if isinstance(node, dict) and "_target_" not in node else None)
            cfg[group] = OmegaConf.merge(OmegaConf.structured(schema), node) if schema is not None else node
    except Exception as e:  # omegaconf's validation errors name the key
        raise UserError(f"the stored config does not fit this trainctl's schema: {e}") from None
    return cfg


def raw_overrides(node: Any) -> list[str]:
    """Hydra's recorded overrides (`hydra.overrides.task`) as the user typed them: read without resolution, since
    `seed=${seed}` in that list is itself a string omegaconf would try to resolve."""
    return [str(o) for o in OmegaConf.to_container(node, resolve=False)]


def job_output_dir() -> Path:
    """The Hydra job's output directory, read without interpolation: it is an absolute path, and a working
    directory whose path holds `${` would otherwise be read as an interpolation."""
    from hydra.core.hydra_config import HydraConfig

    return Path(HydraConfig.get().runtime._get_node("output_dir")._value())


def log_file(name: str) -> str:
    """`<the job's output dir>/<name>`, for the job-logging file handler."""
    return str(job_output_dir() / name)


HELP_GROUPS = (*GROUPS, "experiment", "sweep", "debug", "callbacks")  # what `--help` lists: no schema/*


def groups_help() -> str:
    """The groups and their options, one line each, for `trainctl train --help`."""
    return "\n".join(f"{group}: {', '.join(group_options(group))}" for group in HELP_GROUPS)


def group_options(group: str, extra_dirs: tuple[Path, ...] = ()) -> list[str]:
    """Options of a config group: YAML files in the packaged tree and extra config dirs, plus options that
    plugins stored in the ConfigStore."""
    names: set[str] = set()
    for base in (config_dir(), *extra_dirs):
        names.update(p.stem for p in (base / group).glob("*.yaml"))
    try:
        names.update(n.removesuffix(".yaml") for n in ConfigStore.instance().list(group))
    except OSError:
        pass  # no such group in the store
    return sorted(names)
