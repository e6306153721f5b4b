"""User extensions through the `trainctl.components` entry-point group.

A package declares, in its pyproject.toml,

    [project.entry-points."trainctl.components"]
    mynet = "mynet_plugin"

and its module registers names on import (`@MODELS.register("mynet", config=MyNetConfig)`). trainctl imports
every such module before composing a config, so `model=mynet` works and `trainctl list` shows it.
"""

from __future__ import annotations

from importlib.metadata import entry_points

from trainctl.errors import UserError

GROUP = "trainctl.components"
_loaded = False


def load_plugins() -> list[str]:
    """Import every registered plugin module once; returns their entry-point names."""
    global _loaded
    found = list(entry_points(group=GROUP))
    if _loaded or not found:  # without plugins, importing the components (and torch) can wait
        return [ep.name for ep in found]
    _loaded = True
    import trainctl.components  # noqa: F401  (built-ins first, so plugins can extend their registries)

    for ep in found:
        try:
            ep.load()
        except Exception as e:  # a broken plugin must not look like a trainctl bug
            raise UserError(f"plugin '{ep.name}' ({ep.value}, entry point group {GROUP}) failed to load: "
                            f"{type(e).__name__}: {e}. Fix or uninstall that package.") from None
    return [ep.name for ep in found]
