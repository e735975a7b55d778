"""Trace and profile fitting of one slit: the glue between `io` and `core`.

One implementation serves TraceStep, PsfFitStep, OptimalExtractStep (which
fits what it is not given) and SlitCombineStep; `jwst_optextract.drivers.trace`
and `jwst_optextract.drivers.psf` run it over the slits of an input.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from .. import core
from ..core.fitted import ProfileFit, TraceFit
from ..core.profiles import (
    PROFILES, MoffatProfile, ProfileProblem, ProfileTemplate, SplineProfile,
)
from ..core.profiles.base import amplitudes
from ..core.profiles.choice import (
    EXPOSURE_MIN_SNR, MOFFAT_GATE_SNR, akaike, beyond_noise, chi2_per_pixel, median_column_snr, parsimonious,
    supported_shapes, wing_prior_cost,
)
from ..core.psf_prior import EXPOSURE_MIN_SOURCES, GAUSSIAN_INVERSE_BETA, exposure_prior
from ..core.profiles.spline import coherent_gain
from ..core.scene import SceneBackground
from ..core.trace import negative_traces, trace_shifts
from ..exceptions import SlitError
from ..io import SlitData
from ..io.slits import MeanImage
from .parameters import FitParameters
from .runner import SlitRun
from ..io.products import read_template

__all__ = ["PROFILE_KINDS", "TRACE_MODELS", "Deferred", "bright_first", "fit_profile", "fit_slit_profile", "fit_trace"]

log = logging.getLogger(__name__)

PROFILE_KINDS = PROFILES.names
"""The profile kinds packaged (``auto`` chooses among them); `PROFILES` also holds any registered since."""
TRACE_MODELS = ("polynomial", "spline")


@dataclass
class Deferred:
    """A slit left for the second pass of `bright_first`, with its trace (fitted once)."""

    trace: TraceFit


def bright_first(process: Callable[[Any, float | None, Mapping[str, Deferred] | None], SlitRun], params,
                 learn: bool, evidence: Callable[[Any], float | None], described: str) -> SlitRun:
    """Process an exposure's slits, the faint ones after its bright ones have taught them the Moffat index.

    ``process(params, defer_below, deferred)`` runs the slits with ``params``
    (`FitParameters` or `~jwst_optextract.drivers.parameters.ExtractionParameters`:
    anything with a ``psf_prior``): all of them, deferring those of a median
    S/N per column below ``defer_below`` (their value a `Deferred`; see
    `fit_profile`), or, given ``deferred``, only those, about their traces.
    With ``learn`` and a prior, the slits of at least `EXPOSURE_MIN_SNR` go
    first; ``evidence(value)`` gives each one's ``exposure_inverse_beta``,
    from which `~jwst_optextract.core.psf_prior.exposure_prior` learns the
    prior the deferred slits are then processed with. Returns the run of all
    of them, in slit order (``described`` names the input in the error when
    none is left).
    """
    learn = learn and params.psf_prior is not None
    slits = process(params, EXPOSURE_MIN_SNR if learn else None, None)
    deferred = {name: value for name, value in slits.done if isinstance(value, Deferred)}
    if not deferred:
        return slits
    values = [evidence(value) for _, value in slits.done if not isinstance(value, Deferred)]
    values = [value for value in values if value is not None]
    instrument = params.psf_prior
    prior = exposure_prior(instrument, values)
    if prior.sources:
        log.info("Moffat index of the exposure's point sources, from %d slits of median S/N per column >= %g: "
                 "beta %.2f (1/beta %.3f +- %.3f; the %s prior: 1/beta %.3f +- %.3f); the %d fainter slits are "
                 "fitted with it", prior.sources, EXPOSURE_MIN_SNR, prior.beta, prior.inverse_beta,
                 prior.inverse_beta_sd, instrument.source, instrument.inverse_beta, instrument.inverse_beta_sd,
                 len(deferred))
    else:
        log.info("%d slits of median S/N per column >= %g: too few to learn the exposure's Moffat index (at least "
                 "%d); the %d fainter slits are fitted with the %s prior", len(values), EXPOSURE_MIN_SNR,
                 EXPOSURE_MIN_SOURCES, len(deferred), instrument.source)
    slits.merge(process(replace(params, psf_prior=prior), None, deferred), described)
    return slits


def fit_trace(slit: SlitData, params: FitParameters) -> TraceFit:
    """Trace of a slit: a joint Gaussian fit of centre and width, per-integration shifts, negative traces.

    Negative traces (nod-subtracted data) are located after a first fit and
    masked for a second one, so that their wings do not pull the trace.
    """
    gaussian, detected = _fit_gaussian(slit, params)
    trace = TraceFit(slit.name, gaussian.center, detected=detected, gaussian=gaussian, method=_trace_method(params))
    mean = slit.mean_image()
    if detected:  # the fluxes of the fit are the matched filter that finds the negative images
        trace.negative_offsets = negative_traces(mean.image, mean.good, trace.center, gaussian.shape_fit.flux,
                                                 mean.variances.total())
    if trace.negative_offsets.size:
        log.info("Slit %s: negative traces at %s pixels from the trace; refitting without them", slit.name,
                 ", ".join(f"{o:+.0f}" for o in trace.negative_offsets))
        keep = ~_negative_trace_mask(slit.ny, trace, gaussian)
        gaussian, detected = _fit_gaussian(slit, params, start=trace.center, mask=keep)
        trace.center, trace.detected, trace.gaussian = gaussian.center, detected, gaussian
    if slit.n_integrations and slit.n_integrations > 1 and params.fit_jitter and trace.detected:
        profile = ProfileFit(slit.name, "gaussian", trace.center, trace.gaussian)
        P0 = profile.evaluate(slit.ny)
        dP, d2P = profile.derivatives(slit.ny, trace.center)
        spectrum = core.optimal_extract(mean.image, P0, mean.var_rnoise, mean.var_poisson, mask=mean.good,
                                        return_inverse_variance=True)
        weights = spectrum.inverse_variance / slit.n_integrations  # one integration's
        trace.shifts = trace_shifts(slit.data, slit.good, weights, np.nan_to_num(spectrum.flux), P0, dP, d2P)
        log.info("Slit %s: per-integration trace shifts, rms %.4f px, range %.4f to %.4f",
                 slit.name, trace.shifts.std(), trace.shifts.min(), trace.shifts.max())
    return trace


def fit_slit_profile(slit: SlitData, given: TraceFit | None, params: FitParameters,
                     defer_below: float | None = None) -> tuple[TraceFit, ProfileFit | None]:
    """The trace (``given``, else fitted) and the profile of one slit: `PsfFitStep`'s work on one slit.

    The profile is None when deferred (see `fit_profile`).
    """
    trace = fit_trace(slit, params) if given is None else given
    return trace, fit_profile(slit, trace, params, defer_below)


def fit_profile(slit: SlitData, trace: TraceFit, params: FitParameters,
                defer_below: float | None = None) -> ProfileFit | None:
    """Profile of a slit about its trace, of the kind asked for.

    ``auto`` compares, by Akaike's criterion (chi-square plus twice the
    effective number of parameters), the Gaussian, and where the median
    signal to noise per column supports them (see
    `~jwst_optextract.core.profiles.choice.supported_shapes`) the
    Moffat, a pair of blended sources, a spline whose shape varies linearly
    across the whole slit and a spline with knots every ``window`` columns,
    and the template when one is given: a faint spectrum supports only the
    simpler shapes. Any other
    registered kind (see `~jwst_optextract.core.profiles`) is fitted when asked for.

    A slit of median S/N per column of at least `EXPOSURE_MIN_SNR` records
    on the profile returned what its data say of the Moffat index
    (``exposure_inverse_beta``). With ``defer_below``, ``auto`` returns None
    for a detected source fainter than that S/N, without fitting it: its
    exposure's bright sources are to teach its prior first (`bright_first`).
    With a prior learnt from the exposure, the choice weighs it
    (`wing_prior_cost`).
    """
    if params.profile_kind != "auto" and params.profile_kind not in PROFILES:
        raise SlitError(slit.name, f"unknown profile kind {params.profile_kind!r}; use one of {PROFILES.names}")
    gaussian = trace.gaussian
    if gaussian is None:
        gaussian, _ = _fit_gaussian(slit, params, start=trace.center)
    modelled = ~_negative_trace_mask(slit.ny, trace, gaussian)  # no model describes negative traces
    mean = slit.mean_image(modelled)  # every candidate is fitted to, and judged on, this one image
    problem = _problem(slit, trace, gaussian, mean, params)
    candidates = [ProfileFit(slit.name, "gaussian", trace.center, gaussian)]
    n_pixels = 0

    def data_aic(candidate):
        return akaike(candidate.chi2_per_pixel * n_pixels, candidate.n_parameters)

    def aic(candidate):
        inverse_beta, held = _wings(candidate)
        return data_aic(candidate) + wing_prior_cost(inverse_beta, params.psf_prior, held=held)

    evidence = None
    if params.profile_kind == "auto":
        if params.template is not None:
            candidates.append(_fit_kind(slit, "template", problem))  # with or without a detection
        if trace.detected:
            snr, parametric, windows = _supported_shapes(slit, candidates[0], params, problem)
            if defer_below is not None and snr < defer_below:
                log.info("Slit %s: fitted after the exposure's bright sources", slit.name)
                return None
            wings = None
            if parametric and snr >= MOFFAT_GATE_SNR and not beyond_noise(*_coherent(problem, gaussian, slit.nx)):
                log.info("Slit %s: the Gaussian leaves residuals within the noise: no Moffat or pair", slit.name)
                parametric = False
            if parametric:
                candidates.append(ProfileFit(slit.name, "moffat", trace.center, MoffatProfile.fit(problem)))
                for candidate in candidates:
                    candidate.chi2_per_pixel, n_pixels = _chi2(problem, candidate)
                # Where the data prefer its wings, the Moffat's are the shape of the light beyond the splines'
                # support; a Moffat no better than the Gaussian (a wide, flat one on a short slit) is none.
                if data_aic(candidates[-1]) < data_aic(candidates[0]):
                    wings = candidates[-1].model
                pair = _fit_kind(slit, "pair", problem)
                if pair is not None:
                    candidates.append(pair)
            if snr >= EXPOSURE_MIN_SNR:  # what the data say of the index: the Moffat's where it beat the Gaussian
                evidence = GAUSSIAN_INVERSE_BETA if wings is None else 1.0 / wings.beta
            start = None
            for window in windows:
                for candidate in candidates:
                    if np.isnan(candidate.chi2_per_pixel):
                        candidate.chi2_per_pixel, n_pixels = _chi2(problem, candidate)
                best = parsimonious(candidates, aic)
                gain, n_bins = _coherent(problem, best.model, window)
                if not beyond_noise(gain, n_bins):
                    log.info("Slit %s: the %s profile leaves residuals within the noise (coherent chi2 %.0f in %d "
                             "bins): no spline with knots every %g columns", slit.name, best.kind, gain, n_bins,
                             window)
                    break
                spline = SplineProfile.fit(problem, window, wings=wings, start=start)
                if spline is not None:
                    candidates.append(ProfileFit(slit.name, "spline", trace.center, spline))
                    start = spline
    elif trace.detected or not PROFILES[params.profile_kind].needs_source:
        fitted = _fit_kind(slit, params.profile_kind, problem)
        if fitted is not None:
            candidates.append(fitted)
    for candidate in candidates:
        if np.isnan(candidate.chi2_per_pixel):
            candidate.chi2_per_pixel, n_pixels = _chi2(problem, candidate)
    if params.profile_kind != "auto":
        return candidates[-1]

    chosen = parsimonious(candidates, aic)
    log.info("Slit %s: profile chi2/pixel %s (%d pixels): %s chosen", slit.name,
             ", ".join(f"{c.kind} {c.chi2_per_pixel:.3f} (AIC {aic(c):.0f})" for c in candidates), n_pixels,
             chosen.kind)
    chosen.exposure_inverse_beta = evidence
    return chosen


def _coherent(problem: ProfileProblem, model, window: float) -> tuple[float, int]:
    """`coherent_gain` of ``model`` with knots every ``window`` columns, computed once per problem."""
    return problem.kept(("coherent", id(model), float(window)), lambda: coherent_gain(problem, model, window))


def _wings(candidate: ProfileFit) -> tuple[float | None, bool]:
    """The ``1 / beta`` of a candidate's wings and whether the PSF prior held it in the fit, for `wing_prior_cost`.

    A Moffat's index and a spline's Moffat wings were fitted with the prior's
    term; a Gaussian (or a spline without wings) is at the Gaussian limit; a
    template has none: its wings are given.
    """
    if candidate.kind == "moffat":
        return 1.0 / candidate.model.beta, True
    if candidate.kind == "spline" and candidate.model.wings is not None:
        return 1.0 / candidate.model.wings.beta, True
    return (None if candidate.kind == "template" else GAUSSIAN_INVERSE_BETA), False


def _supported_shapes(slit: SlitData, gauss_fit: ProfileFit, params: FitParameters,
                      problem: ProfileProblem) -> tuple[float, bool, list[float]]:
    """The median S/N per column, whether ``auto`` may consider the Moffat and the pair, and which spline windows
    (see `supported_shapes`)."""
    snr = median_column_snr(problem.scene(gauss_fit.model)[1])
    parametric, windows = supported_shapes(snr, slit.nx, params.window)
    considered = (["Moffat, pair"] if parametric else []) + ([f"spline windows {windows}"] if windows else [])
    log.info("Slit %s: median S/N per column %.1f: %s", slit.name, snr,
             " and ".join(considered) + " considered" if considered else "Gaussian only")
    return snr, parametric, windows


def _problem(slit: SlitData, trace: TraceFit, gaussian: core.GaussianProfile, mean: MeanImage,
             params: FitParameters) -> ProfileProblem:
    """What every profile kind is fitted to: the slit's mean image about its trace, and the fit parameters."""
    template = params.template
    if template is not None and not isinstance(template, ProfileTemplate):
        template = read_template(template)
    return ProfileProblem(
        slit.name, mean.image, mean.good, mean.var_rnoise, mean.var_poisson, trace.center, gaussian, trace.detected,
        params.background, reject_sigma=params.reject_sigma, width_degree=params.width_degree, window=params.window,
        oversample=params.oversample, smoothing=params.smoothing, wavelength=slit.wavelength, template=template,
        template_stretch=params.template_stretch, psf_prior=params.psf_prior,
    )


