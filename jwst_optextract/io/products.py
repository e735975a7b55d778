"""Trace and profile products: self-describing ASDF datamodels with schemas of their own.

`TraceModel` and `ProfileModel` are jwst datamodels (they carry the usual
``meta``), whose schemas ship in ``jwst_optextract/schemas`` and are registered
with asdf through the ``asdf.resource_mappings`` entry point. Saved as ``.asdf``
they open with plain ``asdf.open`` (a tree of numbers and arrays), with
``stdatamodels`` datamodels, or with these classes. A slit's entry in them is
made from, and read back into, a `~jwst_optextract.core.fitted.TraceFit` or
`~jwst_optextract.core.fitted.ProfileFit` here (`trace_entry`,
`trace_from_entry`, `profile_entry`, `profile_from_entry`); a profile kind
writes and reads its own part (``to_entry`` / ``from_entry``).
``jwst_optextract.products`` is the same module under its released name.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path

import asdf
import numpy as np
from asdf.resource import DirectoryResourceMapping
from astropy.io import fits
from stdatamodels.jwst.datamodels import JwstDataModel

from ..core.fitted import ProfileFit, TraceFit
from ..core.profiles import GaussianProfile, ProfileTemplate, profile_class
from ..exceptions import InputError, SlitError
from .slits import SlitData

__all__ = ["ProfileModel", "TraceModel", "get_resource_mappings", "new_profile_model", "new_trace_model",
           "profile_entry", "profile_from_entry", "read_template", "trace_entry", "trace_from_entry"]

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


def trace_entry(slit: SlitData, trace: TraceFit) -> dict:
    """The TraceModel entry of one slit."""
    return {
        "name": slit.name, "source_id": getattr(slit.model, "source_id", None),
        "dispersion_axis": int(slit.dispaxis), "origin": [int(o) for o in slit.origin],
        "center": np.asarray(trace.center, float), "shifts": np.asarray(trace.shifts, float),
        "negative_offsets": np.asarray(trace.negative_offsets, float),
        "detected": bool(trace.detected), "method": trace.method,
        **({} if trace.gaussian is None else {"sigma_coefficients": np.asarray(trace.gaussian.sigma_coeffs, float)}),
    }


def trace_from_entry(entry, slit: SlitData) -> TraceFit:
    """A TraceFit from a TraceModel entry, checked against the slit it is used for."""
    center = _checked_center(entry, slit, "trace")
    shifts = np.asarray(getattr(entry, "shifts", None) if getattr(entry, "shifts", None) is not None else [], float)
    if shifts.size and shifts.size != (slit.n_integrations or 0):
        raise SlitError(slit.name, f"the given trace has {shifts.size} shifts for {slit.n_integrations} integrations")
    if not np.isfinite(shifts).all():
        raise SlitError(slit.name, "the given trace has non-finite per-integration shifts; fit the trace again")
    negatives = getattr(entry, "negative_offsets", None)
    sigma = getattr(entry, "sigma_coefficients", None)
    gaussian = None
    if sigma is not None and np.size(sigma) and np.isfinite(sigma).all():
        gaussian = GaussianProfile(np.zeros(1), np.asarray(sigma, float), slit.nx, slit.ny, base=center)
    return TraceFit(slit.name, center, shifts, np.asarray(negatives if negatives is not None else [], float),
                    detected=bool(getattr(entry, "detected", True)), method=str(getattr(entry, "method", "given")),
                    gaussian=gaussian)


def profile_entry(slit: SlitData, profile: ProfileFit) -> dict:
    """The ProfileModel entry of one slit."""
    return {
        "name": slit.name, "kind": profile.kind, "center": np.asarray(profile.center, float),
        "values": profile.evaluate(slit.ny).astype(float), "chi2_per_pixel": float(profile.chi2_per_pixel),
        **profile.model.to_entry(),
    }


def profile_from_entry(entry, slit: SlitData) -> ProfileFit:
    """A ProfileFit from a ProfileModel entry, checked against the slit it is used for."""
    center = _checked_center(entry, slit, "profile")
    kind = str(entry.kind)
    try:
        model = profile_class(kind).from_entry(entry, center, slit.ny)
    except ValueError as error:
        raise SlitError(slit.name, str(error)) from error
    return ProfileFit(slit.name, kind, center, model, float(getattr(entry, "chi2_per_pixel", np.nan)))


def _checked_center(entry, slit: SlitData, what: str) -> np.ndarray:
    """The centre of a trace or profile entry, checked to fit the slit: one finite row per column, inside it."""
    center = np.asarray(entry.center, float)
    if center.shape != (slit.nx,):
        raise SlitError(slit.name, f"the given {what} has {center.size} columns but the slit has {slit.nx}; "
                        "was it made from another exposure?")
    if not np.isfinite(center).all():
        raise SlitError(slit.name, f"the given {what} has non-finite centres; fit it again")
    outside = (center < -0.5) | (center > slit.ny - 0.5)
    if outside.any():
        raise SlitError(slit.name, f"the given {what} leaves the slit (rows 0 to {slit.ny - 1}) in "
                        f"{int(outside.sum())} of {slit.nx} columns (centre {center.min():.1f} to "
                        f"{center.max():.1f}); was it made from another exposure?")
    return center
