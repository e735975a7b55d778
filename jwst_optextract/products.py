"""Trace and profile products: self-describing ASDF datamodels with schemas of their own.

`TraceModel` and `ProfileModel` are jwst datamodels (they carry the usual
``meta``), whose schemas ship in ``jwst_optextract/schemas`` and are registered
with asdf through the ``asdf.resource_mappings`` entry point. Saved as ``.asdf``
they open with plain ``asdf.open`` (a tree of numbers and arrays), with
``stdatamodels`` datamodels, or with these classes.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path

import asdf
import numpy as np
from asdf.resource import DirectoryResourceMapping
from astropy.io import fits
from stdatamodels.jwst.datamodels import JwstDataModel

from .core.template_profile import ProfileTemplate
from .exceptions import InputError

__all__ = ["ProfileModel", "TraceModel", "get_resource_mappings", "new_profile_model", "new_trace_model",
           "read_template"]

SCHEMA_PREFIX = "http://jwst-optextract.org/schemas/"


class TraceModel(JwstDataModel):
    """Traces of the slits of one exposure (``traces``: one entry per slit)."""

    schema_url = SCHEMA_PREFIX + "trace.schema"

    def trace_for(self, name: str):
        """The entry of slit ``name``, or None."""
        return next((entry for entry in self.traces if entry.name == name), None)


class ProfileModel(JwstDataModel):
    """Cross-dispersion profiles of the slits of one exposure (``profiles``: one entry per slit)."""

    schema_url = SCHEMA_PREFIX + "profile.schema"

    def profile_for(self, name: str):
        """The entry of slit ``name``, or None."""
        return next((entry for entry in self.profiles if entry.name == name), None)


def new_trace_model(source: JwstDataModel) -> TraceModel:
    """An empty TraceModel with the primary header metadata of ``source`` (the exposure it describes)."""
    product = TraceModel(validate_on_assignment=False)  # validated on save
    product.update(source, only="PRIMARY")
    return product


def new_profile_model(source: JwstDataModel) -> ProfileModel:
    """An empty ProfileModel with the primary header metadata of ``source``."""
    product = ProfileModel(validate_on_assignment=False)  # validated on save
    product.update(source, only="PRIMARY")
    return product


def get_resource_mappings() -> list[DirectoryResourceMapping]:
    """The package's schemas, for the ``asdf.resource_mappings`` entry point."""
    root = importlib.resources.files("jwst_optextract") / "schemas"
    return [DirectoryResourceMapping(root, SCHEMA_PREFIX)]


TEMPLATE_KEYS = ("profile", "offset", "wavelength")
"""Arrays of a profile template file: ASDF tree keys, or FITS extension names (upper case)."""


def read_template(path: str | Path) -> ProfileTemplate:
    """Read a cross-dispersion profile template from a FITS or ASDF file.

    The file holds three arrays:

    - ``profile``: ``(n_wave, n_offset)`` monochromatic cross-dispersion
      profiles, a density per pixel of offset, any normalisation (e.g. a
      stpsf/WebbPSF monochromatic PSF summed along the dispersion, or a
      reference star's profile), sampled finely (a quarter pixel or better);
    - ``offset``: ``(n_offset,)`` increasing offsets from the trace in the
      slit's cross-dispersion pixels (positive towards higher rows);
    - ``wavelength``: ``(n_wave,)`` increasing wavelengths in microns, at least
      two, spanning the wavelengths of the slits it is used for.

    In FITS they are image extensions named ``PROFILE``, ``OFFSET`` and
    ``WAVELENGTH`` (the profile may instead be the primary array); in ASDF,
    top-level tree keys ``profile``, ``offset`` and ``wavelength``.

    Raises
    ------
    InputError
        When the file lacks one of the arrays or they are inconsistent.
    """
    path = Path(path)
    try:
        if path.suffix.lower() == ".asdf":
            with asdf.open(path, memmap=False) as af:
                arrays = {key: np.array(af.tree[key], dtype=float) for key in TEMPLATE_KEYS}
        else:
            with fits.open(path, memmap=False) as hdul:
                names = {hdu.name.lower(): hdu for hdu in hdul}
                if "profile" not in names and hdul[0].data is not None:
                    names["profile"] = hdul[0]
                arrays = {key: np.array(names[key].data, dtype=float) for key in TEMPLATE_KEYS}
        return ProfileTemplate(arrays["wavelength"], arrays["offset"], arrays["profile"])
    except KeyError as missing:
        raise InputError(f"profile template {path}: no {missing} array (it needs {', '.join(TEMPLATE_KEYS)}; "
                         "see jwst_optextract.products.read_template)") from None
    except ValueError as error:
        raise InputError(f"profile template {path}: {error}") from error
