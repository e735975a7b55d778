"""Extraction of whole datamodels: the glue between `io` and `core`.

`extract_model` turns any supported input model into an x1d/x1dints product;
`extract_slit` does one slit in canonical arrays. Steps call these and do
nothing else of substance.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from stdatamodels.jwst import datamodels

from . import core
from .exceptions import SlitError
from .fitting import FitParameters, ProfileFit, TraceFit, fit_profile, fit_trace, profile_from_entry, trace_from_entry
from .io import SlitData, Spectrum, flux_units, iter_slits, make_output_model, process_slits, to_specmodel
from .io.slits import SlitRun, write_slit
from .io.spectra import OUTLIER

__all__ = ["ExtractionParameters", "ExtractionSummary", "extract_model", "extract_slit"]

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
    profile_kind: str = "gaussian"
    chunk_pixels: int = 1 << 19
    keep_scene: bool = False

    def fit_parameters(self) -> FitParameters:
        """The trace and profile fit settings these imply."""
        return FitParameters(trace_degree=self.trace_degree, width_degree=self.width_degree,
                             psf_sigma=self.psf_sigma, kind=self.profile_kind,
                             reject_sigma=self.reject_sigma or 5.0)


@dataclass
class ExtractionSummary:
    """What happened to each slit of one input."""

    run: SlitRun
    """Which slits were extracted and which skipped, and why."""
    rejected_pixels: int = 0
    scene: object = None
    """With ``keep_scene``: a copy of the input holding the model of the data (``f P``)."""
    residual: object = None
    """With ``keep_scene``: a copy of the input holding data minus that model."""


def extract_model(model, params: ExtractionParameters, traces=None, profiles=None):
    """Extract every slit of ``model`` into a MultiSpecModel or TSOMultiSpecModel.

    ``traces`` and ``profiles`` (a TraceModel and a ProfileModel) are used for
    the slits they describe; whatever is not given is fitted. A slit that cannot
    be extracted is skipped with a warning naming it and the reason (see
    `~jwst_optextract.io.process_slits`); if it is the only one, or no slit
    can be extracted, an error says why. With ``params.keep_scene`` the summary
    also holds the scene model and the residual image, as copies of the input.

    Returns
    -------
    output : MultiSpecModel or TSOMultiSpecModel
    summary : ExtractionSummary
    """

    def work(slit: SlitData):
        trace = _given(traces, "trace_for", trace_from_entry, slit)
        profile = _given(profiles, "profile_for", profile_from_entry, slit)
        spectrum, rejected = extract_slit(slit, params, trace, profile)
        _check_spectrum(slit, spectrum)
        spec = to_specmodel(slit, model, spectrum, flux_units(model, slit.model))
        return spec, rejected, slit.n_integrations is not None, (slit, spectrum.scene) if params.keep_scene else None

    run = process_slits(model, work)
    output = make_output_model(model, integrations=run.done[0][1][2])
    summary = ExtractionSummary(run)
    for _, (spec, rejected, _, _) in run.done:
        output.spec.append(spec)
        summary.rejected_pixels += rejected
    if params.keep_scene:
        summary.scene, summary.residual = _scene_models(model, [item[3] for _, item in run.done])
    return output, summary


def _scene_models(model, scenes):
    """Copies of ``model`` holding the scene model and the residual of every extracted slit."""
    scene, residual = model.copy(), model.copy()
    slots = {name: index for index, (name, _) in enumerate(iter_slits(model))}
    for slit, values in scenes:
        index = slots[slit.name]
        for target, array in ((scene, values), (residual, np.where(slit.good, slit.data - values, np.nan))):
            node = target.slits[index] if isinstance(target, datamodels.MultiSlitModel) else target
            write_slit(slit, node, data=np.asarray(array, dtype=np.float32))
    return scene, residual


def _check_spectrum(slit: SlitData, spectrum: Spectrum) -> None:
    """A spectrum with no finite value is an error; integrations with none are named in a warning."""
    finite = np.isfinite(spectrum.flux) & np.isfinite(spectrum.wavelength)
    if not finite.any():
        raise SlitError(slit.name, "no column could be extracted (every column has too little of the profile on "
                        "good pixels, or no wavelength); check the trace, the aperture limits and min_coverage")
    empty = np.flatnonzero(~finite.any(axis=-1)) + 1 if finite.ndim == 2 else []
    if len(empty):
        log.warning("Slit %s: integration(s) %s have no usable pixel; their spectra are NaN and flagged "
                    "DO_NOT_USE", slit.name, ", ".join(map(str, empty)))


def extract_slit(slit: SlitData, params: ExtractionParameters, trace: TraceFit | None = None,
                 profile: ProfileFit | None = None) -> tuple[Spectrum, int]:
    """Extract one slit; returns the spectrum and the number of pixels rejected.

    The trace and profile are fitted when not given (box extraction with fixed
    limits needs neither).
    """
    column_mask = _column_mask(slit, params)
    wl_ok = np.isfinite(slit.wavelength)
    fixed = _fixed_aperture(slit, params) if params.extraction_type == "box" else None
    needs_profile = params.extraction_type == "optimal" or params.fill_flagged
    if fixed is None or needs_profile:
        fit = params.fit_parameters()
        trace = trace or fit_trace(slit, fit)
        profile = profile or (fit_profile(slit, trace, fit) if needs_profile else None)
    lower, upper = fixed if fixed is not None else core.trace_aperture(trace.centers(), params.extract_width)
    P = None if profile is None else np.where(wl_ok & column_mask, profile.for_trace(slit.ny, trace), 0.0)

    if params.extraction_type == "optimal":
        result = core.optimal_extract(
            slit.data, P, slit.read_noise, slit.var_poisson, slit.var_flat, mask=slit.good,
            reject_sigma=params.reject_sigma, max_reject_iterations=params.max_reject_iterations,
            min_coverage=params.min_coverage, chunk_pixels=params.chunk_pixels,
        )
        flux = np.where(column_mask[0], result.flux, np.nan)
        dq = np.where(result.n_rejected > 0, OUTLIER, 0).astype(np.uint32)
        n_rejected = int(result.n_rejected.sum())
        if n_rejected:
            log.info("Slit %s: %d outlier pixels rejected", slit.name, n_rejected)
        spectrum = Spectrum(
            wavelength=_weighted_wavelength(slit.wavelength, P if P.ndim == 2 else P.mean(axis=0)),
            flux=flux, var_poisson=result.var_poisson,
            var_rnoise=result.var_rnoise, var_flat=result.var_flat, npixels=result.npixels,
            dq=dq, extraction_type="optimal",
            aperture=(float(np.mean(lower)), float(np.mean(upper))),
        )
        if params.keep_scene:
            total = P.sum(axis=-2, keepdims=True)
            shape = np.divide(P, total, out=np.zeros_like(P), where=total != 0)
            spectrum.scene = np.nan_to_num(result.flux)[..., None, :] * shape
        return spectrum, n_rejected

    weights = core.aperture_weights(slit.ny, lower, upper) * (wl_ok & column_mask)
    fill = {}
    if params.fill_flagged:
        first = core.optimal_extract(slit.data, P, slit.read_noise, slit.var_poisson, slit.var_flat,
                                     mask=slit.good, reject_sigma=None, chunk_pixels=params.chunk_pixels)
        fill = {"fill_profile": P, "fill_flux": np.nan_to_num(first.flux)}
    result = core.box_extract(
        slit.data, weights, slit.read_noise, slit.var_poisson, slit.var_flat, mask=slit.good, **fill
    )
    if fill and result.filled.any():
        log.info("Slit %s: %d flagged pixels in the box filled from the profile", slit.name, result.filled.sum())
    flux = result.flux
    mean_weights = weights if weights.ndim == 2 else weights.mean(axis=0)
    spectrum = Spectrum(
        wavelength=_weighted_wavelength(slit.wavelength, mean_weights),
        flux=flux, var_poisson=result.var_poisson, var_rnoise=result.var_rnoise,
        var_flat=result.var_flat, npixels=result.npixels,
        dq=np.zeros(flux.shape, np.uint32), extraction_type="box",
        aperture=(float(np.mean(lower)), float(np.mean(upper))),
    )
    if params.keep_scene:  # as jwst: the mean over the aperture, spread over it
        mean_level = np.divide(result.flux, result.npixels, out=np.zeros_like(result.flux), where=result.npixels > 0)
        spectrum.scene = np.nan_to_num(mean_level)[..., None, :] * weights
    return spectrum, 0


def _given(product, lookup: str, convert, slit: SlitData):
    """The product's entry for this slit, converted; None without a product."""
    if product is None:
        return None
    entry = getattr(product, lookup)(slit.name)
    if entry is None:
        raise SlitError(slit.name, f"the given {type(product).__name__} has no entry for this slit; give the "
                        "product made from this exposure, or none to fit it")
    return convert(entry, slit)


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
