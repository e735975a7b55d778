"""Exposure and slit metadata of the simulated datamodels, as calwebb_spec2 writes them."""

from __future__ import annotations

import numpy as np
from stdatamodels.jwst import datamodels

from .pixels import Realisation
from .scene import SceneConfig
from .wcs import DEC0, RA0, build_wcs

#: Reference epoch of the simulated observations (2023-07-01T12:00:00 UTC).
_MJD0 = 60126.5
_DATE, _TIME = "2023-07-01", "12:00:00.000"
_SR_PER_ARCSEC2 = (np.pi / 180.0 / 3600.0) ** 2
NIRSPEC_FS_SLITS = ("S200A1", "S200A2", "S400A1", "S1600A1", "S200B1")


def _optics(cfg: SceneConfig) -> tuple[str, str, str]:
    """Return ``(detector, filter, grating)`` for the configuration."""
    if cfg.instrument == "MIRI":
        return "MIRIMAGE", "P750L", "N/A"
    mid = 0.5 * sum(cfg.wavelength_range)
    if mid < 1.0:
        return "NRS1", "F070LP", "G140M"
    if mid < 2.0:
        return "NRS1", "F100LP", "G140M"
    if mid < 3.3:
        return "NRS1", "F170LP", "G235M"
    return "NRS1", "F290LP", "G395M"


def _source_type(cfg: SceneConfig) -> str:
    """Source type consistent with the units (NIRSpec MJy/sr means extended)."""
    if cfg.units == "MJy/sr" and cfg.instrument == "NIRSPEC":
        return "EXTENDED"
    return "POINT"


def _int_times(model: datamodels.JwstDataModel, nints: int, int_time: float) -> np.ndarray:
    """INT_TIMES table as in jwst ``calints`` products."""
    table = np.zeros(nints, dtype=model.get_default("int_times").dtype)
    start = _MJD0 + np.arange(nints) * int_time / 86400.0
    end = start + int_time / 86400.0
    table["integration_number"] = np.arange(1, nints + 1)
    table["int_start_MJD_UTC"] = start
    table["int_mid_MJD_UTC"] = 0.5 * (start + end)
    table["int_end_MJD_UTC"] = end
    bjd_offset = (69.184 + 312.0) / 86400.0  # TT-UTC plus a fixed barycentric delay
    table["int_start_BJD_TDB"] = start + bjd_offset
    table["int_mid_BJD_TDB"] = 0.5 * (start + end) + bjd_offset
    table["int_end_BJD_TDB"] = end + bjd_offset
    return table


def fill_exposure_meta(model: datamodels.JwstDataModel, cfg: SceneConfig) -> None:
    """Top-level (exposure-wide) metadata."""
    meta = model.meta
    detector, filt, grating = _optics(cfg)
    nints = cfg.nints or 1
    meta.telescope = "JWST"
    meta.date = "2024-01-01T00:00:00.000"
    meta.observation.date = _DATE
    meta.observation.time = _TIME
    meta.observation.program_number = "01234"
    meta.observation.observation_number = "001"
    meta.observation.visit_number = "001"
    meta.instrument.name = cfg.instrument
    meta.instrument.detector = detector
    meta.instrument.filter = filt
    if cfg.instrument == "NIRSPEC":
        meta.instrument.grating = grating
        if (
            cfg.exp_type in ("NRS_FIXEDSLIT", "NRS_BRIGHTOBJ")
            and cfg.slit_name in NIRSPEC_FS_SLITS
        ):
            meta.instrument.fixed_slit = cfg.slit_name
        if cfg.exp_type == "NRS_MSASPEC":
            meta.instrument.msa_metadata_file = "jw01234001001_01_msa.fits"
    exp = meta.exposure
    exp.type = cfg.exp_type
    exp.nints = nints
    exp.integration_start = 1
    exp.integration_end = nints
    exp.ngroups = 20
    exp.nframes = 1
    exp.readpatt = "FASTR1" if cfg.instrument == "MIRI" else "NRSIRS2RAPID"
    exp.integration_time = float(cfg.exptime)
    exp.exposure_time = float(cfg.exptime * nints)
    exp.effective_exposure_time = float(cfg.exptime * nints)
    exp.start_time = _MJD0
    exp.end_time = _MJD0 + cfg.exptime * nints / 86400.0
    exp.mid_time = 0.5 * (exp.start_time + exp.end_time)
    meta.target.catalog_name = "SIMULATED"
    meta.target.proposer_name = "SIMULATED"
    meta.target.ra = RA0
    meta.target.dec = DEC0
    meta.target.source_type = _source_type(cfg)
    meta.dither.dithered_ra = RA0
    meta.dither.dithered_dec = DEC0
    meta.subarray.name = {
        "NRS_FIXEDSLIT": f"SUBS{cfg.slit_name[1:]}"
        if cfg.slit_name in ("S200A1", "S200A2", "S200B1", "S400A1")  # S1600A1 has no subarray of its own
        else "FULL",
        "NRS_BRIGHTOBJ": "SUB2048",
        "MIR_LRS-SLITLESS": "SLITLESSPRISM",
    }.get(cfg.exp_type, "FULL")
    for step in ("assign_wcs", "flat_field", "srctype"):
        setattr(meta.cal_step, step, "COMPLETE")
    if cfg.instrument == "NIRSPEC":
        meta.cal_step.extract_2d = "COMPLETE"
    meta.cal_step.photom = "SKIPPED" if cfg.units == "DN/s" else "COMPLETE"


