"""OptimalExtractStep's driver: extraction of whole datamodels, joining `io` and `core`.

`run` (also known as `extract_model`) turns any supported input model into
an x1d/x1dints product; `extract_slit` does one slit in canonical arrays.
Steps call these and do nothing else of substance.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field, replace
from typing import NamedTuple

import numpy as np

from .. import core
from ..exceptions import SlitError
from ..core.fitted import ProfileFit, TraceFit
from ..core.pixels import VarianceComponents
from ..io.products import profile_from_entry, trace_from_entry
from .fit import Deferred, bright_first, fit_profile, fit_slit_profile, fit_trace
from ..io import SlitData, Spectrum, flux_units, make_output_model, to_specmodel
from ..io.slits import describe_model, integration_groups, scene_models, slit_count
from ..io.dq import FLUX_ESTIMATED, OUTLIER
from ..io.spectra import white_light_curve, white_light_summary
from .parameters import ExtractionParameters
from .runner import SlitRun, parallel_map, process_slits

__all__ = ["ExtractionParameters", "ExtractionSummary", "extract_model", "extract_slit", "run"]

log = logging.getLogger(__name__)


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
    white_light: list = field(default_factory=list)
    """For integrations: the white-light curve of every slit (`~jwst_optextract.io.spectra.white_light_curve`)."""


class _SlitResult(NamedTuple):
    """What `run` keeps of one extracted slit."""

    spec: object
    """The slit's SpecModel (or the TSO equivalent)."""
    rejected: int
    """Pixels rejected as outliers."""
    integrations: bool
    """Whether the slit has integrations (a 3D input)."""
    scene: tuple[SlitData, np.ndarray] | None
    """With ``keep_scene``: the slit and its scene model ``f P``."""
    exposure_inverse_beta: float | None = None
    """What a bright slit's profile fit says of the exposure's Moffat index (`bright_first`)."""


def run(model, params: ExtractionParameters, traces=None, profiles=None, workers: int = 1):
    """Extract every slit of ``model`` into a MultiSpecModel or TSOMultiSpecModel.

    ``traces`` and ``profiles`` (a TraceModel and a ProfileModel) are used for
    the slits they describe; whatever is not given is fitted. A slit that cannot
    be extracted is skipped with a warning naming it and the reason (see
    `~jwst_optextract.drivers.runner.process_slits`); if it is the only one, or no slit
    can be extracted, an error says why. With ``params.keep_scene`` the summary
    also holds the scene model and the residual image, as copies of the input.
    For integrations, the white-light curve of every slit is logged and kept
    in the summary.

    With ``shared_psf``, ``profile_kind="auto"`` and several slits whose
    profiles are fitted here, the faint slits are fitted and extracted after
    the bright ones, with the Moffat index these show (as
    `~jwst_optextract.drivers.psf.run` does).

    With ``workers > 1`` the slits of a MultiSlitModel are extracted in that
    many worker processes (their SpecModels are made here, from each
    extraction, in slit order); a single slit's groups of integrations are
    extracted in that many threads, instead. The product is the same as with
    one worker.

    Returns
    -------
    output : MultiSpecModel or TSOMultiSpecModel
    summary : ExtractionSummary
    """

    def given(slit: SlitData, deferred) -> tuple[TraceFit | None, ProfileFit | None]:
        trace = _given(traces, "trace_for", trace_from_entry, slit) if deferred is None else deferred[slit.name].trace
        return trace, _given(profiles, "profile_for", profile_from_entry, slit)

    def finish(slit: SlitData, extracted: _Extracted | Deferred) -> _SlitResult | Deferred:
        if isinstance(extracted, Deferred):
            return extracted
        spec = to_specmodel(slit, model, extracted.spectrum, flux_units(model, slit.model))
        return _SlitResult(spec, extracted.rejected, slit.n_integrations is not None,
                           (slit, extracted.spectrum.scene) if params.keep_scene else None,
                           extracted.exposure_inverse_beta)

    def extract_all(run_params: ExtractionParameters, defer_below: float | None, deferred=None) -> SlitRun:
        work = functools.partial(_extract, params=run_params, learn=learn, defer_below=defer_below,
                                 workers=group_workers)
        return process_slits(model, work, workers=workers if several else 1, processes=True,
                             prepare=functools.partial(given, deferred=deferred), finish=finish, only=deferred)

    several = slit_count(model) > 1
    group_workers = 1 if several else workers
    learn = (params.shared_psf and several and profiles is None and params.profile_kind == "auto"
             and (params.extraction_type == "optimal" or params.fill_flagged))
    slits = bright_first(extract_all, params, learn, evidence=lambda result: result.exposure_inverse_beta,
                         described=describe_model(model))
    _, first = slits.done[0]
    output = make_output_model(model, integrations=first.integrations)
    summary = ExtractionSummary(slits)
    for name, result in slits.done:
        output.spec.append(result.spec)
        summary.rejected_pixels += result.rejected
        if result.integrations:
            summary.white_light.append(white_light_curve(result.spec, name))
            log.info("%s", white_light_summary(summary.white_light[-1]))
    if params.keep_scene:
        summary.scene, summary.residual = scene_models(model, [result.scene for _, result in slits.done])
    return output, summary


