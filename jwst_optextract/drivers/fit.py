"""Trace and profile fitting of whole slits: the glue between `io`, `core` and the products.

One implementation serves TraceStep, PsfFitStep and OptimalExtractStep (which
fits what it is not given).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from .. import core
from ..core.profiles import (
    PROFILES, MoffatProfile, Profile, ProfileProblem, ProfileTemplate, SplineProfile, profile_class,
)
from ..core.profiles.base import amplitudes as _amplitudes
from ..core.scene import SceneBackground
from ..core.trace import negative_traces, shifted_profiles, trace_shifts
from ..exceptions import SlitError
from ..io import SlitData
from ..io.slits import MeanImage
from .parameters import FitParameters
from ..products import read_template

__all__ = [
    "FitParameters", "ProfileFit", "TraceFit", "fit_profile", "fit_trace",
    "profile_entry", "profile_from_entry", "trace_entry", "trace_from_entry",
]

log = logging.getLogger(__name__)

PROFILE_KINDS = PROFILES.names
"""The profile kinds packaged (``auto`` chooses among them); `PROFILES` also holds any registered since."""
TRACE_MODELS = ("polynomial", "spline")


@dataclass
class TraceFit:
    """The trace of one slit, in its canonical (dispersion along x) pixels."""

    name: str
    center: np.ndarray
    shifts: np.ndarray = field(default_factory=lambda: np.zeros(0))
    negative_offsets: np.ndarray = field(default_factory=lambda: np.zeros(0))
    detected: bool = True
    method: str = "gaussian"
    gaussian: core.GaussianProfile | None = None

    def centers(self) -> np.ndarray:
        """``(nx,)``, or ``(nints, nx)`` with the per-integration shifts."""
        if self.shifts.size:
            return self.center[None, :] + self.shifts[:, None]
        return self.center


@dataclass
class ProfileFit:
    """The cross-dispersion profile of one slit."""

    name: str
    kind: str
    center: np.ndarray
    model: Profile
    chi2_per_pixel: float = np.nan

    def evaluate(self, ny: int, center: np.ndarray | None = None) -> np.ndarray:
        """The normalised profile ``(ny, nx)`` about ``center`` (default: the fitted trace)."""
        return self.model.evaluate(ny, self.center if center is None else center)

    @property
    def n_parameters(self) -> float:
        """Number of (effective) free parameters of the shape, for Akaike's criterion."""
        return self.model.n_parameters

    def for_trace(self, ny: int, trace: TraceFit) -> np.ndarray:
        """``(ny, nx)``, or ``(nints, ny, nx)`` following the trace's per-integration shifts."""
        P0 = self.evaluate(ny, trace.center)
        if not trace.shifts.size:
            return P0
        reference = None if trace.gaussian is None else ProfileFit(self.name, "gaussian", self.center, trace.gaussian)
        dP, d2P = self._derivatives(ny, trace.center, reference)
        return shifted_profiles(P0, dP, d2P, trace.shifts).astype(np.float32)

    def _derivatives(self, ny: int, center: np.ndarray, reference: ProfileFit | None = None):
        """First and second derivatives ``(ny, nx)`` of the profile with respect to the trace centre."""
        step = self.model.derivative_step
        if step < 1.0:
            return _central_differences(lambda s: self.evaluate(ny, center + s), step, 1)
        # A spline or template learnt from the data is known where the data sample it: on a trace that hardly
        # moves in sub-pixel phase, at whole-pixel offsets only (between them it is whatever the smoothing left,
        # and a sub-pixel difference made the white light follow the jitter). So its slope comes from whole-pixel
        # shifts, by a high-order stencil, and only for what it adds to an analytic reference: the stencil's
        # error on a narrow core (5 % at sigma 1.1 px) is then an error on the small difference.
        if reference is None:
            return _central_differences(lambda s: self.evaluate(ny, center + s), 1.0, 3)
        dG, d2G = reference._derivatives(ny, center)
        dR, d2R = _central_differences(lambda s: self.evaluate(ny, center + s) - reference.evaluate(ny, center + s),
                                       1.0, 2)
        return dG + dR, d2G + d2R


def _central_differences(values, step: float, half_width: int) -> tuple[np.ndarray, np.ndarray]:
    """First and second derivatives at 0 of ``values(offset)`` from a central stencil of ``2 half_width + 1`` points.

    The weights are exact for polynomials of degree ``2 half_width`` (one point each side: the usual
    ``(f(h) - f(-h)) / 2h`` and ``(f(h) - 2 f(0) + f(-h)) / h**2``).
    """
    offsets = np.arange(-half_width, half_width + 1)
    moments = np.vander(offsets.astype(float), increasing=True).T  # moments[k, j] = offsets[j] ** k
    first, second = (np.linalg.solve(moments, np.eye(offsets.size)[order]) * factor
                     for order, factor in ((1, 1.0), (2, 2.0)))
    samples = [values(k * step) for k in offsets]
    return (sum(w * f for w, f in zip(first, samples, strict=True)) / step,
            sum(w * f for w, f in zip(second, samples, strict=True)) / step**2)


