"""A registry of classes by name, filled by a class decorator: the profile kinds and the background methods."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

__all__ = ["Registry"]

_T = TypeVar("_T", bound=type)


class Registry(dict[str, type]):
    """Classes by name, in the order they were registered.

    Parameters
    ----------
    what : str
        What a name is (``"profile kind"``), for the errors.
    base : type
        The class every registered class derives from.
    required : dict
        Class attributes every registered class must have, with their types.
    reserved : tuple of str
        Names that mean something else (``auto``): never registered, listed first in `names`.
    """

    def __init__(self, what: str, base: type, required: dict[str, type], reserved: tuple[str, ...] = ()):
        super().__init__()
        self.what, self.base, self.required, self.reserved = what, base, required, reserved

    @property
    def names(self) -> tuple[str, ...]:
        """Every name a user may give: the reserved ones, then the registered ones."""
        return (*self.reserved, *self)

    def register(self, name: str) -> Callable[[_T], _T]:
        """Class decorator: register the class under ``name``."""

        def add(cls: _T) -> _T:
            if name in self or name in self.reserved:
                raise ValueError(f"{self.what} {name!r} is already registered")
            missing = [key for key, kind in self.required.items() if not isinstance(getattr(cls, key, None), kind)]
            if not issubclass(cls, self.base) or missing:
                raise TypeError(f"{cls.__name__} is not a {self.base.__name__} with {', '.join(self.required)}")
            self[name] = cls
            return cls

        return add

    def name_of(self, cls: type) -> str:
        """The name ``cls`` is registered under; ValueError if it is not registered."""
        for name, registered in self.items():
            if registered is cls:
                return name
        raise ValueError(f"{cls.__name__} is not a registered {self.what}")

    def lookup(self, name: str) -> type:
        """The class registered as ``name``; ValueError naming the choices if there is none."""
        try:
            return self[name]
        except KeyError:
            raise ValueError(f"unknown {self.what} {name!r}; use one of {self.names}") from None
