"""Combination of every exposure of a source into one spectrum: the glue between `io.sources` and `core.combine`.

For each source (`~jwst_optextract.io.sources.SourceGroup`): cross-exposure
outliers are flagged, the background is removed (nod differences, a smooth
model per exposure, or nothing), one trace (its shape from the WCS or the
fit, an offset per exposure) and one profile width are fitted to all
exposures, and the flux of every column is the weighted least-squares fit of
that profile to the pixels of all exposures at once, with no resampling.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from astropy.table import Table
from scipy import ndimage

from .. import core
from .background import BackgroundParameters, estimate_slit
from ..core import combine
from ..core.profiles.moffat import START_BETA, alpha_for_sigma
from ..exceptions import SlitError
from .fit import fit_trace
from ..io import SlitData, Spectrum
from ..io.dq import DO_NOT_USE
from ..io.dq import MSA_FAILED_OPEN as FAILED_OPEN
from ..io.sources import SourceGroup, cluster_positions, group_sources, source_product
from .parameters import CombineParameters
from .runner import SlitRun, map_isolated

__all__ = ["BACKGROUNDS", "WEIGHT_TYPES", "CombineParameters", "SourceResult", "combine_source", "pixel_table", "run"]

log = logging.getLogger(__name__)

BACKGROUNDS = ("nod", "model", "none")
WEIGHT_TYPES = ("ivm", "poisson", "exptime", "mask")
PROFILE_KINDS = {"auto": ("gaussian", "moffat"), "gaussian": ("gaussian",), "moffat": ("moffat",)}
"""The shared profile's kinds a ``profile_kind`` lets the joint fit choose from."""


@dataclass
class SourceResult:
    """The combined spectrum of a source and what it took."""

    spectrum: Spectrum
    flagged: dict[str, int] = field(default_factory=dict)
    """Pixels flagged by each test, summed over exposures."""
    centers: np.ndarray | None = None
    """``(n_exp, nx)`` trace centre of every exposure."""
    profile: np.ndarray | None = None
    """``(n_exp, ny, nx)`` the profile used in every exposure."""
    background: str = "none"
    pixels: Table | None = None
    """The pixel table the spectrum was solved from (see `pixel_table`)."""
    rectified: tuple[np.ndarray, np.ndarray] | None = None
    """With ``keep_rectified``: the image and variance of `rectified_image`."""


@dataclass
class _Stack:
    """The exposures of a source as ``(n_exp, ny, nx)`` arrays."""

    data: np.ndarray
    good: np.ndarray
    variances: dict[str, np.ndarray]
    wavelength: np.ndarray
    exptime: np.ndarray
    nods: combine.NodDifference | None = None
    """The nod differencing that made these data, if any."""

    @classmethod
    def of(cls, group: SourceGroup) -> _Stack:
        slits = group.slits

        def stacked(key):
            return np.stack([np.zeros(s.data.shape) if getattr(s, key) is None
                             else np.broadcast_to(getattr(s, key), s.data.shape).astype(float) for s in slits])

        exptime = [float(p.meta.exposure.effective_exposure_time or p.meta.exposure.exposure_time or 1.0)
                   for p in group.parents]
        return cls(data=stacked("data"), good=np.stack([s.good for s in slits]),
                   variances={key: stacked(key) for key in combine.VARIANCES},
                   wavelength=stacked("wavelength"), exptime=np.asarray(exptime))

    @property
    def total_variance(self) -> np.ndarray:
        return sum(self.variances.values())


