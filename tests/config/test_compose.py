"""One home for each default: the typed schemas. Option files hold only what differs, and the fast
`option_defaults` (used by `trainctl list` and `doctor`) gives exactly what Hydra's composition gives."""

import math

import pytest
import yaml
from omegaconf import OmegaConf

from trainctl.config.compose import GROUPS, compose, config_dir, group_options, option_defaults, typed_config
from trainctl.config.schemas import SCHEMAS
from trainctl.config.schemas.run import TrainConfig
from trainctl.errors import UserError

OPTIONS = [(group, name) for group in GROUPS for name in group_options(group)]


def same(a, b) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, (int, float)) and isinstance(b, (int, float)) and math.isclose(a, b, rel_tol=1e-12)
    return a == b


@pytest.mark.parametrize(("group", "name"), OPTIONS, ids=[f"{g}={n}" for g, n in OPTIONS])
def test_option_files_hold_only_what_differs_from_their_schema(group, name):
    body = yaml.safe_load((config_dir() / group / f"{name}.yaml").read_text()) or {}
    defaults = OmegaConf.to_container(OmegaConf.structured(SCHEMAS[group][name]))
    repeated = [key for key, value in body.items() if key in defaults and same(value, defaults[key])]
    assert repeated == [], f"conf/{group}/{name}.yaml repeats its schema's defaults for {repeated}: delete them"


def test_the_primary_config_repeats_no_top_level_default():
    body = yaml.safe_load((config_dir() / "train.yaml").read_text())
    schema_keys = {f.name for f in TrainConfig.__dataclass_fields__.values()}
    assert set(body) & schema_keys == set(), "conf/train.yaml sets keys whose defaults live in TrainConfig"


@pytest.mark.parametrize(("group", "name"), OPTIONS, ids=[f"{g}={n}" for g, n in OPTIONS])
def test_option_defaults_equal_hydras_composition(group, name):
    composed = compose([f"{group}={name}"])[group]
    assert OmegaConf.to_container(option_defaults(group, name)) == OmegaConf.to_container(composed)


def test_a_stored_config_is_typed_again_so_overrides_are_checked():
    saved = OmegaConf.to_container(compose(["experiment=smoke"]), resolve=True)
    cfg = typed_config(saved)
    assert cfg.model.hidden == [32] and cfg.trainer.epochs == 2
    with pytest.raises(Exception, match="lrr"):
        cfg.merge_with_dotlist(["optimizer.lrr=0.1"])  # unknown key, as on the command line
    with pytest.raises(Exception, match="epochs"):
        cfg.merge_with_dotlist(["trainer.epochs=abc"])  # wrong type


def test_a_stored_config_that_no_longer_fits_is_a_user_error():
    saved = OmegaConf.to_container(compose(["experiment=smoke"]), resolve=True)
    saved["trainer"]["epochs"] = "many"
    with pytest.raises(UserError, match="does not fit this trainctl's schema"):
        typed_config(saved)
