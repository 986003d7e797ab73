"""Name → spec registries, one per kind of thing: methods, datasets, models and noise models.

Each kind is registered in one place (as timm registers models), and everything else — CLI choices
and help, sweep names, report order, validation of options — is derived from its registry::

    from limitlab.models import MODELS, register_model

    @register_model("tiny", description="one hidden layer of 64 units")
    def tiny(input_shape, num_classes, *, role="classifier", dropout=0.0, head_bias=True, pretrained=False):
        ...

This module imports neither torch nor numpy, so that reading a registry stays cheap.
"""

from __future__ import annotations

import difflib
from typing import Callable, Generic, Iterator, TypeVar

from .errors import LimitlabError

S = TypeVar("S")


class Registry(Generic[S]):
    """An ordered name → spec mapping. ``kind`` ("method", "dataset", …) and ``flag``
    ("--method", …) only shape error and help texts. A spec is any object with ``name`` and
    ``description`` attributes; registration order is the order of help texts and reports."""

    def __init__(self, kind: str, flag: str):
        self.kind, self.flag = kind, flag
        self._specs: dict[str, S] = {}

    def add(self, spec: S) -> S:
        name = spec.name  # type: ignore[attr-defined]
        if name in self._specs:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._specs[name] = spec
        return spec

    def get(self, name: str) -> S:
        """The spec of ``name``; a one-sentence LimitlabError naming the choices otherwise."""
        try:
            return self._specs[name]
        except (KeyError, TypeError):
            close = difflib.get_close_matches(str(name), list(self._specs), n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise LimitlabError(f"unknown {self.kind} {name!r}{hint}; choose one of: {', '.join(self._specs)}") from None

    def names(self) -> list[str]:
        return list(self._specs)

    def specs(self) -> list[S]:
        return list(self._specs.values())

    def __contains__(self, name: object) -> bool:
        return name in self._specs

    def __iter__(self) -> Iterator[str]:
        return iter(self._specs)

    def __len__(self) -> int:
        return len(self._specs)

    def choices_text(self) -> str:
        """``a, b, c``: the registered names, for help texts."""
        return ", ".join(self._specs)

    def describe(self) -> list[tuple[str, str]]:
        """(name, description) of every entry, in registration order."""
        return [(name, spec.description) for name, spec in self._specs.items()]  # type: ignore[attr-defined]


def decorator(registry: Registry, make_spec: Callable[..., S]) -> Callable[..., Callable]:
    """A ``register_x(name, **fields)`` decorator for ``registry`` whose spec is
    ``make_spec(name=name, build=function, **fields)``; it returns the function unchanged."""

    def register(name: str, **fields) -> Callable:
        def wrap(function: Callable) -> Callable:
            registry.add(make_spec(name=name, build=function, **fields))
            return function
        return wrap

    return register
