"""Extracted spectra to standard jwst x1d / x1dints products.

Units and columns follow jwst ``extract_1d`` exactly, so that ``combine_1d``,
specutils and jdaviz read the products unchanged:

- before photom: DN/s in, FLUX in DN/s, SURF_BRIGHT in DN/s;
- after photom, data in MJy/sr: FLUX in Jy (sum x pixel solid angle x 1e6),
  SURF_BRIGHT in MJy/sr (sum / NPIXELS);
- after photom, NIRSpec point source (data in MJy): FLUX in Jy (x 1e6) and
  SURF_BRIGHT zero, as jwst does.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator
from dataclasses import dataclass

import asdf.schema
import numpy as np
from astropy.table import Table
from jwst.datamodels.utils import flat_multispec
from stdatamodels.jwst import datamodels

from ..core.pixels import VarianceComponents
from .dq import DO_NOT_USE
from .jwst_modules import extract_1d_module
from .slits import HORIZONTAL, SlitData

__all__ = ["FluxUnits", "Spectrum", "flux_units", "make_output_model", "to_specmodel", "white_light_curve",
           "white_light_summary"]

log = logging.getLogger(__name__)

_TIME_COLUMNS = {
    "MJD-BEG": "int_start_MJD_UTC",
    "MJD-AVG": "int_mid_MJD_UTC",
    "MJD-END": "int_end_MJD_UTC",
    "TDB-BEG": "int_start_BJD_TDB",
    "TDB-MID": "int_mid_BJD_TDB",
    "TDB-END": "int_end_BJD_TDB",
}


@dataclass
class Spectrum(VarianceComponents):
    """An extracted spectrum in data units, before unit conversion.

    Per-column arrays have shape ``(nx,)`` or ``(nints, nx)``.
    """

    wavelength: np.ndarray
    flux: np.ndarray
    var_poisson: np.ndarray
    var_rnoise: np.ndarray
    var_flat: np.ndarray
    npixels: np.ndarray
    dq: np.ndarray
    extraction_type: str
    aperture: tuple[float, float] | None = None
    """Mean inclusive cross-dispersion limits of the extraction (0-based), for the metadata."""
    scene: np.ndarray | None = None
    """The model of the slit's data that the extraction implies (canonical layout), if kept."""


@dataclass(frozen=True)
class FluxUnits:
    """How a sum of data values becomes FLUX and SURF_BRIGHT."""

    flux_factor: float
    flux_unit: str
    sb_unit: str
    surface_brightness: bool

    @property
    def flux_var_unit(self) -> str:
        return "Jy^2" if self.flux_unit == "Jy" else "DN^2 / s^2"

    @property
    def sb_var_unit(self) -> str:
        return "MJy^2 / sr^2" if self.sb_unit == "MJy/sr" else "DN^2 / s^2"


def flux_units(model: datamodels.JwstDataModel, slit=None) -> FluxUnits:
    """The jwst ``extract_1d`` unit convention for an input model and slit."""
    # jwst decides by the photom step alone; data calibrated elsewhere (e.g.
    # msaexp products) say so only in BUNIT, and must not be labelled DN/s.
    bunit = _meta_value(slit, "bunit_data") or _meta_value(model, "bunit_data") or ""
    photom = (model.meta.cal_step.photom or "").upper() == "COMPLETE" or bunit.replace(" ", "") in ("MJy/sr", "MJy")
    if not photom:
        return FluxUnits(1.0, "DN/s", "DN/s", True)
    source_type = getattr(slit, "source_type", None) if slit is not None else None
    if source_type is None:
        source_type = getattr(model, "source_type", None) if isinstance(model, datamodels.SlitModel) else None
    source_type = source_type or model.meta.target.source_type
    instrument = (model.meta.instrument.name or "").upper()
    if source_type == "POINT" and instrument == "NIRSPEC":
        return FluxUnits(1.0e6, "Jy", "MJy/sr", False)
    area = model.meta.photometry.pixelarea_steradians
    if area is None:
        log.warning("Pixel area (solid angle) is not populated; the flux will not be correct.")
        area = 1.0
    return FluxUnits(area * 1.0e6, "Jy", "MJy/sr", True)


def _meta_value(model, key):
    """``model.meta.<key>``, or None where the model (or a slit node) does not have it."""
    return getattr(getattr(model, "meta", None), key, None)


