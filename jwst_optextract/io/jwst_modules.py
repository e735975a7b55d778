"""Modules of jwst's ``extract_1d`` package, loaded without the package's step.

``import jwst.extract_1d.spec_wcs`` first runs ``jwst/extract_1d/__init__.py``,
which imports ``Extract1dStep`` and with it the IFU extraction, the residual
fringe correction, matplotlib and ``scipy.signal``: about 2 s, a fifth of a
50-slit MOS run's time outside the fits, for two small modules of functions
(``spec_wcs``: the x1d's spectral WCS; ``source_location``: the source position
from the WCS) that import only numpy, scipy, astropy, gwcs, stcal and
stdatamodels. `extract_1d_module` loads such a module from its file, as a
private copy that is not entered in ``sys.modules`` (so a later import of
``jwst.extract_1d`` makes its own, as usual); where that fails, or the package
is imported already, it is the ordinary import.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import sys
import threading
from pathlib import Path
from types import ModuleType

__all__ = ["extract_1d_module"]

log = logging.getLogger(__name__)

_PACKAGE = "jwst.extract_1d"
_LOADED: dict[str, ModuleType] = {}
_LOCK = threading.Lock()  # slits may be read in threads


def extract_1d_module(name: str) -> ModuleType:
    """The module ``jwst.extract_1d.<name>`` (``spec_wcs`` or ``source_location``), loaded once.

    The module has its usual ``__name__`` (its logger is jwst's), but the
    package's ``__init__`` is not run: see the module docstring.
    """
    full = f"{_PACKAGE}.{name}"
    with _LOCK:
        if full in sys.modules:  # the package's own copy, when something imported it
            return sys.modules[full]
        if name not in _LOADED:
            _LOADED[name] = _load_alone(full) or importlib.import_module(full)
        return _LOADED[name]


def _load_alone(full: str) -> ModuleType | None:
    """``full`` executed from its file without its package's ``__init__``; None where that cannot be done."""
    if _PACKAGE in sys.modules:
        return None
    import jwst

    path = Path(jwst.__file__).parent.joinpath(*full.split(".")[1:]).with_suffix(".py")
    spec = importlib.util.spec_from_file_location(full, path) if path.is_file() else None
    if spec is None or spec.loader is None:
        return None
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # noqa: BLE001 -- e.g. a relative import in a later jwst: the ordinary import
        log.debug("Loading %s alone failed (%s): importing its package", full, exc)
        return None
    return module