def _fit_kind(slit: SlitData, kind: str, problem: ProfileProblem) -> ProfileFit | None:
    """The profile of the registered ``kind`` fitted to ``problem``, or None when the data cannot give it."""
    try:
        model = PROFILES[kind].fit(problem)
    except ValueError as error:
        raise SlitError(slit.name, str(error)) from error
    return None if model is None else ProfileFit(slit.name, kind, problem.center, model)


def _fit_gaussian(slit: SlitData, params: FitParameters, start: np.ndarray | None = None,
                  mask: np.ndarray | None = None):
    """Joint Gaussian fit of trace and width; the simpler model unless the data need the full one.

    Returns the profile and whether a source was detected: a plausible fit
    whose extracted flux has a total signal to noise of at least
    ``params.detection_snr``.
    """
    # The fit averages the integrations: give it the mean image, not a copy of the cube.
    mean = slit.mean_image(mask)
    shape_from_data = params.trace_model == "spline" or params.deconvolve_iterations > 0
    if start is None:
        guess = slit.source_row if slit.source_row is not None and 0 <= slit.source_row < slit.ny else None
        variance = mean.variances.total()
        start = core.find_trace(mean.image, mean.good, guess=guess, degree=params.trace_degree,
                                model=params.trace_model, deconvolve_iterations=params.deconvolve_iterations,
                                psf_sigma=params.psf_sigma, variance=variance)
    # With a WCS trace the centre is a constant offset from it (its shape is
    # exact, its zero point is not: jwst trusts it the same way); without one,
    # a polynomial. A spline trace model, or deconvolved centroids, take the
    # shape from the data instead: the centre is then a constant offset from
    # the spline, or held at the deconvolved centroids (a fit of one profile
    # would pull them back towards a blended neighbour). The simpler model is
    # kept unless the full one lowers the chi-square per pixel, in units of the
    # simpler model's, by more than twice its extra parameters (Akaike): a
    # faint spectrum cannot carry a wandering trace or width, and real data's
    # underestimated variances must not favour them.
    if shape_from_data:
        base = np.asarray(start, float)
        trace_degree = None if params.deconvolve_iterations > 0 else 0
    else:
        base = slit.source_trace
        trace_degree = params.wcs_offset_degree if base is not None else params.trace_degree
    simple = (None if trace_degree is None else min(trace_degree, 1), 0)
    # The full model first; the simple one is started from it and judged on the same pixels: the full model's
    # outliers are left out, and none of its own. Where the simple model is poor, rejecting its misfit as
    # outliers would flatter its chi-square, and the changing rejection would stall its steps.
    fitted = {}
    for degrees in dict.fromkeys([(trace_degree, params.width_degree), simple]):
        previous = next(iter(fitted.values()), None)
        if previous is not None and _beyond_doubt(previous, trace_degree, degrees):
            break
        gaussian = core.fit_gaussian_profile(
            mean.image, mean.good if previous is None else mean.good & previous.used, mean.var_rnoise,
            mean.var_poisson, start if previous is None else previous.center,
            sigma_guess=params.psf_sigma if previous is None else previous.sigma, center_degree=degrees[0],
            sigma_degree=degrees[1], reject_sigma=params.reject_sigma if previous is None else None, base=base,
            background=params.background, width_prior=params.psf_sigma if params.background.fitted else None,
            coarse_columns=COARSE_COLUMNS if previous is None else 0,
        )
        if _plausible(gaussian, params.psf_sigma):
            fitted[degrees] = gaussian
        else:
            log.info("Slit %s: Gaussian fit with trace degree %s and width degree %d is implausible",
                     slit.name, *degrees)
    candidates = list(reversed(fitted.values()))  # the simplest first: the chi-square's unit
    if candidates:
        reference = candidates[0].chi2 / max(candidates[0].n_pixels, 1)
        n = candidates[0].n_pixels

        def score(g):
            n_center = 0 if trace_degree is None else g.center_coeffs.size
            return akaike(g.chi2 / max(g.n_pixels, 1) / max(reference, 1e-12) * n, n_center + g.sigma_coeffs.size)

        gaussian = min(candidates, key=score)
        if _detected(slit, gaussian, mask, params):
            log.info("Slit %s: trace at row %.2f (%.2f to %.2f)%s, Gaussian sigma %.2f to %.2f px",
                     slit.name, gaussian.center.mean(), gaussian.center.min(), gaussian.center.max(),
                     _about(slit, params), gaussian.sigma.min(), gaussian.sigma.max())
            return gaussian, True
    fallback = base if base is not None else start
    log.warning("Slit %s: no source detected; using the %s trace at row %.2f and the prior "
                "width %.2f px (flagged as not detected in the trace product)", slit.name,
                "WCS" if slit.source_trace is not None and not shape_from_data else "estimated",
                float(np.mean(fallback)), params.psf_sigma)
    coeffs = np.polynomial.legendre.legfit(np.linspace(-1, 1, slit.nx), fallback, params.trace_degree)
    return core.GaussianProfile(coeffs, np.array([params.psf_sigma]), slit.nx, slit.ny), False