def make_output_model(input_model: datamodels.JwstDataModel, integrations: bool):
    """An empty MultiSpecModel (or TSOMultiSpecModel) carrying the input's metadata."""
    kind = datamodels.TSOMultiSpecModel if integrations else datamodels.MultiSpecModel
    output = kind(validate_on_assignment=False)  # validated once, on save: see `to_specmodel`
    for key in ("int_times", "int_times_stripe"):
        table = getattr(input_model, key, None)
        if table is not None:
            setattr(output, key, table.copy())
    output.update(input_model, only="PRIMARY")
    output.meta.telescope = "JWST"
    return output


def to_specmodel(slit: SlitData, parent, spectrum: Spectrum, units: FluxUnits):
    """Build the SpecModel (or TSOSpecModel for integrations) of one slit.

    Columns whose wavelength is undefined are left out, as jwst does. The
    model does not validate each assignment: stdatamodels parses schemas anew
    on every one, which took 0.1 s per slit. The whole product is validated
    when it is saved.
    """
    keep = np.isfinite(spectrum.wavelength)
    if not keep.all():
        log.info("Slit %s: %d columns without a wavelength are left out", slit.name, (~keep).sum())
    columns = _columns(spectrum, units, keep)
    if spectrum.flux.ndim == 1:
        table = np.zeros(int(keep.sum()), dtype=_spec_table_dtype())
        for name, values in columns:
            table[name] = values
        spec = datamodels.SpecModel(spec_table=table, validate_on_assignment=False, schema=_spec_schema())
    else:
        spec = _tso_specmodel(columns, (spectrum.flux.shape[0], int(keep.sum())), parent)
    _set_units(spec, units)
    _copy_slit_metadata(slit, parent, spec, spectrum)
    return spec


@functools.cache
def _spec_table_dtype() -> np.dtype:
    return datamodels.SpecModel().get_dtype("spec_table")


@functools.cache
def _spec_schema() -> dict:
    """SpecModel's schema, its references resolved, loaded once.

    Read only: stdatamodels merges it into a new tree for each model. Left
    to itself, it gets a deep copy of asdf's cached schema for every model,
    which was half the time of making a slit's SpecModel.
    """
    return asdf.schema.load_schema(datamodels.SpecModel.schema_url, resolve_references=True)


def _columns(spectrum: Spectrum, units: FluxUnits, keep: np.ndarray) -> Iterator[tuple[str, np.ndarray | float]]:
    """The x1d columns, one at a time: for many integrations a full set is as large as the table itself."""
    flux, npix = spectrum.flux[..., keep], spectrum.npixels[..., keep]
    npix_safe = np.where(npix > 0, npix, 1.0)
    f, f2 = units.flux_factor, units.flux_factor**2
    var = {k: getattr(spectrum, f"var_{k}")[..., keep] for k in ("poisson", "rnoise", "flat")}
    yield "WAVELENGTH", np.broadcast_to(spectrum.wavelength[keep], flux.shape)
    yield "FLUX", flux * f
    yield "FLUX_ERROR", np.sqrt(sum(var.values())) * f
    for k, v in var.items():
        yield f"FLUX_VAR_{k.upper()}", v * f2
    if units.surface_brightness:
        # For an optimal extraction (where jwst writes zeros) this is the mean
        # surface brightness over the effective number of pixels, so that
        # readers that pick SURF_BRIGHT for extended sources see the spectrum.
        yield "SURF_BRIGHT", flux / npix_safe
        yield "SB_ERROR", np.sqrt(sum(v / npix_safe**2 for v in var.values()))
        for k, v in var.items():
            yield f"SB_VAR_{k.upper()}", v / npix_safe**2
    else:  # NIRSpec point sources, calibrated in MJy: as jwst, no surface brightness
        for name in ("SURF_BRIGHT", "SB_ERROR", "SB_VAR_POISSON", "SB_VAR_RNOISE", "SB_VAR_FLAT"):
            yield name, 0.0
    yield "DQ", spectrum.dq[..., keep] | np.where(np.isnan(flux), DO_NOT_USE, 0).astype(np.uint32)
    for name in ("BACKGROUND", "BKGD_ERROR", "BKGD_VAR_POISSON", "BKGD_VAR_RNOISE", "BKGD_VAR_FLAT"):
        yield name, 0.0
    yield "NPIXELS", npix


