"""jwst_optextract: optimal extraction of JWST spectra as stpipe steps."""

from importlib.metadata import PackageNotFoundError, version

from .exceptions import InputError, OptExtractError, SlitError
from .steps import OptimalExtractStep

try:
    __version__ = version("jwst_optextract")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"

__all__ = ["InputError", "OptExtractError", "OptimalExtractStep", "SlitError", "__version__"]
