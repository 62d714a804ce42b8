"""A name -> spec registry whose heavy parts are named, not imported: "package.module:Attr" strings
are resolved on first use, so the GUI can read a registry (names, titles, config sections) without
importing torch. A registry may be filled by discovery (the families: one folder each) on first use."""
from __future__ import annotations

import importlib
import importlib.util
from typing import Any, Callable, Generic, Iterable, Iterator, TypeVar


def load_object(ref: str, package: str | None = None) -> Any:
    """'engine.families.ddpm.model:DDPMFamily' -> the object it names; a module part starting with
    '.' is relative to `package` ('.model:DDPMFamily' in package 'engine.families.ddpm')."""
    module, _, attr = ref.partition(":")
    if not module or not attr:
        raise ValueError(f"{ref!r} is not a 'package.module:Attribute' reference")
    obj = importlib.import_module(module, package)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def absolute_ref(ref: str, package: str) -> str:
    """'.model:DDPMFamily' in package 'engine.families.ddpm' -> 'engine.families.ddpm.model:DDPMFamily'."""
    module, _, attr = ref.partition(":")
    return f"{importlib.util.resolve_name(module, package)}:{attr}" if module.startswith(".") else ref


T = TypeVar("T")


class Registry(Generic[T]):
    """Specs by name, in registration order. `kind` names what is registered, for error messages.
    `discover`, if given, yields (name, spec) pairs and is run once, on first use."""

    def __init__(self, kind: str, discover: Callable[[], Iterable[tuple[str, T]]] | None = None):
        self.kind = kind
        self._specs: dict[str, T] = {}
        self._discover = discover

    def _ensure(self) -> dict[str, T]:
        if self._discover is not None:
            found = list(self._discover())   # a discovery that fails raises again on the next use
            self._discover = None
            for name, spec in found:
                self.register(name, spec)
        return self._specs

    def register(self, name: str, spec: T) -> T:
        if name in self._ensure():
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._specs[name] = spec
        return spec

    def unregister(self, name: str) -> T:
        """Take a spec out again (a test's own plug-in, afterwards)."""
        self._ensure()
        try:
            return self._specs.pop(name)
        except KeyError:
            raise KeyError(f"unknown {self.kind} {name!r}") from None

    def get(self, name: str) -> T:
        try:
            return self._ensure()[name]
        except KeyError:
            raise KeyError(f"unknown {self.kind} {name!r}; known: {', '.join(self._specs) or 'none'}") from None

    __getitem__ = get

    def names(self) -> tuple[str, ...]:
        return tuple(self._ensure())

    def __contains__(self, name: object) -> bool:
        return name in self._ensure()

    def __iter__(self) -> Iterator[str]:
        return iter(self._ensure())

    def items(self):
        return self._ensure().items()
