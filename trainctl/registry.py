"""Name → builder registries, one per config group.

Strict on purpose (as in mmengine and timm): registering a name twice is an error rather than a silent override,
and an unknown name lists the valid ones with the closest match, so a typo never trains the wrong thing.
"""

from __future__ import annotations

import difflib
import inspect
from dataclasses import dataclass
from typing import Any, Callable, Generic, Iterator, TypeVar

from trainctl.errors import UserError

F = TypeVar("F", bound=Callable)


@dataclass(frozen=True)
class Entry:
    name: str
    builder: Callable
    description: str
    config: Any = None  # the option's config (dataclass or dict) when it comes from code, not a YAML file


def did_you_mean(name: str, choices: list[str]) -> str:
    """'; did you mean 'x'?' for the closest choice, or '' when nothing is close."""
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.5)
    return f"; did you mean '{close[0]}'?" if close else ""


class Registry(Generic[F]):
    """A named table of builders for one kind of component (model, dataset, ...)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry] = {}

    def register(self, name: str, description: str | None = None, config: Any = None) -> Callable[[F], F]:
        """Decorator: `@MODELS.register("cnn")`. The docstring's first line is the description.

        Built-ins get their options from `conf/<kind>/<name>.yaml`. Code from elsewhere (a plugin) passes
        `config`, a dataclass or dict of its defaults: it is stored in Hydra's ConfigStore as the option
        `<kind>=<name>`, so the name composes like a built-in with no YAML file anywhere.
        """

        def add(builder: F) -> F:
            if name in self._entries:
                raise ValueError(f"{self.kind} '{name}' is already registered (by {self._entries[name].builder!r})")
            doc = description or (inspect.getdoc(builder) or "").split("\n")[0]
            self._entries[name] = Entry(name, builder, doc, config)
            if config is not None:
                from hydra.core.config_store import ConfigStore

                ConfigStore.instance().store(group=self.kind, name=name, node=config)
            return builder

        return add

    def get(self, name: str) -> F:
        return self.entry(name).builder  # type: ignore[return-value]

    def entry(self, name: str) -> Entry:
        if name not in self._entries:
            valid = ", ".join(self.names())
            raise UserError(
                f"unknown {self.kind} '{name}'{did_you_mean(name, self.names())} (valid: {valid})"
            )
        return self._entries[name]

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[Entry]:
        return iter(self._entries[n] for n in self.names())
