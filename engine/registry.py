"""A name -> spec registry whose heavy parts are named, not imported: "package.module:Attr" strings
are resolved on first use, so the GUI can read a registry (names, titles, config sections) without
importing torch."""
from __future__ import annotations

import importlib
from typing import Any, Generic, Iterator, TypeVar


def load_object(ref: str) -> Any:
    """'engine.models.ddpm:DDPMFamily' -> the object it names."""
    module, _, attr = ref.partition(":")
    if not module or not attr:
        raise ValueError(f"{ref!r} is not a 'package.module:Attribute' reference")
    obj = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


T = TypeVar("T")


class Registry(Generic[T]):
    """Specs by name, in registration order. `kind` names what is registered, for error messages."""

    def __init__(self, kind: str):
        self.kind = kind
        self._specs: dict[str, T] = {}

    def register(self, name: str, spec: T) -> T:
        if name in self._specs:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._specs[name] = spec
        return spec

    def get(self, name: str) -> T:
        try:
            return self._specs[name]
        except KeyError:
            raise KeyError(f"unknown {self.kind} {name!r}; known: {', '.join(self._specs) or 'none'}") from None

    def names(self) -> tuple[str, ...]:
        return tuple(self._specs)

    def __contains__(self, name: object) -> bool:
        return name in self._specs

    def __iter__(self) -> Iterator[str]:
        return iter(self._specs)

    def items(self):
        return self._specs.items()
