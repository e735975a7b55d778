"""Exceptions raised by jwst_optextract.

Every error the package raises on bad input is an `OptExtractError` (a
`ValueError`), with a message that names the file, the slit (and integration)
and says what is wrong and what to do.
"""

from __future__ import annotations

__all__ = ["OptExtractError", "InputError", "SlitError", "OutputError"]


class OptExtractError(ValueError):
    """Base class of the package's errors about its input."""


class InputError(OptExtractError):
    """The input as a whole cannot be processed (wrong model type, empty input)."""


class OutputError(OptExtractError):
    """The output cannot be written where asked (it would overwrite the input, or has no known format)."""


class SlitError(OptExtractError):
    """One slit cannot be extracted; in multi-slit input it is skipped with a warning.

    Parameters
    ----------
    slit : str
        Name of the slit.
    problem : str
        What is wrong, and what to do about it.
    filename : str, optional
        The file the slit belongs to; set later with `in_file` where only the
        caller knows it.
    """

    def __init__(self, slit: str, problem: str, filename: str | None = None):
        self.slit = slit
        self.problem = problem
        self.filename = filename
        super().__init__(self._message())

    def _message(self) -> str:
        where = f"{self.filename}, " if self.filename else ""
        return f"{where}slit {self.slit}: {self.problem}"

    def in_file(self, filename: str | None) -> SlitError:
        """Name the file in the message (if it is known and not named yet); returns self."""
        if filename and not self.filename:
            self.filename = filename
            self.args = (self._message(),)
        return self

    def __reduce__(self):
        return type(self), (self.slit, self.problem, self.filename)
