"""Extraction of whole datamodels: the glue between `io` and `core`.

`extract_model` turns any supported input model into an x1d/x1dints product;
`extract_slit` does one slit in canonical arrays. Steps call these and do
nothing else of substance.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
from stdatamodels.jwst import datamodels

from . import core
from .exceptions import SlitError
from .io import SlitData, Spectrum, flux_units, iter_slits, make_output_model, read_slit, to_specmodel
from .io.spectra import OUTLIER

__all__ = ["ExtractionParameters", "ExtractionSummary", "extract_model", "extract_slit", "fit_trace_profile"]

log = logging.getLogger(__name__)


@dataclass
class ExtractionParameters:
    """Everything that controls an extraction (see `OptimalExtractStep` for meanings)."""

    extraction_type: str = "optimal"
    extract_width: float = 5.0
    ystart: float | None = None
    ystop: float | None = None
    xstart: float | None = None
    xstop: float | None = None
    fill_flagged: bool = False
    reject_sigma: float | None = 5.0
    max_reject_iterations: int = 10
    min_coverage: float = 0.3
    trace_degree: int = 3
    width_degree: int = 2
    psf_sigma: float = 1.0
    chunk_pixels: int = 1 << 19


@dataclass
class ExtractionSummary:
    """What happened to each slit of one input."""

    extracted: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    rejected_pixels: int = 0


def extract_model(model, params: ExtractionParameters):
    """Extract every slit of ``model`` into a MultiSpecModel or TSOMultiSpecModel.

    A slit that cannot be extracted is skipped with a warning naming it and the
    reason; if no slit can be extracted, the error of the last one is raised.

    Returns
    -------
    output : MultiSpecModel or TSOMultiSpecModel
    summary : ExtractionSummary
    """
    summary = ExtractionSummary()
    slits = list(iter_slits(model))
    output = None
    last_error: SlitError | None = None
    for name, slit_model in slits:
        try:
            slit = read_slit(slit_model, model, name)
            spectrum, rejected = extract_slit(slit, params)
            if output is None:
                output = make_output_model(model, integrations=slit.n_integrations is not None)
            output.spec.append(to_specmodel(slit, model, spectrum, flux_units(model, slit_model)))
        except SlitError as error:
            if len(slits) == 1:
                raise
            log.warning("Skipping %s", error)
            summary.skipped[name] = error.problem
            last_error = error
            continue
        summary.extracted.append(name)
        summary.rejected_pixels += rejected
    if output is None:
        raise last_error
    log.info(
        "Extracted %d of %d slits (%s)%s",
        len(summary.extracted), len(slits), params.extraction_type,
        f"; skipped: {', '.join(summary.skipped)}" if summary.skipped else "",
    )
    return output, summary


def fit_trace_profile(slit: SlitData, params: ExtractionParameters) -> core.GaussianProfile:
    """Trace and Gaussian profile of a slit, fitted to its data.

    Faint or short spectra may not constrain a width that varies along the
    dispersion: the fit is then repeated with a constant width, and with a
    straight trace, before it falls back to the trace estimate (from the WCS
    position or the slit's brightest row) and the prior width.
    """
    image, good = core.trace.collapse_integrations(slit.data, slit.good)
    guess = slit.source_row if slit.source_row is not None and 0 <= slit.source_row < slit.ny else None
    trace = core.find_trace(image, good, guess=guess, degree=params.trace_degree)
    ladder = [(params.trace_degree, params.width_degree), (params.trace_degree, 0), (min(params.trace_degree, 1), 0)]
    for trace_degree, width_degree in dict.fromkeys(ladder):
        profile = core.fit_gaussian_profile(
            slit.data, slit.good, _variance(slit), slit.var_poisson, trace,
            sigma_guess=params.psf_sigma, center_degree=trace_degree, sigma_degree=width_degree,
        )
        if _plausible(profile, params.psf_sigma):
            break
        log.info("Slit %s: profile fit with trace degree %d and width degree %d is implausible",
                 slit.name, trace_degree, width_degree)
    else:
        log.warning(
            "Slit %s: the Gaussian profile fit failed (no clear source?); using the trace "
            "estimate and the prior width %.2f px", slit.name, params.psf_sigma,
        )
        coeffs = np.polynomial.legendre.legfit(np.linspace(-1, 1, slit.nx), trace, params.trace_degree)
        profile = core.GaussianProfile(coeffs, np.array([params.psf_sigma]), slit.nx, slit.ny)
    log.info(
        "Slit %s: trace at row %.2f (%.2f to %.2f), Gaussian sigma %.2f to %.2f px",
        slit.name, np.mean(profile.center), profile.center.min(), profile.center.max(),
        profile.sigma.min(), profile.sigma.max(),
    )
    return profile


def _plausible(profile: core.GaussianProfile, prior_sigma: float) -> bool:
    """Centre inside the slit, width positive, not far from the prior and not wildly varying."""
    center, sigma = profile.center, profile.sigma
    if not (np.all(np.isfinite(center)) and np.all(np.isfinite(sigma))):
        return False
    return bool(
        np.all((center > -0.5) & (center < profile.ny - 0.5))
        and sigma.min() > 0.3
        and sigma.max() < min(profile.ny / 4, 5 * prior_sigma)
        and sigma.max() < 3 * sigma.min()
    )


def extract_slit(slit: SlitData, params: ExtractionParameters) -> tuple[Spectrum, int]:
    """Extract one slit; returns the spectrum and the number of pixels rejected."""
    column_mask = _column_mask(slit, params)
    wl_ok = np.isfinite(slit.wavelength)
    if params.extraction_type == "box" and _fixed_aperture(slit, params) is not None:
        lower, upper = _fixed_aperture(slit, params)
        profile_model = None
    else:
        profile_model = fit_trace_profile(slit, params)
        lower, upper = core.trace_aperture(profile_model.center, params.extract_width)

    if params.extraction_type == "optimal":
        P = np.where(wl_ok & column_mask, profile_model.evaluate(), 0.0)
        result = core.optimal_extract(
            slit.data, P, _variance(slit), slit.var_poisson, slit.var_flat, mask=slit.good,
            reject_sigma=params.reject_sigma, max_reject_iterations=params.max_reject_iterations,
            min_coverage=params.min_coverage, chunk_pixels=params.chunk_pixels,
        )
        valid_columns = column_mask.any(axis=0)
        flux = np.where(valid_columns, result.flux, np.nan)
        dq = np.where(result.n_rejected > 0, OUTLIER, 0).astype(np.uint32)
        wavelength = _weighted_wavelength(slit.wavelength, P)
        n_rejected = int(result.n_rejected.sum())
        if n_rejected:
            log.info("Slit %s: %d outlier pixels rejected", slit.name, n_rejected)
        spectrum = Spectrum(
            wavelength=wavelength, flux=flux, var_poisson=result.var_poisson,
            var_rnoise=result.var_rnoise, var_flat=result.var_flat, npixels=result.npixels,
            dq=dq, extraction_type="optimal",
            aperture=(float(np.mean(lower)), float(np.mean(upper))),
        )
        return spectrum, n_rejected

    weights = core.aperture_weights(slit.ny, lower, upper) * (wl_ok & column_mask)
    fill = {}
    if params.fill_flagged:
        model = profile_model or fit_trace_profile(slit, params)
        P = model.evaluate()
        first = core.optimal_extract(slit.data, P, _variance(slit), slit.var_poisson, slit.var_flat,
                                     mask=slit.good, reject_sigma=None, chunk_pixels=params.chunk_pixels)
        fill = {"fill_profile": P, "fill_flux": np.nan_to_num(first.flux)}
    result = core.box_extract(
        slit.data, weights, _variance(slit), slit.var_poisson, slit.var_flat, mask=slit.good, **fill
    )
    if fill and result.filled.any():
        log.info("Slit %s: %d flagged pixels in the box filled from the profile", slit.name, result.filled.sum())
    flux = np.where(result.npixels > 0, result.flux, np.nan)
    spectrum = Spectrum(
        wavelength=_weighted_wavelength(slit.wavelength, weights),
        flux=flux, var_poisson=result.var_poisson, var_rnoise=result.var_rnoise,
        var_flat=result.var_flat, npixels=result.npixels,
        dq=np.zeros(flux.shape, np.uint32), extraction_type="box",
        aperture=(float(np.mean(lower)), float(np.mean(upper))),
    )
    return spectrum, 0


def _variance(slit: SlitData) -> np.ndarray:
    """The read-noise variance, or zeros when only a Poisson variance exists."""
    if slit.var_rnoise is not None:
        return slit.var_rnoise
    return np.zeros(slit.data.shape[-2:], dtype=slit.data.dtype)


def _fixed_aperture(slit: SlitData, params: ExtractionParameters):
    """Inclusive cross-dispersion limits given as parameters, or None."""
    start, stop = (params.ystart, params.ystop) if slit.dispaxis == 1 else (params.xstart, params.xstop)
    if start is None and stop is None:
        return None
    start = 0.0 if start is None else start - slit.origin[0]
    stop = slit.ny - 1.0 if stop is None else stop - slit.origin[0]
    if stop < start:
        raise SlitError(slit.name, f"the aperture is empty (start {start} > stop {stop})")
    return start, stop


def _column_mask(slit: SlitData, params: ExtractionParameters) -> np.ndarray:
    """``(1, nx)`` mask of the columns inside the dispersion-direction limits."""
    start, stop = (params.xstart, params.xstop) if slit.dispaxis == 1 else (params.ystart, params.ystop)
    cols = np.arange(slit.nx) + slit.origin[1]
    keep = np.ones(slit.nx, bool)
    if start is not None:
        keep &= cols >= np.ceil(start)
    if stop is not None:
        keep &= cols <= np.floor(stop)
    if not keep.any():
        raise SlitError(slit.name, f"no column lies between the dispersion limits {start} and {stop}")
    return keep[None, :]


def _weighted_wavelength(wavelength: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weight-averaged wavelength of each column (NaN where no weight)."""
    w = np.where(np.isfinite(wavelength) & (weights > 0), weights, 0.0)
    total = w.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, np.sum(w * np.nan_to_num(wavelength), axis=0) / total, np.nan)