extract_model = run
"""The name of `run` before the drivers (scripts and tests call it)."""


class _Extracted(NamedTuple):
    """What `_extract` sends back from a worker: everything of a slit's extraction but its SpecModel."""

    spectrum: Spectrum
    rejected: int
    exposure_inverse_beta: float | None


def _extract(slit: SlitData, trace: TraceFit | None, profile: ProfileFit | None, params: ExtractionParameters,
             learn: bool, defer_below: float | None, workers: int) -> _Extracted | Deferred:
    """`run`'s work on one slit, from its arrays alone (it may run in a worker process).

    With ``learn`` the profile is fitted first, and a slit fainter than
    ``defer_below`` waits, with its trace, for the exposure's bright ones
    (`bright_first`).
    """
    if learn:
        trace, profile = fit_slit_profile(slit, trace, params.fit_parameters(), defer_below)
        if profile is None:
            return Deferred(trace)
    spectrum, rejected = extract_slit(slit, params, trace, profile, workers=workers)
    _check_spectrum(slit, spectrum)
    return _Extracted(spectrum, rejected, None if profile is None else profile.exposure_inverse_beta)


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
                 profile: ProfileFit | None = None, workers: int = 1) -> tuple[Spectrum, int]:
    """Extract one slit; returns the spectrum and the number of pixels rejected.

    The trace and profile are fitted when not given (box extraction with fixed
    limits needs neither). Integrations are extracted in groups of
    ``_GROUP_CHUNKS`` kernel chunks (``params.chunk_pixels``), so that no
    profile, weight or temporary array the size of the whole cube is made;
    with ``workers > 1`` the groups run in that many threads. The groups do
    not depend on ``workers``, so neither does the result.
    """
    column_mask = _column_mask(slit, params)
    use = np.isfinite(slit.wavelength) & column_mask
    fixed = _fixed_aperture(slit, params) if params.extraction_type == "box" else None
    needs_profile = params.extraction_type == "optimal" or params.fill_flagged
    if fixed is None or needs_profile:
        fit = params.fit_parameters()
        trace = trace or fit_trace(slit, fit)
        profile = profile or (fit_profile(slit, trace, fit) if needs_profile else None)
    lower, upper = fixed if fixed is not None else core.trace_aperture(trace.centers(), params.extract_width)
    weights = _Weights(slit.ny, use, trace, profile, lower, upper, is_box=params.extraction_type == "box")
    extract = _extract_optimal if params.extraction_type == "optimal" else _extract_box
    if params.extraction_type == "optimal" and slit.n_integrations and params.background.fitted:
        extract = functools.partial(_extract_optimal, sky=_constant_background(slit, weights, params))

    per_chunk = max(1, params.chunk_pixels // (slit.ny * slit.nx))
    groups = integration_groups(slit.data.shape, params.chunk_pixels * _GROUP_CHUNKS, multiple=per_chunk)
    parts = []
    for part in parallel_map(lambda index: extract(slit.integrations(index), weights.profile_for(index),
                                                   weights.box_for(index), params), groups, workers):
        parts.append(part)
        _report_progress(slit, parts, groups)
    spectrum, n_rejected = _join(parts, params.extraction_type, slit)
    if params.extraction_type == "optimal":
        spectrum.flux = np.where(column_mask[0], spectrum.flux, np.nan)
    spectrum.aperture = (float(np.mean(lower)), float(np.mean(upper)))
    if n_rejected:
        log.info("Slit %s: %d outlier pixels rejected", slit.name, n_rejected)
    filled = sum(part.filled for part in parts)
    if filled:
        log.info("Slit %s: %d flagged pixels in the box filled from the profile", slit.name, filled)
    return spectrum, n_rejected


_GROUP_CHUNKS = 4
"""Kernel chunks (``chunk_pixels``) per group of integrations: groups are extracted (and run in threads) whole."""


@dataclass
class _Weights:
    """The profile and the box weights of a slit, for any group of its integrations."""

    ny: int
    use: np.ndarray
    trace: TraceFit | None
    profile: ProfileFit | None
    lower: np.ndarray | float
    upper: np.ndarray | float
    is_box: bool

    def __post_init__(self):
        # shared by every group unless they follow per-integration trace shifts
        shifted = self.trace is not None and self.trace.shifts.size > 0
        self._profile = None if self.profile is None or shifted else self._masked_profile(self.trace)
        self._box = self._box_weights(slice(None)) if self.is_box and np.ndim(self.lower) < 2 else None

    def profile_for(self, index: slice) -> np.ndarray | None:
        """``(ny, nx)``, or ``(n, ny, nx)`` for the integrations ``index`` when the trace shifts."""
        if self.profile is None or self._profile is not None:
            return self._profile
        return self._masked_profile(replace(self.trace, shifts=self.trace.shifts[index]))

    def mean_profile(self) -> np.ndarray | None:
        """``(ny, nx)``: the mean over all integrations of `profile_for` (computed without the cube)."""
        if self.profile is None or self._profile is not None:
            return self._profile
        return np.where(self.use, self.profile.mean_for_trace(self.ny, self.trace), 0.0)

    def box_for(self, index: slice) -> np.ndarray | None:
        """Box aperture weights, ``(ny, nx)`` or ``(n, ny, nx)`` for a trace that shifts."""
        if not self.is_box or self._box is not None:
            return self._box
        return self._box_weights(index)

    def _masked_profile(self, trace: TraceFit) -> np.ndarray:
        return np.where(self.use, self.profile.for_trace(self.ny, trace), 0.0)

    def _box_weights(self, index: slice) -> np.ndarray:
        lower, upper = (np.asarray(limit)[index] if np.ndim(limit) == 2 else limit
                        for limit in (self.lower, self.upper))
        return core.aperture_weights(self.ny, lower, upper) * self.use


@dataclass
class _Part(VarianceComponents):
    """The extraction of one group of integrations (per-column arrays ``(..., nx)``)."""

    flux: np.ndarray
    var_poisson: np.ndarray
    var_rnoise: np.ndarray
    var_flat: np.ndarray
    npixels: np.ndarray
    n_rejected: np.ndarray
    weight_sum: np.ndarray
    """Sum over the group's integrations of the weights (profile or box), for the wavelength of each column."""
    count: int
    """Number of integrations (1 for a single frame)."""
    filled: int = 0
    scene: np.ndarray | None = None
    measured: np.ndarray | None = None
    """Share of each column's extraction on pixels it used, where the rest is the profile model's (see
    `MEASURED_AT_LEAST`); None where nothing is the model's (a box that leaves flagged pixels out)."""


MEASURED_AT_LEAST = 0.9
"""A column whose flux comes less than this share from pixels it used (the rest from the profile model, on
flagged or rejected pixels: the optimal extraction's profile coverage, or the share of the source's light in
the box on pixels it filled with ``fill_flagged``) gets FLUX_ESTIMATED in the x1d's DQ. One core pixel of a
source of sigma 1 px holds 24-38 % of its profile, one beyond 2 sigma less than 5 %."""


def _constant_background(slit: SlitData, weights: _Weights, params: ExtractionParameters) -> np.ndarray:
    """The scene background of the mean over the integrations: one background for the whole time series.

    A background fitted to every integration alone is smooth across the
    columns, so its noise is common to all of them: the white-light curve
    would scatter by many times the photon noise. The background is taken as
    constant in time instead, fitted with the source to the mean image.
    """
    mean = slit.mean_image()
    P = weights.mean_profile()
    total = P.sum(axis=0)
    shape = np.divide(P, total, out=np.zeros_like(P), where=total != 0)
    scene = params.background.fit(mean.image, shape, mean.var_rnoise, mean.var_poisson, mask=mean.good,
                                  reject_sigma=params.reject_sigma, min_coverage=0.0)
    log.info("Slit %s: one background for all %d integrations, fitted with the source to their mean",
             slit.name, slit.n_integrations)
    return scene.background.astype(slit.data.dtype)


def _extract_optimal(slit: SlitData, P: np.ndarray, _, params: ExtractionParameters,
                     sky: np.ndarray | None = None) -> _Part:
    settings = dict(mask=slit.good, reject_sigma=params.reject_sigma,
                    max_reject_iterations=params.max_reject_iterations, min_coverage=params.min_coverage,
                    chunk_pixels=params.chunk_pixels)
    total = P.sum(axis=-2, keepdims=True)
    shape = np.divide(P, total, out=np.zeros_like(P), where=total != 0)
    if sky is not None:  # integrations: the background is one for all of them (`_constant_background`)
        result = core.optimal_extract(slit.data - sky, P, slit.read_noise, slit.var_poisson, slit.var_flat,
                                      **settings)
        result.background = np.broadcast_to(sky, slit.data.shape)
    elif params.background.fitted:
        result = params.background.fit(slit.data, shape, slit.read_noise, slit.var_poisson, slit.var_flat,
                                       **settings)
    else:
        result = core.optimal_extract(slit.data, P, slit.read_noise, slit.var_poisson, slit.var_flat, **settings)
    scene = None
    if params.keep_scene:
        scene = np.nan_to_num(result.flux)[..., None, :] * shape + getattr(result, "background", 0.0)
    return _Part(result.flux, result.var_poisson, result.var_rnoise, result.var_flat, result.npixels,
                 result.n_rejected, *_weight_sum(P, slit), scene=scene, measured=result.coverage)


def _extract_box(slit: SlitData, P: np.ndarray | None, weights: np.ndarray, params: ExtractionParameters) -> _Part:
    fill = {}
    if params.fill_flagged:
        first = core.optimal_extract(slit.data, P, slit.read_noise, slit.var_poisson, slit.var_flat,
                                     mask=slit.good, reject_sigma=None, chunk_pixels=params.chunk_pixels)
        fill = {"fill_profile": P, "fill_flux": np.nan_to_num(first.flux)}
    result = core.box_extract(
        slit.data, weights, slit.read_noise, slit.var_poisson, slit.var_flat, mask=slit.good, **fill
    )
    scene = None
    if params.keep_scene:  # as jwst: the mean over the aperture, spread over it
        mean_level = np.divide(result.flux, result.npixels, out=np.zeros_like(result.flux),
                               where=result.npixels > 0)
        scene = np.nan_to_num(mean_level)[..., None, :] * weights
    measured = None
    if params.fill_flagged:
        source = weights * P  # the box's share of the source's light, pixel by pixel
        used = np.where(slit.good, source, 0.0).sum(axis=-2)
        total = np.broadcast_to(source.sum(axis=-2), used.shape)
        measured = np.divide(used, total, out=np.ones(used.shape), where=total > 0)
    return _Part(result.flux, result.var_poisson, result.var_rnoise, result.var_flat, result.npixels,
                 np.zeros(result.flux.shape, np.int32), *_weight_sum(weights, slit),
                 filled=int(result.filled.sum()), scene=scene, measured=measured)


def _weight_sum(weights: np.ndarray, slit: SlitData) -> tuple[np.ndarray, int]:
    """Weights summed over the integrations of a group, and their number."""
    count = slit.n_integrations or 1
    if weights.ndim == 2:
        return weights * count, count
    return weights.sum(axis=0, dtype=np.float64), count


def _join(parts: list[_Part], extraction_type: str, slit: SlitData) -> tuple[Spectrum, int]:
    """One spectrum from the extractions of consecutive groups of integrations."""

    def joined(key):
        values = [getattr(part, key) for part in parts]
        return values[0] if len(values) == 1 else np.concatenate(values, axis=0)

    n_rejected = joined("n_rejected")
    flux = joined("flux")
    dq = np.where(n_rejected > 0, OUTLIER, 0).astype(np.uint32)
    if parts[0].measured is not None:
        dq[np.isfinite(flux) & (joined("measured") < MEASURED_AT_LEAST)] |= FLUX_ESTIMATED
    mean_weights = sum(part.weight_sum for part in parts) / sum(part.count for part in parts)
    spectrum = Spectrum(
        wavelength=_weighted_wavelength(slit.wavelength, mean_weights),
        flux=flux, var_poisson=joined("var_poisson"), var_rnoise=joined("var_rnoise"),
        var_flat=joined("var_flat"), npixels=joined("npixels"),
        dq=dq, extraction_type=extraction_type,
    )
    if parts[0].scene is not None:
        spectrum.scene = joined("scene")
    return spectrum, int(n_rejected.sum())


def _report_progress(slit: SlitData, parts: list[_Part], groups: list[slice]) -> None:
    """Log each quarter of a long (many-group) extraction, so that long runs show progress."""
    done, total = len(parts), len(groups)
    quarter = -(-total // 4)
    if total >= 8 and (done % quarter == 0 or done == total):
        log.info("Slit %s: %d of %d integrations extracted", slit.name, groups[done - 1].stop,
                 groups[-1].stop)


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