def fit_trace(slit: SlitData, params: FitParameters) -> TraceFit:
    """Trace of a slit: a joint Gaussian fit of centre and width, per-integration shifts, negative traces.

    Negative traces (nod-subtracted data) are located after a first fit and
    masked for a second one, so that their wings do not pull the trace.
    """
    gaussian, detected = _fit_gaussian(slit, params)
    trace = TraceFit(slit.name, gaussian.center, detected=detected, gaussian=gaussian, method=_trace_method(params))
    mean = slit.mean_image()
    if detected:
        positive = core.optimal_extract(mean.image, gaussian.evaluate(gaussian.ny, gaussian.center), mean.var_rnoise,
                                        mean.var_poisson, mask=mean.good)
        variance = mean.var_rnoise + (0 if mean.var_poisson is None else mean.var_poisson)
        trace.negative_offsets = negative_traces(mean.image, mean.good, trace.center, positive.flux, variance)
    if trace.negative_offsets.size:
        log.info("Slit %s: negative traces at %s pixels from the trace; refitting without them", slit.name,
                 ", ".join(f"{o:+.0f}" for o in trace.negative_offsets))
        keep = ~_negative_trace_mask(slit.ny, trace, gaussian)
        gaussian, detected = _fit_gaussian(slit, params, start=trace.center, mask=keep)
        trace.center, trace.detected, trace.gaussian = gaussian.center, detected, gaussian
    if slit.n_integrations and slit.n_integrations > 1 and params.fit_jitter and trace.detected:
        profile = ProfileFit(slit.name, "gaussian", trace.center, trace.gaussian)
        P0 = profile.evaluate(slit.ny)
        dP, d2P = profile._derivatives(slit.ny, trace.center)
        spectrum = core.optimal_extract(mean.image, P0, mean.var_rnoise, mean.var_poisson, mask=mean.good,
                                        return_inverse_variance=True)
        weights = spectrum.inverse_variance / slit.n_integrations  # one integration's
        trace.shifts = trace_shifts(slit.data, slit.good, weights, np.nan_to_num(spectrum.flux), P0, dP, d2P)
        log.info("Slit %s: per-integration trace shifts, rms %.4f px, range %.4f to %.4f",
                 slit.name, trace.shifts.std(), trace.shifts.min(), trace.shifts.max())
    return trace


def fit_slit_profile(slit: SlitData, given: TraceFit | None, params: FitParameters) -> tuple[TraceFit, ProfileFit]:
    """The trace (``given``, else fitted) and the profile of one slit: `PsfFitStep`'s work on one slit."""
    trace = fit_trace(slit, params) if given is None else given
    return trace, fit_profile(slit, trace, params)


def fit_profile(slit: SlitData, trace: TraceFit, params: FitParameters) -> ProfileFit:
    """Profile of a slit about its trace, of the kind asked for.

    ``auto`` compares, by Akaike's criterion (chi-square plus twice the
    effective number of parameters), the Gaussian, and where the median
    signal to noise per column supports them (see `_supported_shapes`) the
    Moffat, a spline whose shape varies linearly across the whole slit and a
    spline with knots every ``window`` columns, and the template when one is
    given: a faint spectrum supports only the simpler shapes. Any other
    registered kind (see `~jwst_optextract.core.profiles`) is fitted when asked for.
    """
    if params.kind != "auto" and params.kind not in PROFILES:
        raise SlitError(slit.name, f"unknown profile kind {params.kind!r}; use one of {PROFILES.names}")
    gaussian = trace.gaussian
    if gaussian is None:
        gaussian, _ = _fit_gaussian(slit, params, start=trace.center)
    modelled = ~_negative_trace_mask(slit.ny, trace, gaussian)  # no model describes negative traces
    mean = slit.mean_image(modelled)  # every candidate is fitted to, and judged on, this one image
    problem = _problem(slit, trace, gaussian, mean, params)
    candidates = [ProfileFit(slit.name, "gaussian", trace.center, gaussian)]
    if params.kind == "auto":
        if params.template is not None:
            candidates.append(_fit_kind(slit, "template", problem))  # with or without a detection
        if trace.detected:
            moffat, windows = _supported_shapes(slit, candidates[0], params, mean)
            if moffat:
                candidates.append(ProfileFit(slit.name, "moffat", trace.center, MoffatProfile.fit(problem)))
            for window in windows:
                spline = SplineProfile.fit(problem, window, start=candidates[-1].model)
                if spline is not None:
                    candidates.append(ProfileFit(slit.name, "spline", trace.center, spline))
    elif trace.detected or not PROFILES[params.kind].needs_source:
        fitted = _fit_kind(slit, params.kind, problem)
        if fitted is not None:
            candidates.append(fitted)
    for candidate in candidates:
        candidate.chi2_per_pixel, n_pixels = _chi2(slit, candidate, trace, mean, params.background)
    if params.kind != "auto":
        return candidates[-1]

    def aic(candidate):
        return candidate.chi2_per_pixel * n_pixels + 2 * candidate.n_parameters

    chosen = min(candidates, key=aic)
    log.info("Slit %s: profile chi2/pixel %s (%d pixels): %s chosen", slit.name,
             ", ".join(f"{c.kind} {c.chi2_per_pixel:.3f} (AIC {aic(c):.0f})" for c in candidates), n_pixels,
             chosen.kind)
    return chosen