def fill_slit(
    model: datamodels.JwstDataModel, real: Realisation, slit_attrs: bool = True
) -> None:
    """Arrays, units, photometry and WCS of one slit (or image/cube)."""
    cfg = real.cfg
    model.data = real.data
    model.dq = real.dq
    model.err = real.err
    model.var_poisson = real.var_poisson
    model.var_rnoise = real.var_rnoise
    model.var_flat = real.var_flat
    model.wavelength = real.wavelength
    model.meta.bunit_data = cfg.units
    model.meta.bunit_err = cfg.units
    model.meta.photometry.pixelarea_steradians = float(cfg.pixel_area_sr)
    model.meta.photometry.pixelarea_arcsecsq = float(cfg.pixel_area_sr / _SR_PER_ARCSEC2)
    model.meta.wcsinfo.dispersion_direction = cfg.dispersion_axis
    model.meta.wcsinfo.spectral_order = 1
    ra, dec = real.extras.get("radec", (RA0, DEC0))
    model.meta.wcs = build_wcs(cfg, ra, dec)
    if not slit_attrs:
        return
    nrows, ncols = real.data.shape[-2:]
    model.name = cfg.slit_name
    model.source_id = int(cfg.source_id)
    model.source_name = f"SIM_{cfg.source_id:05d}"
    model.source_alias = f"{cfg.source_id}"
    model.source_type = _source_type(cfg)
    model.stellarity = 1.0 if model.source_type == "POINT" else 0.0
    model.source_ra = float(ra)
    model.source_dec = float(dec)
    model.source_xpos = 0.0
    model.source_ypos = 0.0
    model.xstart = int(real.extras.get("xstart", 1))
    model.ystart = int(real.extras.get("ystart", 1))
    model.xsize = int(ncols)
    model.ysize = int(nrows)
    if cfg.exp_type == "NRS_MSASPEC":
        model.slitlet_id = int(real.extras.get("slitlet_id", cfg.source_id))
        model.shutter_id = int(real.extras.get("shutter_id", 0))
        model.quadrant = int(real.extras.get("quadrant", 1))
        model.shutter_state = "11x"
        model.slit_ymin = -0.55
        model.slit_ymax = 1.55


def new_model(cls: type, real: Realisation, slit_attrs: bool = True) -> datamodels.JwstDataModel:
    """Create and fill a standalone model (exposure + slit metadata)."""
    model = cls()
    fill_exposure_meta(model, real.cfg)
    fill_slit(model, real, slit_attrs=slit_attrs)
    if real.cfg.nints is not None and hasattr(model, "int_times"):
        model.int_times = _int_times(model, real.cfg.nints, real.cfg.exptime)
    return model