COARSE_COLUMNS = 16
"""The trace's Gaussian starts from a fit to the image with this many columns averaged (``coarse_columns`` of
`~jwst_optextract.core.profiles.gaussian.fit_gaussian_profile`)."""

DECISIVE_LEAD = 10.0
"""The trace's simpler Gaussian is not fitted where the full one's lead over it, predicted from the full fit, is
this many times the Akaike penalty of the extra parameters (on the scorecard's slits the fitted lead was at least
0.4 of the predicted one, and the full model won wherever the prediction exceeded 5 times the penalty)."""


def _beyond_doubt(full: core.GaussianProfile, trace_degree: int | None, simple: tuple[int | None, int]) -> bool:
    """Whether the full trace Gaussian would win Akaike's comparison with the ``simple`` degrees by far.

    The simple model's chi-square is predicted as the full one's plus the
    Wald statistic of the coefficients it drops
    (`~jwst_optextract.core.profiles.gaussian.GaussianProfile.held_chi2_increase`), and
    scaled as `_fit_gaussian` scales it. Where the lead is beyond doubt the
    simple fit, which could not be chosen, is not made: the full Gaussian
    is kept, as the comparison would keep it.
    """
    increase = full.held_chi2_increase(simple[0], simple[1])
    extra = full.sigma_coeffs.size - (simple[1] + 1)
    if trace_degree is not None:
        extra += full.center_coeffs.size - (simple[0] + 1)
    if not np.isfinite(increase) or extra <= 0 or full.n_pixels == 0:
        return False
    lead = increase * full.n_pixels / (full.chi2 + increase)  # in units of the simple model's chi-square per pixel
    return bool(lead > DECISIVE_LEAD * 2 * extra)


