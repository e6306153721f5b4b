"""A user's callbacks, without editing trainctl.

From the config, a mapping of names to `_target_` nodes (a config group file, a `-cd` config, or overrides):

    callbacks:
      recorder: {_target_: mypkg.Recorder, path: events.txt}

and from installed packages, which declare a class (or factory) taking no arguments:

    [project.entry-points."trainctl.callbacks"]
    recorder = "mypkg:Recorder"

An installed callback is active in every run; `+callbacks.recorder=null` switches it off (the config's
entries win over the entry points of the same name).
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

from omegaconf import DictConfig, ListConfig

from trainctl.components.targets import builds, instantiate_target
from trainctl.engine.events import EVENTS, Callback
from trainctl.errors import UserError

ENTRY_POINT_GROUP = "trainctl.callbacks"


def _has_events(obj: Any) -> bool:
    """A callback (instance or class) defines at least one event method."""
    return any(callable(getattr(obj, event, None)) for event in EVENTS)


def _check(name: str, origin: str, callback: Any) -> Callback:
    if not _has_events(callback):
        raise UserError(f"callback '{name}' ({origin}) built a {type(callback).__name__}, which has none of the "
                        f"event methods ({', '.join(EVENTS)}): subclass trainctl.callbacks.Callback.")
    if not isinstance(callback, Callback):  # duck-typed: give it the events it lacks, as no-ops
        wrapped = type(f"{type(callback).__name__}Events", (Callback,), {
            event: (lambda method: lambda self, *args: method(*args))(getattr(callback, event))
            for event in EVENTS if callable(getattr(callback, event, None))})
        return wrapped()
    return callback


def _callback_class(path: str, target: Any, key: str) -> None:
    """Checked before the target is called: a class with event methods (or a factory annotated to return one)."""
    built = builds(target)
    if built is None or not _has_events(built):
        raise UserError(f"{key}._target_={path} is not a callback class: give a class with event methods "
                        "(subclass trainctl.callbacks.Callback).")


def _configured(cfg: DictConfig) -> dict[str, Any]:
    node = cfg.get("callbacks")
    if node is None:
        return {}
    if isinstance(node, ListConfig):  # a plain list of `_target_` nodes is accepted too
        return {f"callbacks[{i}]": item for i, item in enumerate(node)}
    if not isinstance(node, DictConfig):
        raise UserError(f"callbacks={node!r} must map names to {{_target_: ...}} nodes")
    return dict(node.items())


def user_callbacks(cfg: DictConfig) -> list[Callback]:
    configured = _configured(cfg)
    callbacks: list[Callback] = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in configured:
            continue  # the config overrides (or, with null, removes) an installed callback of the same name
        try:
            factory = ep.load()
            callbacks.append(_check(ep.name, f"entry point {ep.value}", factory()))
        except UserError:
            raise
        except Exception as e:  # a broken plugin must not look like a trainctl bug
            raise UserError(f"callback plugin '{ep.name}' ({ep.value}, entry point group {ENTRY_POINT_GROUP}) "
                            f"failed to load: {type(e).__name__}: {e}. Fix or uninstall that package.") from None
    for name, node in configured.items():
        if node is None:
            continue
        if not isinstance(node, DictConfig) or "_target_" not in node:
            raise UserError(f"callbacks.{name} needs a _target_ (the callback's class), e.g. "
                            f"callbacks.{name}._target_=mypkg.MyCallback")
        callbacks.append(_check(name, str(node._target_), instantiate_target(node, check=_callback_class)))
    return callbacks