def run(exposures: list, params: CombineParameters, product_name: str, workers: int = 1,
        finish: Callable[[SourceGroup, SourceResult, object], None] | None = None) -> tuple[list, SlitRun]:
    """Combine every source of ``exposures`` into one x1d product each (`SlitCombineStep`'s work).

    The sources go through the package's one loop
    (`~jwst_optextract.drivers.runner.map_isolated`): a source that cannot be
    combined is skipped with a warning and the others are kept; with
    ``workers > 1`` they are combined in that many threads, and the products,
    the skipped sources and their warnings come in the order of the sources
    whatever the number of workers. ``finish(group, result, product)``, if
    given, is called here for every combined source, in that order (for what
    a step saves beside the product).

    Returns
    -------
    products : list of MultiSpecModel
        One per combined source, named ``<product_name>_s<source_id>`` (``meta.filename``).
    run : SlitRun
        The sources combined (name and `SourceResult`) and those skipped, and why.
    """
    groups, skipped = group_sources(exposures)
    summary = SlitRun(total=len(groups) + len(skipped), skipped=dict(skipped))
    products = []
    for group, (ok, value) in zip(groups, map_isolated(functools.partial(combine_source, params=params), groups,
                                                       workers)):
        if not ok:
            log.warning("Skipping %s: %s", group.key, value)
            summary.skipped[group.key] = str(value)
            continue
        product = source_product(group, value.spectrum, product_name)
        if finish is not None:
            finish(group, value, product)
        summary.done.append((group.key, value))
        products.append(product)
    return products, summary