def _about(slit: SlitData, params: FitParameters) -> str:
    """What the centre of the trace fit is measured about, for the log."""
    if params.deconvolve_iterations > 0:
        return f" (held at deconvolved centroids, {params.trace_model})"
    if params.trace_model == "spline":
        return " about a smoothing spline of centroids"
    return " about the WCS trace" if slit.source_trace is not None else ""


def _trace_method(params: FitParameters) -> str:
    """How the trace is measured, as the trace product says (``method``)."""
    if params.trace_model not in TRACE_MODELS:
        raise ValueError(f"unknown trace model {params.trace_model!r}; use one of {TRACE_MODELS}")
    if params.deconvolve_iterations > 0:
        return f"deconvolved centroids, {params.trace_model}"
    return "gaussian" if params.trace_model == "polynomial" else "gaussian, spline shape"


CLEAR_DETECTION = 4.0
"""A trace Gaussian whose fit's signal to noise with its background held is this many times ``detection_snr`` is
detected without measuring it with the background's uncertainty (on the scorecard's slits that measure was 0.96 to
1.26 times the held one)."""


def _detected(slit: SlitData, gaussian: core.GaussianProfile, mask: np.ndarray | None, params: FitParameters) -> bool:
    """Whether the flux extracted with the trace Gaussian has a total signal to noise of ``params.detection_snr``."""
    if gaussian.shape_fit is not None and gaussian.shape_fit.snr >= CLEAR_DETECTION * params.detection_snr:
        return True
    return _snr(slit, gaussian, mask, params.background, params.reject_sigma) >= params.detection_snr