def _tso_specmodel(columns: Iterator[tuple[str, np.ndarray | float]], shape: tuple[int, int], parent):
    """A TSOSpecModel with one row per integration (``shape``: integrations, columns), filled column-wise."""
    tso = datamodels.TSOSpecModel(validate_on_assignment=False)
    in_cols = datamodels.SpecModel().schema["properties"]["spec_table"]["datatype"]
    out_cols = tso.schema["properties"]["spec_table"]["datatype"]
    all_cols, is_vector = flat_multispec.determine_vector_and_meta_columns(in_cols, out_cols)
    nints, n = shape
    defaults = tso.schema["properties"]["spec_table"]["default"]
    table = flat_multispec.make_empty_recarray(n, nints, all_cols, is_vector, defaults=defaults)
    for name, values in columns:
        table[name] = values
    table["N_ALONGDISP"] = n
    table["SEGMENT"] = parent.meta.exposure.segment_number or 1
    table["INT_NUM"] = np.arange(1, nints + 1)
    for column in _TIME_COLUMNS:
        table[column] = np.nan
    _fill_times(table, parent)
    tso.spec_table = table
    for column in _TIME_COLUMNS:
        tso.spec_table.columns[column].unit = "d"
    return tso


def _fill_times(table: np.ndarray, parent) -> None:
    """Integration numbers and times from the INT_TIMES table, where it covers the data."""
    int_times = getattr(parent, "int_times", None)
    if int_times is None or len(int_times) == 0:
        log.warning("INT_TIMES table not found; integration times are not filled in")
        return
    first = (parent.meta.exposure.integration_start or 1)
    numbers = np.asarray(int_times["integration_number"])
    rows = np.searchsorted(numbers, first + np.arange(len(table)))
    if rows.max(initial=0) >= len(numbers) or not np.array_equal(numbers[rows], first + np.arange(len(table))):
        log.warning("INT_TIMES does not cover every integration; integration times are not filled in")
        return
    table["INT_NUM"] = numbers[rows]
    for column, source in _TIME_COLUMNS.items():
        table[column] = np.asarray(int_times[source])[rows]


def _set_units(spec, units: FluxUnits) -> None:
    col = spec.spec_table.columns
    col["WAVELENGTH"].unit = "um"
    for name in ("FLUX", "FLUX_ERROR"):
        col[name].unit = units.flux_unit
    for name in ("FLUX_VAR_POISSON", "FLUX_VAR_RNOISE", "FLUX_VAR_FLAT"):
        col[name].unit = units.flux_var_unit
    for name in ("SURF_BRIGHT", "SB_ERROR", "BACKGROUND", "BKGD_ERROR"):
        col[name].unit = units.sb_unit
    for name in ("SB_VAR_POISSON", "SB_VAR_RNOISE", "SB_VAR_FLAT",
                 "BKGD_VAR_POISSON", "BKGD_VAR_RNOISE", "BKGD_VAR_FLAT"):
        col[name].unit = units.sb_var_unit


_SLIT_ATTRIBUTES = (
    "slitlet_id", "source_id", "source_name", "source_alias", "source_type", "stellarity",
    "source_xpos", "source_ypos", "source_ra", "source_dec", "shutter_state", "quadrant",
    "slit_xscale", "slit_yscale", "pathloss_correction_type", "barshadow_corrected",
)


def _copy_slit_metadata(slit: SlitData, parent, spec, spectrum: Spectrum) -> None:
    model = slit.model
    if slit.name and not slit.name.startswith("#"):
        spec.name = slit.name
    for key in _SLIT_ATTRIBUTES:
        value = getattr(model, key, None)
        if value is not None:
            setattr(spec, key, value)
    spec.dispersion_direction = slit.dispaxis
    spec.detector = parent.meta.instrument.detector
    spec.spectral_order = getattr(getattr(model.meta, "wcsinfo", None), "spectral_order", None) or 1
    spec.position_angle = getattr(parent.meta.aperture, "position_angle", None)
    ra, dec = _aperture_sky_position(slit, spectrum)
    spec.slit_ra, spec.slit_dec = ra, dec
    wavelength = spectrum.wavelength[np.isfinite(spectrum.wavelength)]
    spec.meta.wcs = extract_1d_module("spec_wcs").create_spectral_wcs(ra, dec, wavelength)
    if spectrum.aperture is not None:
        lower, upper = spectrum.aperture
        cols = np.flatnonzero(np.isfinite(spectrum.wavelength))
        cross = (lower + 1 + slit.origin[0], upper + 1 + slit.origin[0])
        along = (float(cols[0]) + 1 + slit.origin[1], float(cols[-1]) + 1 + slit.origin[1])
        if slit.dispaxis == HORIZONTAL:
            spec.extraction_ystart, spec.extraction_ystop = cross
            spec.extraction_xstart, spec.extraction_xstop = along
        else:
            spec.extraction_xstart, spec.extraction_xstop = cross
            spec.extraction_ystart, spec.extraction_ystop = along