def combine_source(group: SourceGroup, params: CombineParameters) -> SourceResult:
    """Combine every exposure of one source into one spectrum.

    The trace, the profile and the outliers are found on each exposure minus
    a smooth background model (no negative images to confuse them; a cosmic
    ray is flagged in the exposure it hit, before nod differences could turn
    it into a negative spike in the others); the flux then comes from the
    data with the background removed as asked.

    Raises
    ------
    SlitError
        When the source cannot be combined (no usable pixels, unknown options).
    """
    if params.background not in BACKGROUNDS:
        raise SlitError(group.name, f"unknown background {params.background!r}; use one of {BACKGROUNDS}")
    if params.weight_type not in WEIGHT_TYPES:
        raise SlitError(group.name, f"unknown weight_type {params.weight_type!r}; use one of {WEIGHT_TYPES}")
    if params.profile_kind not in PROFILE_KINDS:
        raise SlitError(group.name, f"unknown profile_kind {params.profile_kind!r}; use one of {tuple(PROFILE_KINDS)}")
    stack = _Stack.of(group)
    flagged = {}
    stack.good, flagged["failed_open"] = _mask_failed_open(group, stack.good, params.dilate_failed_open)
    positions = _positions(group, params)
    if params.repeat_sigma:
        repeated = combine.repeated_outliers(stack.data, stack.good, stack.total_variance, positions,
                                             params.repeat_sigma)
        flagged["repeated"] = int((repeated & stack.good).sum())
        stack.good = stack.good & ~repeated
    background = params.background
    if background == "nod" and np.unique(positions).size < 2:
        log.warning("Source %s: all %d exposures are at one nod position; subtracting a smooth background "
                    "model from each instead of nod differences", group.key, len(group.slits))
        background = "model"
    first = _background_removed(group, stack, positions, background, params)
    centers, sigma = _initial_trace(group, first, params)
    kinds = PROFILE_KINDS[params.profile_kind]
    centers, shape = _joint_shape(first, centers, JointShape("gaussian", sigma), params.width_degree, kinds)
    # Outliers are looked for in each exposure alone: in a nod difference the
    # other exposures' cosmic rays are negative spikes that pull the fit.
    alone = first if background != "nod" else _subtract_model(group, stack, params)
    profile = shape.profile(stack.data.shape[1], centers)
    outliers, counts = _cosmic_rays(alone, profile, params)
    flagged.update(counts)
    stack.good &= ~outliers
    final = _background_removed(group, stack, positions, background, params) if background == "nod" else first
    final.good &= ~outliers
    centers, shape, *_ = _refine_jointly(final, centers, shape, params.width_degree)
    profile = shape.profile(stack.data.shape[1], centers)
    model = _model(final, profile)
    extra, counts = _bright_or_extreme(final, profile, model, params)
    flagged.update(counts)
    final.good &= ~extra
    weights = _weights(params.weight_type, final, profile)
    result = combine.pooled_extract(final.data, profile, weights, (stack if final.nods else final).variances,
                                     model=model, nods=final.nods, min_coverage=params.min_coverage)
    if not result.valid.any():
        raise SlitError(group.name, "no column could be combined (too little of the profile on good pixels in "
                        "every exposure); check the inputs' DQ and the trace")
    log.info("Source %s: %d exposures at %d nod positions (%s), background %s, weights %s; pixels flagged: %s",
             group.key, len(group.slits), np.unique(positions).size, group.position_origin, background,
             params.weight_type, ", ".join(f"{k} {v}" for k, v in flagged.items()))
    spectrum = Spectrum(
        wavelength=_weighted_wavelength(stack.wavelength, np.where(weights > 0, profile, 0.0)),
        flux=result.flux, var_poisson=result.var_poisson, var_rnoise=result.var_rnoise,
        var_flat=result.var_flat, npixels=result.npixels,
        dq=np.where(result.valid, 0, DO_NOT_USE).astype(np.uint32), extraction_type="optimal",
        aperture=(float(np.min(centers)), float(np.max(centers))),
    )
    pixels = pixel_table(final, profile, model, weights, centers, group.filenames)
    rectified = None
    if params.keep_rectified:
        rectified = rectified_image(final, centers, final.data.shape[1] // 2)
    return SourceResult(spectrum, flagged, centers, profile, background, pixels, rectified)


def rectified_image(final: _Stack, centers: np.ndarray, half_height: int) -> tuple[np.ndarray, np.ndarray]:
    """For display only: the exposures resampled about their traces and averaged.

    Each exposure's background-removed data are interpolated linearly along
    the rows to offsets ``-half_height .. half_height`` from its trace and the
    exposures averaged with inverse-variance weights. The spectrum never comes
    from this image (resampling correlates the noise of neighbouring rows).

    Returns
    -------
    image, variance : ndarray
        ``(2 * half_height + 1, nx)``; NaN where no exposure covers a pixel.
    """
    ny = final.data.shape[1]
    rows = centers[:, None, :] + np.arange(-half_height, half_height + 1)[None, :, None]
    below = np.clip(np.floor(rows).astype(int), 0, ny - 2)
    t = rows - below
    variance = final.total_variance
    usable = final.good & (variance > 0)
    data = np.where(usable, final.data, 0.0)
    d0, d1 = np.take_along_axis(data, below, axis=1), np.take_along_axis(data, below + 1, axis=1)
    variance = np.where(usable, variance, 0.0)
    v0, v1 = np.take_along_axis(variance, below, axis=1), np.take_along_axis(variance, below + 1, axis=1)
    ok = (np.take_along_axis(usable, below, axis=1) & np.take_along_axis(usable, below + 1, axis=1)
          & (rows >= 0) & (rows <= ny - 1))
    value = (1 - t) * d0 + t * d1
    value_var = (1 - t) ** 2 * v0 + t**2 * v1
    weight = np.where(ok, 1.0 / np.where(ok, value_var, 1.0), 0.0)
    total = weight.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.sum(weight * value, axis=0) / total, np.where(total > 0, 1.0 / total, np.nan)


def pixel_table(final: _Stack, profile, model, weights, centers, filenames: list[str]) -> Table:
    """Every pixel of every exposure with a wavelength: where it is, its data and what the solution made of it.

    Columns: ``exposure`` (index into the ``EXPOSURES`` list in the table's
    metadata), ``row``, ``column``, ``wavelength``, ``offset`` (rows from the
    trace), ``data`` (background removed), ``variance``, ``profile``,
    ``model`` (per unit flux, with any negative nod images), ``weight`` (0 for
    pixels not used).
    """
    keep = np.isfinite(final.wavelength)
    exposure, row, column = np.nonzero(keep)
    table = Table({
        "exposure": exposure.astype(np.int16), "row": row.astype(np.int16), "column": column.astype(np.int16),
        "wavelength": final.wavelength[keep].astype(np.float32),
        "offset": (row - centers[exposure, column]).astype(np.float32),
        "data": final.data[keep].astype(np.float32), "variance": final.total_variance[keep].astype(np.float32),
        "profile": profile[keep].astype(np.float32), "model": model[keep].astype(np.float32),
        "weight": weights[keep].astype(np.float32),
    })
    table["wavelength"].unit = "um"
    table.meta["EXPOSURES"] = list(filenames)
    return table


def _as_slits(group: SourceGroup, stack: _Stack) -> list[SlitData]:
    """Each exposure's slit holding the stack's arrays (for the single-slit fitters)."""
    return [dataclasses.replace(s, data=stack.data[e], good=stack.good[e],
                                **{k: v[e] for k, v in stack.variances.items()})
            for e, s in enumerate(group.slits)]


def _positions(group: SourceGroup, params: CombineParameters) -> np.ndarray:
    """Nod positions from the metadata, else from where a trace fit finds the source in each exposure."""
    if group.position_origin != "none" or len(group.slits) < 2:
        return group.positions
    rows = np.array([float(np.mean(fit_trace(s, params.fit_parameters()).center)) for s in group.slits])
    positions = cluster_positions(rows)
    log.info("Source %s: the metadata do not give nod positions; the measured source rows %s make %d",
             group.key, ", ".join(f"{r:.1f}" for r in rows), np.unique(positions).size)
    return positions


def _mask_failed_open(group: SourceGroup, good: np.ndarray, dilate: int) -> tuple[np.ndarray, int]:
    """Pixels flagged MSA_FAILED_OPEN, grown by ``dilate`` pixels, masked in their exposure."""
    if dilate <= 0:
        return good, 0
    failed = np.stack([(s.dq & FAILED_OPEN) > 0 for s in group.slits])
    grown = ndimage.binary_dilation(failed, structure=np.ones((1, 3, 3), bool), iterations=dilate)
    return good & ~grown, int((good & grown).sum())


def _background_removed(group: SourceGroup, stack: _Stack, positions, background: str,
                        params: CombineParameters) -> _Stack:
    """The exposures with the background removed as asked (nod differences, a smooth model, or as they are)."""
    if background == "none":
        return dataclasses.replace(stack, good=stack.good.copy())
    if background == "nod":
        nods = combine.difference_nods(stack.data, stack.good, stack.variances, positions)
        return _Stack(nods.data, nods.good, nods.variances, stack.wavelength, stack.exptime, nods)
    return _subtract_model(group, stack, params)


def _subtract_model(group: SourceGroup, stack: _Stack, params: CombineParameters) -> _Stack:
    """Each exposure minus a smooth background model, the model's variance added to its pixels'."""
    data, variances = stack.data.copy(), {k: v.copy() for k, v in stack.variances.items()}
    good = stack.good.copy()
    bkg_params = BackgroundParameters(method=params.background_method)
    for e, slit in enumerate(group.slits):  # a handful of exposures, each vectorised
        estimate, _ = estimate_slit(dataclasses.replace(slit, good=stack.good[e]), bkg_params)
        data[e] -= estimate.background
        good[e] &= np.isfinite(estimate.background)
        for key in combine.VARIANCES:
            variances[key][e] += getattr(estimate, key)
    return _Stack(np.where(good, data, np.nan), good, variances, stack.wavelength, stack.exptime)


def _initial_trace(group: SourceGroup, first: _Stack, params: CombineParameters):
    """Trace centre of every exposure and a Gaussian width to start the joint fit from.

    WCS traces carry the nod geometry: the joint fit then only shifts them
    all together, from the prior width. Without them each exposure's own
    fit gives its offset about one shared shape (and the mean width).
    """
    slits = _as_slits(group, first)
    if all(s.source_trace is not None for s in slits):
        return np.stack([s.source_trace for s in slits]), np.full(first.data.shape[-1], params.psf_sigma)
    fits = [fit_trace(s, params.fit_parameters()) for s in slits]
    detected = np.array([f.detected for f in fits])
    if not detected.any():
        log.warning("Source %s: no exposure shows the source on its own and there is no WCS trace; using "
                    "the rows the trace fits fell back to", group.key)
        detected[:] = True
    centers = np.stack([f.center for f in fits])
    offsets = centers.mean(axis=1, keepdims=True)
    shape = np.mean(centers[detected] - offsets[detected], axis=0)
    sigma = np.mean([f.gaussian.sigma for f, d in zip(fits, detected) if d], axis=0)
    log.info("Source %s: trace rows %s from each exposure's fit", group.key,
             ", ".join(f"{o:.2f}" for o in offsets[:, 0]))
    return offsets + shape[None, :], sigma


def _model(work: _Stack, profile: np.ndarray) -> np.ndarray:
    """The data per unit flux: the profile, less the negative images where nods were differenced."""
    return profile if work.nods is None else profile - _negative_images(work.nods, profile)


@dataclass
class JointShape:
    """The profile shared by all exposures of a source: a Gaussian of width ``width``, or a Moffat.

    For the Moffat, ``width`` is ``alpha`` per column and ``beta`` its index.
    """

    kind: str
    width: np.ndarray
    beta: float | None = None

    def profile(self, ny: int, centers: np.ndarray) -> np.ndarray:
        """``(n_exposures, ny, nx)`` normalised profiles about each exposure's trace."""
        if self.kind == "moffat":
            return core.moffat_profile(ny, centers, self.width[None, :], self.beta)
        return core.gaussian_profile(ny, centers, self.width[None, :])

    @property
    def n_parameters(self) -> int:
        return 1 if self.kind == "moffat" else 0

    def describe(self) -> str:
        text = f"{self.kind} width {self.width.min():.2f} to {self.width.max():.2f} px"
        return text + (f", beta {self.beta:.2f}" if self.beta is not None else "")


def _joint_shape(work: _Stack, centers: np.ndarray, gaussian: JointShape, degree: int, kinds: tuple[str, ...],
                 detection_snr: float = 5.0) -> tuple[np.ndarray, JointShape]:
    """The trace shift and shape fitted to all exposures, of the best of ``kinds`` (gaussian, moffat).

    The Gaussian is fitted first, from ``gaussian``; the Moffat starts from its
    trace and FWHM. Of both, the one with the lower Akaike criterion,
    ``chi2 + 2 n_parameters``, is kept. A Moffat's wings are modelled in the
    negative images too, so no wing flux goes with the nod differences.
    """
    fits = [_refine_jointly(work, centers, gaussian, degree, detection_snr)]
    fitted_centers, fitted, cost, column_snr = fits[0]
    # As optx_psf's auto: the Moffat's index is one more number to learn from the wings, which a faint
    # source does not show (at S/N ~1.5 per column the Moffat took background residuals for wings, +15 %).
    if "moffat" in kinds and cost is not None and (kinds == ("moffat",) or column_snr >= _MOFFAT_MIN_SNR):
        start = JointShape("moffat", alpha_for_sigma(fitted.width, START_BETA), START_BETA)
        moffat = _refine_jointly(work, fitted_centers, start, degree, detection_snr)
        fits = [moffat] if kinds == ("moffat",) else [*fits, moffat]
    detected = [fit for fit in fits if fit[2] is not None]
    if not detected:
        return centers, gaussian
    best_centers, best, *_ = min(detected, key=lambda fit: fit[2] + 2 * fit[1].n_parameters)
    if len(detected) > 1:
        log.info("Joint profile of all exposures: %s (chi2 %s)", best.kind,
                 ", ".join(f"{fit[1].kind} {fit[2]:.1f}" for fit in detected))
    return best_centers, best


_MOFFAT_MIN_SNR = 3.0
"""Median S/N per column of the pooled exposures from which ``auto`` considers the Moffat."""


def _refine_jointly(work: _Stack, centers: np.ndarray, shape: JointShape, degree: int,
                    detection_snr: float = 5.0, iterations: int = 8
                    ) -> tuple[np.ndarray, JointShape, float | None, float]:
    """One shift of all traces and a smooth correction of the width (and the Moffat index), fitted to all exposures.

    The model includes the negative images of nod differences, which a fit
    of one exposure alone must mask and which then pull its width. The width
    is multiplied by ``exp`` of a Legendre series of degree ``degree`` along
    the dispersion, a Moffat index ``beta`` is ``0.5 + exp`` of one more
    parameter; the flux of each column is solved for at every step (damped
    Gauss-Newton with numerical derivatives, variable projection). A source
    the pooled data do not detect at ``detection_snr`` keeps the starting
    trace and shape, and its chi-square is None. Returns the traces, the
    shape, the chi-square and the median S/N per column of the pooled exposures.
    """
    vr, vp, vf = (work.variances[k] for k in ("var_rnoise", "var_poisson", "var_flat"))
    variance = vr + np.maximum(vp, 0) + vf
    usable = work.good & (variance > 0)
    root_weight = np.where(usable, 1.0 / np.sqrt(np.where(usable, variance, 1.0)), 0.0)
    target = np.where(work.good, work.data, 0.0) * root_weight
    ny, nx = work.data.shape[1:]
    basis = np.polynomial.legendre.legvander(np.linspace(-1, 1, nx), degree).T  # (degree + 1, nx)
    n_width = degree + 1

    def shaped(theta) -> JointShape:
        width = shape.width * np.exp(theta[1:1 + n_width] @ basis)
        if shape.kind == "moffat":
            return JointShape("moffat", width, 0.5 + (shape.beta - 0.5) * float(np.exp(theta[-1])))
        return JointShape(shape.kind, width)

    def solve(theta):
        model = _model(work, shaped(theta).profile(ny, centers + theta[0])) * root_weight
        information = np.maximum(np.sum(model * model, axis=(0, 1)), 1e-300)
        flux = np.sum(model * target, axis=(0, 1)) / information
        return (target - flux * model).ravel(), flux, information

    theta = np.zeros(1 + n_width + shape.n_parameters)
    residual, flux, information = solve(theta)
    seen = information > 1e-300  # columns with pixels
    snr = float(np.sum(flux[seen]) / np.sqrt(np.sum(1.0 / information[seen]))) if seen.any() else 0.0
    if not snr >= detection_snr:
        log.warning("The exposures together detect the source at S/N %.1f only: keeping the starting trace and "
                    "width", snr)
        return centers, shape, None, 0.0
    cost, step = float(residual @ residual), 1e-3
    for _ in range(iterations):
        jacobian = np.stack([(solve(theta + step * unit)[0] - residual) / step for unit in np.eye(theta.size)],
                            axis=1)
        delta = np.clip(np.linalg.lstsq(jacobian, -residual, rcond=None)[0], -0.5, 0.5)
        for _ in range(6):  # halve the step until the chi-square drops
            trial = solve(theta + delta)[0]
            if trial @ trial < cost:
                break
            delta = delta / 2
        else:
            break
        theta, residual, cost = theta + delta, trial, float(trial @ trial)
        if np.max(np.abs(delta)) < 1e-4:
            break
    fitted = shaped(theta)
    log.info("Joint fit of all exposures (S/N %.0f): traces shifted by %+.3f px, %s (from %s)", snr, theta[0],
             fitted.describe(), shape.describe())
    column_snr = float(np.median(flux[seen] * np.sqrt(information[seen])))
    return centers + theta[0], fitted, cost, column_snr


def _negative_images(nods: combine.NodDifference, profile: np.ndarray) -> np.ndarray:
    """The source's negative images in each difference, per unit flux (the subtracted mean of the others)."""
    weight = nods.other.astype(float)
    return nods.share * np.einsum("eo,o...->e...", weight, np.where(nods.source_good, profile, 0.0))


def _cosmic_rays(alone: _Stack, profile: np.ndarray, params: CombineParameters) -> tuple[np.ndarray, dict]:
    """Pixels of each exposure far above the profile model, or sharp and bright where the profile is nil."""
    if not params.reject_sigma:
        return np.zeros(alone.good.shape, bool), {}
    vr, vp, vf = (alone.variances[k] for k in ("var_rnoise", "var_poisson", "var_flat"))
    first = core.optimal_extract(np.where(alone.good, alone.data, 0.0), profile, vr, vp, vf, mask=alone.good,
                                 reject_sigma=params.reject_sigma, min_coverage=0.0)
    rejected = first.rejected
    used = alone.good & ~rejected
    variance = alone.total_variance
    away = profile < 1e-3 * profile.max(axis=1, keepdims=True)
    with np.errstate(invalid="ignore"):
        sharp = used & away & (np.nan_to_num(combine.sharpness(alone.data, used, variance)) > params.reject_sigma)
        sharp &= alone.data > params.reject_sigma * np.sqrt(variance)
    return rejected | sharp, {"profile": int(rejected.sum()), "off_trace": int(sharp.sum())}


def _bright_or_extreme(final: _Stack, profile: np.ndarray, model: np.ndarray,
                       params: CombineParameters) -> tuple[np.ndarray, dict]:
    """Pixels away from the traces brighter than the trace, and residuals in the extreme percentiles."""
    flags, counts = np.zeros(final.good.shape, bool), {}
    if not (params.outside_factor or params.clip_percentiles):
        return flags, counts
    variance = final.total_variance
    data = np.where(final.good, final.data, 0.0)
    weight = np.where(final.good & (variance > 0), 1.0 / np.where(variance > 0, variance, 1.0), 0.0)
    flux = np.sum(weight * model * data, axis=1) / np.maximum(np.sum(weight * model**2, axis=1), 1e-300)
    fitted = flux[:, None, :] * model
    if params.outside_factor:
        away = np.abs(model) < 1e-3 * profile.max(axis=1, keepdims=True)
        flags |= combine.bright_outside(final.data, final.good, variance, fitted, away, params.outside_factor)
        counts["outside_trace"] = int(flags.sum())
    if params.clip_percentiles:
        with np.errstate(invalid="ignore", divide="ignore"):
            z = np.where(final.good & ~flags, (final.data - fitted) / np.sqrt(variance), np.nan)
        low, high = np.nanpercentile(z, params.clip_percentiles)
        extreme = (z < low) | (z > high)
        counts["percentile"] = int(extreme.sum())
        flags |= extreme
    return flags, counts


def _weights(kind: str, final: _Stack, profile: np.ndarray) -> np.ndarray:
    """Pixel weights of the chosen kind, zero where a pixel is not used."""
    if kind == "ivm":  # read noise plus a smooth model of the Poisson variance: signal-independent
        vr, vp, vf = (final.variances[k] for k in ("var_rnoise", "var_poisson", "var_flat"))
        w = core.optimal_extract(np.where(final.good, final.data, 0.0), profile, vr, vp, vf, mask=final.good,
                                 reject_sigma=None, min_coverage=0.0, return_inverse_variance=True).inverse_variance
    elif kind == "poisson":
        variance = final.total_variance
        w = np.divide(1.0, variance, out=np.zeros_like(variance), where=variance > 0)
    elif kind == "exptime":
        w = np.broadcast_to(final.exptime[:, None, None], final.good.shape)
    else:
        w = np.ones(final.good.shape)
    return np.where(final.good, w, 0.0)


def _weighted_wavelength(wavelength: np.ndarray, weights: np.ndarray) -> np.ndarray:
    w = np.where(np.isfinite(wavelength), weights, 0.0)
    total = w.sum(axis=(0, 1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, np.sum(w * np.nan_to_num(wavelength), axis=(0, 1)) / total, np.nan)
