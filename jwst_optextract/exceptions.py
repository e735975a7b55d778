"""Exceptions raised by jwst_optextract.

Every error the package raises on bad input is an `OptExtractError` (a
`ValueError`), with a message that names the slit (and integration) and says
what is wrong and what to do.
"""

from __future__ import annotations

__all__ = ["OptExtractError", "InputError", "SlitError"]


class OptExtractError(ValueError):
    """Base class of the package's errors about its input."""


class InputError(OptExtractError):
    """The input as a whole cannot be processed (wrong model type, empty input)."""


class SlitError(OptExtractError):
    """One slit cannot be extracted; in multi-slit input it is skipped with a warning.

    Parameters
    ----------
    slit : str
        Name of the slit.
    problem : str
        What is wrong, and what to do about it.
    """

    def __init__(self, slit: str, problem: str):
        self.slit = slit
        self.problem = problem
        super().__init__(f"slit {slit}: {problem}")
