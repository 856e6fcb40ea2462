"""A named registry filled by a decorator, like SINGA's ``Driver::Register*``.

One registry per concept (ops, updaters, schedules, initializers, data sources, algorithms,
cluster frameworks).  Lookups of unknown names produce a did-you-mean hint and the list of
known names, so every "unknown X" error reads the same way.
"""
from __future__ import annotations

import difflib
from typing import Generic, Iterator, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, concept: str):
        self.concept = concept          # e.g. "op", "updater": used in messages
        self._items: dict[str, T] = {}

    def register(self, name: str, item: T) -> T:
        if name in self._items:
            raise ValueError(f"{self.concept} '{name}' registered twice")
        self._items[name] = item
        return item

    def replace(self, name: str, item: T) -> T:
        """Swap a registered item for a new version of itself (e.g. with lowering attached)."""
        if name not in self._items:
            raise KeyError(f"{self.concept} '{name}' is not registered")
        self._items[name] = item
        return item

    def __call__(self, name: str):
        """Decorator form: ``@UPDATERS("sgd")``."""
        def deco(item):
            self.register(name, item)
            return item
        return deco

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __getitem__(self, name: str) -> T:
        return self._items[name]

    def get(self, name: str, default=None):
        return self._items.get(name, default)

    def entry_for(self, name: str, args: dict, what: str | None = None):
        """The entry named by a spec read back from a plan, checked for required attrs:
        a SingaConfigError for an unknown name or a missing attribute."""
        from .errors import SingaConfigError
        entry = self._items.get(name)
        what = what or self.concept
        if entry is None:
            raise SingaConfigError(f"unknown {what} '{name}'", hint=self.unknown_hint(name))
        missing = [a.name for a in entry.attrs if a.required and a.name not in args]
        if missing:
            raise SingaConfigError(f"{what} {name} is missing {', '.join(missing)}")
        return entry

    def names(self) -> list[str]:
        return sorted(self._items)

    def items(self):
        return sorted(self._items.items())

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def unknown_hint(self, name: str) -> str:
        """'did you mean ...?' plus the known names, for an unknown-name error."""
        close = difflib.get_close_matches(name, self.names(), n=1, cutoff=0.6)
        known = ", ".join(self.names())
        if close:
            return f"did you mean '{close[0]}'? known {self.concept}s: {known}"
        return f"known {self.concept}s: {known}"