def _aperture_sky_position(slit: SlitData, spectrum: Spectrum) -> tuple[float | None, float | None]:
    """RA and Dec of the aperture centre at the middle column, from the WCS."""
    wcs = getattr(slit.model.meta, "wcs", None)
    if wcs is None or spectrum.aperture is None:
        return None, None
    row = 0.5 * (spectrum.aperture[0] + spectrum.aperture[1]) + slit.origin[0]
    col = 0.5 * (slit.nx - 1) + slit.origin[1]
    x, y = (col, row) if slit.dispaxis == HORIZONTAL else (row, col)
    try:
        coords = wcs(x, y)
    except Exception:  # noqa: BLE001 -- a WCS without sky axes
        return None, None
    if len(coords) < 3 or not np.all(np.isfinite(coords[:2])):
        return None, None
    return float(coords[0]), float(coords[1])


def white_light_curve(spec, name: str) -> Table:
    """The white-light curve of one slit's integrations: flux summed over the good wavelengths.

    Parameters
    ----------
    spec : TSOSpecModel
        One slit's spectra, one row per integration (as `to_specmodel` makes them).
    name : str
        The slit's name, for the table's metadata.

    Returns
    -------
    Table
        Columns ``int_num``, ``mjd_mid`` (the integration's mid-time, MJD UTC,
        from INT_TIMES; NaN where the input had no times), ``flux`` and
        ``flux_error`` (in the units of FLUX). The good wavelengths are the
        columns with a finite wavelength and flux and no DO_NOT_USE in every
        integration that has any; the same columns are summed in every
        integration, so the curve is free of coverage changes. An integration
        missing one of them gets NaN.
    """
    table = spec.spec_table
    flux = np.asarray(table["FLUX"], dtype=np.float64)
    usable = np.isfinite(flux) & np.isfinite(table["WAVELENGTH"]) & ((table["DQ"] & DO_NOT_USE) == 0)
    present = usable.any(axis=1)
    columns = usable[present].all(axis=0) if present.any() else np.zeros(flux.shape[1], bool)
    white = np.where(present, flux[:, columns].sum(axis=1), np.nan)
    error = np.sqrt(np.where(present, (np.asarray(table["FLUX_ERROR"], np.float64)[:, columns] ** 2).sum(axis=1),
                             np.nan))
    unit = spec.spec_table.columns["FLUX"].unit
    wavelength = np.asarray(table["WAVELENGTH"])[present][:, columns] if columns.any() else np.full(1, np.nan)
    curve = Table(
        {"int_num": np.asarray(table["INT_NUM"], np.int32), "mjd_mid": np.asarray(table["MJD-AVG"], np.float64),
         "flux": white, "flux_error": error},
        meta={"slit": name, "n_wavelengths": int(columns.sum()),
              "wavelength_range_um": [float(np.nanmin(wavelength)), float(np.nanmax(wavelength))]},
    )
    curve["mjd_mid"].unit = "d"
    for key in ("flux", "flux_error"):
        curve[key].unit = unit
    return curve


def white_light_summary(curve: Table) -> str:
    """A line for the log: integrations, median, rms scatter (also point to point) and noise expected, in ppm."""
    flux = np.asarray(curve["flux"])
    finite = np.isfinite(flux)
    if not finite.any():
        return f"White light {curve.meta['slit']}: no integration has a white-light flux"
    median = float(np.median(flux[finite]))
    with np.errstate(invalid="ignore", divide="ignore"):
        relative = flux[finite] / median - 1
        rms = 1e6 * float(np.std(relative)) if relative.size > 1 else np.nan
        point_to_point = 1e6 * float(np.std(np.diff(relative)) / np.sqrt(2)) if relative.size > 2 else np.nan
        expected = 1e6 * float(np.median(np.asarray(curve["flux_error"])[finite]) / abs(median))
    return (f"White light {curve.meta['slit']}: {finite.sum()} of {len(flux)} integrations, "
            f"{curve.meta['n_wavelengths']} wavelengths, median {median:.6g} {curve['flux'].unit or ''}, "
            f"rms scatter {rms:.0f} ppm (point to point {point_to_point:.0f} ppm, expected from the errors "
            f"{expected:.0f} ppm)")
