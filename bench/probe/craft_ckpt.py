"""Crafted checkpoints, made from a real one by trainctl's own python (it has torch): craft_ckpt.py SRC OUTDIR.

The payload pickles write the file named by $PROBE_MARKER when unpickled."""
from __future__ import annotations

import copy
import os
import pickle
import sys
from pathlib import Path

import torch


class Payload:
    def __reduce__(self):
        return (exec, ("import os, pathlib; pathlib.Path(os.environ.get('PROBE_MARKER', '/tmp/probe_marker_default'))"
                       ".write_text('pwned')",))


def main() -> None:
    src, out = Path(sys.argv[1]), Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    good = torch.load(src, weights_only=True)
    raw = src.read_bytes()

    def save(name: str, obj) -> None:
        torch.save(obj, out / f"{name}.pt")

    def variant(name: str, fn) -> None:
        c = copy.deepcopy(good)
        fn(c)
        save(name, c)

    (out / "pickle_plain.pt").write_bytes(pickle.dumps({"model": Payload()}))
    save("pickle_torch", {"model": Payload(), "format_version": 1})
    (out / "truncated.pt").write_bytes(raw[: len(raw) // 2])
    (out / "truncated_tiny.pt").write_bytes(raw[:100])
    (out / "empty.pt").write_bytes(b"")
    (out / "garbage.pt").write_bytes(os.urandom(5000))
    (out / "text.pt").write_text("model: mlp\n")
    save("list", [1, 2, 3])
    save("tensor", torch.zeros(3))
    variant("fmt_str", lambda c: c.__setitem__("format_version", "1"))
    variant("fmt_big", lambda c: c.__setitem__("format_version", 999))
    variant("fmt_neg", lambda c: c.__setitem__("format_version", -1))
    variant("fmt_none", lambda c: c.__setitem__("format_version", None))
    variant("fmt_list", lambda c: c.__setitem__("format_version", [1]))
    variant("fmt_missing", lambda c: c.pop("format_version"))
    variant("no_config", lambda c: c.pop("config"))
    variant("config_str", lambda c: c.__setitem__("config", "abc"))
    variant("config_list", lambda c: c.__setitem__("config", [1, 2]))
    variant("no_model", lambda c: c.pop("model"))
    variant("model_empty", lambda c: c.__setitem__("model", {}))
    variant("model_str", lambda c: c.__setitem__("model", "weights"))
    variant("model_nontensor", lambda c: c["model"].__setitem__(next(iter(c["model"])), "abc"))
    variant("model_shapes", lambda c: c.__setitem__("model", {k: torch.zeros(3, 3) for k in c["model"]}))
    variant("epoch_str", lambda c: c.__setitem__("epoch", "abc"))
    variant("epoch_neg", lambda c: c.__setitem__("epoch", -5))
    variant("epoch_huge", lambda c: c.__setitem__("epoch", 10**18))
    variant("history_str", lambda c: c.__setitem__("history", "abc"))
    variant("rng_empty", lambda c: c.__setitem__("rng", {}))
    variant("optimizer_garbage", lambda c: c.__setitem__("optimizer", {"state": "x", "param_groups": 5}))
    variant("cfg_epochs_str", lambda c: c["config"]["trainer"].__setitem__("epochs", "abc"))
    variant("cfg_hidden_str", lambda c: c["config"]["model"].__setitem__("hidden", "x"))
    variant("cfg_model_unknown", lambda c: c["config"]["model"].__setitem__("name", "nosuchmodel"))
    variant("cfg_model_missing", lambda c: c["config"].pop("model"))
    variant("cfg_dataset_unknown", lambda c: c["config"]["dataset"].__setitem__("name", "nosuchdata"))
    variant("cfg_extra_key", lambda c: c["config"].__setitem__("evil", {"_target_": "os.system", "command": "x"}))
    variant("cfg_target_planted", lambda c: c["config"]["model"].update(
        {"_target_": "runs.shared.evil.Net"}))
    variant("cfg_target_os", lambda c: c["config"]["model"].update({"_target_": "os.system", "command": "touch x"}))
    variant("cfg_target_linear", lambda c: c["config"]["loss"].update({"_target_": "torch.nn.CrossEntropyLoss"}))
    variant("cfg_transform", lambda c: c["config"]["dataset"].__setitem__(
        "eval_transforms", [{"_target_": "runs.shared.evil.transform"}]))
    variant("cfg_transform_os", lambda c: c["config"]["dataset"].__setitem__(
        "eval_transforms", [{"_target_": "os.system", "command": "touch PWNED"}]))
    variant("cfg_callback", lambda c: c["config"].__setitem__(
        "callbacks", {"x": {"_target_": "runs.shared.evil.Cb"}}))
    variant("cfg_dataset_target", lambda c: c["config"]["dataset"].update({"_target_": "runs.shared.evil.Data"}))
    variant("cfg_root_outside", lambda c: c["config"]["dataset"].__setitem__("root", "/nonexistent/data"))
    variant("cfg_interp", lambda c: c["config"]["model"].__setitem__("hidden", "${oc.env:PROBE_MARKER}"))
    variant("cfg_interp_loop", lambda c: c["config"]["trainer"].__setitem__("epochs", "${trainer.epochs}"))
    variant("nan_weights", lambda c: [t.fill_(float("nan")) for t in c["model"].values() if t.is_floating_point()])


if __name__ == "__main__":
    main()
