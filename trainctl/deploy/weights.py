"""`format=safetensors`: the model's weights as safetensors (tensors only, nothing that can run code when
loaded), plus a JSON file beside them with what rebuilding the model needs: the component's name and config, the
input shape, the task and classes, and the preprocessing (scale, mean, std).

`load_model` is the way back (trainctl's export checks the file with it); any program with `safetensors` and
trainctl's model registry can do the same in four lines (see the README).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from trainctl.components.naming import upgrade_state_dict
from trainctl.data.splits import DataSpec
from trainctl.deploy.preprocess import InputRules
from trainctl.errors import UserError

SIDECAR_FORMAT = "trainctl-safetensors/1"


def sidecar_path(weights: Path) -> Path:
    return weights.with_suffix(".json")


def describe(model_cfg: DictConfig, spec: DataSpec, rules: InputRules, source: dict[str, Any]) -> dict[str, Any]:
    """The JSON that rebuilds the model: its config with the pretrained-weight download switched off (the
    weights come from the safetensors file), what the data looked like, and where the weights came from."""
    model = OmegaConf.to_container(model_cfg, resolve=True)
    assert isinstance(model, dict)
    if "weights" in model:
        model["weights"] = None
    return {
        "format": SIDECAR_FORMAT,
        "model": model,
        "input_shape": list(spec.input_shape),
        "task": spec.task,
        "num_classes": spec.num_classes,
        "classes": list(spec.class_names),
        "target_shape": list(spec.target_shape),
        "preprocess": rules.describe(),
        "source": source,
    }


def safetensors_bytes(model: nn.Module) -> bytes:
    """The state dict as safetensors; tensors that share storage (tied weights) are stored once."""
    from safetensors.torch import save_model

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.safetensors"
        save_model(model, str(path))
        return path.read_bytes()


def load_model(weights: str | Path, trust_targets: bool = False) -> nn.Module:
    """The model rebuilt from `weights` (a .safetensors file, as a path or a string) and the JSON beside it, in
    eval mode on the CPU. A `_target_` in that JSON names code to import: refused unless `trust_targets`."""
    from safetensors.torch import load_model as load_into

    from trainctl.components import build_model
    from trainctl.config.trust import check_stored_targets, stored_targets

    weights = Path(weights)
    if not weights.is_file():
        raise UserError(f"{weights} is not a file: give the model.safetensors that `trainctl export "
                        "format=safetensors` wrote (the JSON beside it describes the model)")
    meta_path = sidecar_path(weights)
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError) as e:
        raise UserError(f"cannot read {meta_path}, the JSON that describes {weights.name}: {e}") from None
    if not isinstance(meta, dict) or meta.get("format") != SIDECAR_FORMAT:
        raise UserError(f"{meta_path} is not a trainctl safetensors description (format {SIDECAR_FORMAT})")
    check_stored_targets(stored_targets(meta["model"]), [], trust_targets, source=str(meta_path))
    spec = DataSpec(tuple(meta["input_shape"]), meta["num_classes"], meta["task"], tuple(meta["classes"]),
                    tuple(meta["target_shape"]))
    model = build_model(OmegaConf.create(meta["model"]), spec)
    if _index_names(model, weights):  # exported before layers had names: renamed by position
        from safetensors.torch import load_file

        model.load_state_dict(upgrade_state_dict(model, load_file(str(weights))))
    else:
        load_into(model, str(weights))
    return model.eval()


def _index_names(model: nn.Module, weights: Path) -> bool:
    """Whether the file names tensors the model lacks (an older export's `3.weight` for `conv2.weight`)."""
    from safetensors import safe_open

    with safe_open(str(weights), framework="pt") as stored:
        keys = list(stored.keys())
    own = model.state_dict()
    return any(key not in own for key in keys)


def reload_runner(weights_data: bytes, meta: dict[str, Any], trust_targets: bool) -> nn.Module:
    """The model rebuilt from bytes not yet written: the check runs before anything lands in the output."""
    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(tmp) / "model.safetensors"
        weights.write_bytes(weights_data)
        sidecar_path(weights).write_text(json.dumps(meta))
        model = load_model(weights, trust_targets)
        # safetensors may map the file: own the tensors before the folder goes
        with torch.no_grad():
            for tensor in [*model.parameters(), *model.buffers()]:
                tensor.data = tensor.data.clone()
        return model