def _snr(slit: SlitData, gaussian: core.GaussianProfile, mask: np.ndarray | None,
         background: SceneBackground, reject_sigma: float | None) -> float:
    """Total signal to noise of the slit's flux extracted with this profile (and the background, if fitted).

    With outlier rejection: a background fitted with the source takes up an unflagged cosmic ray or hot pixel
    over many columns, and pushed the flux of a faint source below zero.
    """
    mean = slit.mean_image(mask)
    result = amplitudes(mean, gaussian.evaluate(gaussian.ny, gaussian.center), background,
                        reject_sigma=reject_sigma)
    ok = result.valid
    total_var = np.sum(result.var_total[ok])
    return float(np.sum(result.flux[ok]) / np.sqrt(total_var)) if total_var > 0 else 0.0


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


def _chi2(problem: ProfileProblem, profile: ProfileFit) -> tuple[float, int]:
    """Chi-square per pixel of the mean image about the profile on the trace (see `chi2_per_pixel`)."""
    return chi2_per_pixel(problem, *problem.scene(profile.model))


def _negative_trace_mask(ny: int, trace: TraceFit, gaussian: core.GaussianProfile) -> np.ndarray:
    rows = np.arange(ny)[:, None]
    mask = np.zeros((ny, trace.center.size), bool)
    half = 2.5 * float(np.max(gaussian.sigma))
    for offset in trace.negative_offsets:
        mask |= np.abs(rows - (trace.center + offset)) <= half
    return mask
