"""Step specs whose option lists come from the registries of profile kinds and background methods."""

from __future__ import annotations

from ..core.background import METHODS
from ..core.profiles import PROFILES

__all__ = ["RegistrySpec"]


class RegistrySpec:
    """A step's ``spec`` (a class attribute) with the registered names filled in whenever stpipe reads it.

    In the template, ``{profile_kinds}`` stands for the quoted profile kinds
    (``"auto"`` first), ``{background_methods}`` for the quoted background
    methods and ``{background_help}`` for their summaries. Read at each use, not
    at import: a kind or method registered later (a plugin, a test) is accepted
    like the packaged ones.
    """

    def __init__(self, template: str):
        self.template = template

    def __get__(self, instance, owner=None) -> str:
        names = {
            "{profile_kinds}": _quoted(PROFILES.names),
            "{background_methods}": _quoted(METHODS),
            "{background_help}": "; ".join(f"{name}: {method.summary}" for name, method in METHODS.items()),
        }
        spec = self.template
        for placeholder, value in names.items():
            spec = spec.replace(placeholder, value)
        return spec


def _quoted(names) -> str:
    return ", ".join(f'"{name}"' for name in names)
