"""jwst_optextract: optimal extraction of JWST spectra as stpipe steps.

The steps, pipelines and products are imported on first use, so that
``jwst_optextract.core`` (pure numpy/scipy) does not pay for importing jwst.
"""

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version

from .exceptions import InputError, OptExtractError, SlitError

try:
    __version__ = version("jwst_optextract")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"

_LAZY = {
    "BackgroundStep": "steps",
    "OptimalExtractionPipeline": "steps",
    "OptimalExtractStep": "steps",
    "OptSpec2Pipeline": "steps",
    "OptSpec3Pipeline": "steps",
    "PsfFitStep": "steps",
    "SlitCombineStep": "steps",
    "TraceStep": "steps",
    "ProfileModel": "io.products",
    "TraceModel": "io.products",
}

__all__ = ["InputError", "OptExtractError", "SlitError", "__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