def _supported_shapes(slit: SlitData, gauss_fit: ProfileFit, params: FitParameters,
                      mean: MeanImage) -> tuple[bool, list[float]]:
    """Whether ``auto`` may consider the Moffat, and which spline windows, given the median S/N per column.

    A spline fitted to pixels whose amplitudes come from the same noisy data is
    biased when those amplitudes are poor (errors in variables: +1 % at S/N 5
    per column with 128-column windows, -14 % at S/N 0.5). So: windows of
    ``params.window`` columns from S/N 10 per column, one shape varying
    linearly across the slit (and the Moffat, whose index is one more number
    to learn from the wings) from S/N 3, and below that the Gaussian only
    (PypeIt falls back to a parametric profile below S/N 4).
    """
    result = _amplitudes(mean, gauss_fit.evaluate(slit.ny), params.background)
    with np.errstate(invalid="ignore", divide="ignore"):
        snr = float(np.nanmedian(result.flux / np.sqrt(result.var_total)))
    windows = [float(slit.nx)] if snr >= 3 else []
    if snr >= 10 and params.window < slit.nx:
        windows.append(params.window)
    log.info("Slit %s: median S/N per column %.1f: %s", slit.name, snr,
             f"Moffat and spline windows {windows} considered" if windows else "Gaussian only")
    return snr >= 3, windows


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
        template_stretch=params.template_stretch,
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
        variance = mean.var_rnoise + (0 if mean.var_poisson is None else np.maximum(mean.var_poisson, 0))
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
    candidates = []
    for degrees in dict.fromkeys([simple, (trace_degree, params.width_degree)]):
        gaussian = core.fit_gaussian_profile(
            mean.image, mean.good, mean.var_rnoise, mean.var_poisson, start,
            sigma_guess=params.psf_sigma, center_degree=degrees[0], sigma_degree=degrees[1],
            reject_sigma=params.reject_sigma, base=base, background=params.background,
        )
        if _plausible(gaussian, params.psf_sigma):
            candidates.append(gaussian)
        else:
            log.info("Slit %s: Gaussian fit with trace degree %s and width degree %d is implausible",
                     slit.name, *degrees)
    if candidates:
        reference = candidates[0].chi2 / max(candidates[0].n_pixels, 1)
        n = candidates[0].n_pixels

        def score(g):
            n_center = 0 if trace_degree is None else g.center_coeffs.size
            return g.chi2 / max(g.n_pixels, 1) / max(reference, 1e-12) * n + 2 * (n_center + g.sigma_coeffs.size)

        gaussian = min(candidates, key=score)
        if _snr(slit, gaussian, mask, params.background) >= params.detection_snr:
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


def _snr(slit: SlitData, gaussian: core.GaussianProfile, mask: np.ndarray | None,
         background: SceneBackground) -> float:
    """Total signal to noise of the slit's flux extracted with this profile (and the background, if fitted)."""
    mean = slit.mean_image(mask)
    result = _amplitudes(mean, gaussian.evaluate(gaussian.ny, gaussian.center), background, reject_sigma=None)
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


def _chi2(slit: SlitData, profile: ProfileFit, trace: TraceFit, mean: MeanImage,
          background: SceneBackground) -> tuple[float, int]:
    """Chi-square per pixel of the mean image about ``f P`` (plus the fitted background), each term capped at 25.

    Over every good pixel of ``mean`` and with the same weights (the pixel
    variances) whatever the profile, so that profiles compare fairly: a
    Gaussian that is exactly zero far from the trace is judged on those pixels
    too.
    """
    P = profile.evaluate(slit.ny, trace.center)
    result = _amplitudes(mean, P, background, min_coverage=0.0)
    sky = getattr(result, "background", 0.0)
    variance = mean.var_rnoise + (0 if mean.var_poisson is None else np.maximum(mean.var_poisson, 0))
    use = mean.good & (variance > 0) & np.isfinite(result.flux)[None, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        resid2 = (mean.image - np.nan_to_num(result.flux) * P - sky) ** 2 / variance
    count = int(use.sum())
    # capped at 5 sigma: unflagged cosmic rays far from the trace are no one's model
    return float(np.minimum(resid2[use], 25.0).sum() / max(count, 1)), count


def _negative_trace_mask(ny: int, trace: TraceFit, gaussian: core.GaussianProfile) -> np.ndarray:
    rows = np.arange(ny)[:, None]
    mask = np.zeros((ny, trace.center.size), bool)
    half = 2.5 * float(np.max(gaussian.sigma))
    for offset in trace.negative_offsets:
        mask |= np.abs(rows - (trace.center + offset)) <= half
    return mask


# Products ------------------------------------------------------------------


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
        gaussian = core.GaussianProfile(np.zeros(1), np.asarray(sigma, float), slit.nx, slit.ny, base=center)
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

