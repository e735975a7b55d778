"""jwst_optextract: optimal extraction of JWST spectra as stpipe steps."""

from importlib.metadata import PackageNotFoundError, version

from .exceptions import InputError, OptExtractError, SlitError
from .products import ProfileModel, TraceModel
from .steps import (
    BackgroundStep,
    OptimalExtractionPipeline,
    OptimalExtractStep,
    OptSpec2Pipeline,
    OptSpec3Pipeline,
    PsfFitStep,
    TraceStep,
)

try:
    __version__ = version("jwst_optextract")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"

__all__ = [
    "BackgroundStep", "InputError", "OptExtractError", "OptSpec2Pipeline", "OptSpec3Pipeline",
    "OptimalExtractStep", "OptimalExtractionPipeline", "ProfileModel", "PsfFitStep", "SlitError",
    "TraceModel", "TraceStep", "__version__",
]
