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

import logging
from dataclasses import dataclass

import numpy as np
from jwst.datamodels.utils import flat_multispec
from jwst.extract_1d import spec_wcs
from stdatamodels.jwst import datamodels
from stdatamodels.jwst.datamodels import dqflags

from .slits import HORIZONTAL, SlitData

__all__ = ["Spectrum", "FluxUnits", "flux_units", "make_output_model", "to_specmodel"]

log = logging.getLogger(__name__)

DO_NOT_USE = dqflags.pixel["DO_NOT_USE"]
OUTLIER = dqflags.pixel["OUTLIER"]
_TIME_COLUMNS = {
    "MJD-BEG": "int_start_MJD_UTC",
    "MJD-AVG": "int_mid_MJD_UTC",
    "MJD-END": "int_end_MJD_UTC",
    "TDB-BEG": "int_start_BJD_TDB",
    "TDB-MID": "int_mid_BJD_TDB",
    "TDB-END": "int_end_BJD_TDB",
}


@dataclass
class Spectrum:
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
    output = datamodels.TSOMultiSpecModel() if integrations else datamodels.MultiSpecModel()
    for key in ("int_times", "int_times_stripe"):
        table = getattr(input_model, key, None)
        if table is not None:
            setattr(output, key, table.copy())
    output.update(input_model, only="PRIMARY")
    output.meta.telescope = "JWST"
    return output


def to_specmodel(slit: SlitData, parent, spectrum: Spectrum, units: FluxUnits):
    """Build the SpecModel (or TSOSpecModel for integrations) of one slit.

    Columns whose wavelength is undefined are left out, as jwst does.
    """
    keep = np.isfinite(spectrum.wavelength)
    if not keep.all():
        log.info("Slit %s: %d columns without a wavelength are left out", slit.name, (~keep).sum())
    columns = _columns(spectrum, units, keep)
    if spectrum.flux.ndim == 1:
        table = np.zeros(int(keep.sum()), dtype=datamodels.SpecModel().get_dtype("spec_table"))
        for name, values in columns.items():
            table[name] = values
        spec = datamodels.SpecModel(spec_table=table)
    else:
        spec = _tso_specmodel(columns, parent)
    _set_units(spec, units)
    _copy_slit_metadata(slit, parent, spec, spectrum)
    return spec


def _columns(spectrum: Spectrum, units: FluxUnits, keep: np.ndarray) -> dict[str, np.ndarray]:
    npix = spectrum.npixels
    npix_safe = np.where(npix > 0, npix, 1.0)
    f, f2 = units.flux_factor, units.flux_factor**2
    var = {k: getattr(spectrum, f"var_{k}") for k in ("poisson", "rnoise", "flat")}
    if units.surface_brightness:
        # For an optimal extraction (where jwst writes zeros) this is the mean
        # surface brightness over the effective number of pixels, so that
        # readers that pick SURF_BRIGHT for extended sources see the spectrum.
        sb = spectrum.flux / npix_safe
        sb_var = {k: v / npix_safe**2 for k, v in var.items()}
    else:  # NIRSpec point sources, calibrated in MJy: as jwst, no surface brightness
        sb = np.zeros_like(spectrum.flux)
        sb_var = {k: np.zeros_like(v) for k, v in var.items()}
    zeros = np.zeros_like(spectrum.flux)
    columns = {
        "WAVELENGTH": np.broadcast_to(spectrum.wavelength, spectrum.flux.shape),
        "FLUX": spectrum.flux * f,
        "FLUX_ERROR": np.sqrt(sum(var.values())) * f,
        "FLUX_VAR_POISSON": var["poisson"] * f2,
        "FLUX_VAR_RNOISE": var["rnoise"] * f2,
        "FLUX_VAR_FLAT": var["flat"] * f2,
        "SURF_BRIGHT": sb,
        "SB_ERROR": np.sqrt(sum(sb_var.values())),
        "SB_VAR_POISSON": sb_var["poisson"],
        "SB_VAR_RNOISE": sb_var["rnoise"],
        "SB_VAR_FLAT": sb_var["flat"],
        "DQ": spectrum.dq | np.where(np.isnan(spectrum.flux), DO_NOT_USE, 0).astype(np.uint32),
        "BACKGROUND": zeros,
        "BKGD_ERROR": zeros,
        "BKGD_VAR_POISSON": zeros,
        "BKGD_VAR_RNOISE": zeros,
        "BKGD_VAR_FLAT": zeros,
        "NPIXELS": npix,
    }
    return {name: values[..., keep] for name, values in columns.items()}


def _tso_specmodel(columns: dict[str, np.ndarray], parent):
    """A TSOSpecModel with one row per integration, filled column-wise."""
    tso = datamodels.TSOSpecModel()
    in_cols = datamodels.SpecModel().schema["properties"]["spec_table"]["datatype"]
    out_cols = tso.schema["properties"]["spec_table"]["datatype"]
    all_cols, is_vector = flat_multispec.determine_vector_and_meta_columns(in_cols, out_cols)
    nints, n = columns["FLUX"].shape
    defaults = tso.schema["properties"]["spec_table"]["default"]
    table = flat_multispec.make_empty_recarray(n, nints, all_cols, is_vector, defaults=defaults)
    for name, values in columns.items():
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
    spec.meta.wcs = spec_wcs.create_spectral_wcs(ra, dec, wavelength)
    if spectrum.aperture is not None:
        lower, upper = spectrum.aperture
        cols = np.flatnonzero(np.isfinite(spectrum.wavelength))
        cross = (lower + 1 + slit.origin[0], upper + 1 + slit.origin[0])
        along = (float(cols[0]) + 1 + slit.origin[1], float(cols[-1]) + 1 + slit.origin[1])
        if slit.dispaxis == HORIZONTAL:
            (spec.extraction_ystart, spec.extraction_ystop), (spec.extraction_xstart, spec.extraction_xstop) = cross, along
        else:
            (spec.extraction_xstart, spec.extraction_xstop), (spec.extraction_ystart, spec.extraction_ystop) = cross, along


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
    except Exception:  # a WCS without sky axes
        return None, None
    if len(coords) < 3 or not np.all(np.isfinite(coords[:2])):
        return None, None
    return float(coords[0]), float(coords[1])
