"""Cross-dispersion profile as a tensor-product B-spline in (trace offset, column).

The pixel values of a slit, divided by nothing and weighted by their
signal-independent inverse variances, are fitted by ``D = f(x) S(u, x)`` where
``u = y - c(x)`` is the offset of a pixel centre from the trace, ``f(x)`` the
optimally extracted flux of the column and ``S`` a B-spline: cubic in ``u``
with knots at a fraction of a pixel near the core (a tilted or curved trace
samples ``u`` at sub-pixel steps, so the spline learns the *pixel-integrated*
shape) and coarser in the wings, and of degree 1 (``spline``: windows of
columns blended linearly) or 3 (``spline2d``) along the dispersion. A
second-difference penalty (a P-spline) keeps coefficients that the data barely
constrain smooth instead of wild. With ``f`` fixed the model is linear in the
coefficients, so one sparse least-squares solve fits millions of pixels.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from numpy.polynomial import legendre
from scipy import sparse
from scipy.interpolate import BSpline
from scipy.sparse.linalg import spsolve

from ..optimal import optimal_extract, sharp_along_dispersion
from ..robust import nanmedian
from ..scene import SceneBackground
from .base import PROFILES, Profile, ProfileProblem, register

__all__ = ["Spline2DProfile", "SplineProfile", "binned_coherent_chi2", "coherent_gain", "fit_spline_profile",
           "light_extent", "offset_knots", "support_knots", "support_sides"]

log = logging.getLogger(__name__)

_DEGREE_U = 3


@register("spline")
@dataclass
class SplineProfile(Profile):
    """A fitted tensor-product spline profile, linear along the dispersion between windows of columns (``spline``).

    Attributes
    ----------
    offset_knots : ndarray
        Full knot vector in trace offset ``u`` (pixels), cubic.
    column_knots : ndarray
        Full knot vector along the column index.
    column_degree : int
        Degree along the dispersion.
    coefficients : ndarray
        ``(n_offset, n_column)`` coefficients.
    chi2_per_pixel : float
        Weighted chi-square per good pixel of the fit.
    effective_parameters : float
        Effective number of free coefficients (the penalty makes it fewer than
        ``coefficients.size``).
    sampled_center : ndarray or None
        The trace of the data the spline was fitted to, ``(nx,)``: about another
        trace, each column's offsets are held within the rows that column sampled.
    wings : Profile or None
        With a background fitted together with the spline: a parametric
        shape with wings (a Moffat) that describes the light beyond the
        spline's support, rising from nothing within its last pixels
        (`_wing_taper`); None for no light beyond the support.
    wing_scale : float
        The amount of ``wings`` in the profile, fitted.
    support : float or (float, float)
        Half-width in pixels about the trace of the spline's support, or its
        half-widths below and above the trace (infinite for a spline fitted
        to background-subtracted data).
    trace_correction : ndarray or None
        ``(nx,)`` rows added to any trace the spline is evaluated about: what
        the fit with a background found the trace it was given to be off by
        (a Gaussian's centre wanders on a source that is not one).
    """

    offset_knots: np.ndarray
    column_knots: np.ndarray
    column_degree: int
    coefficients: np.ndarray
    chi2_per_pixel: float = np.nan
    effective_parameters: float = np.nan
    sampled_center: np.ndarray | None = None
    wings: Profile | None = None
    wing_scale: float = 1.0
    support: float | tuple[float, float] = np.inf
    trace_correction: np.ndarray | None = None

    def evaluate(self, ny: int, center: np.ndarray) -> np.ndarray:
        """The profile ``(..., ny, nx)`` about the trace ``center`` (``(..., nx)``), normalised per column."""
        values = self.values(ny, center)
        # Not clipped at zero: noisy wings must average out, not be rectified.
        total = values.sum(axis=-2, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(total > 0, values / total, 0.0)

    def values(self, ny: int, center: np.ndarray) -> np.ndarray:
        """The spline (and its wings) about ``center`` as fitted, before the normalisation of `evaluate`."""
        center = np.asarray(center, dtype=float)
        nx = center.shape[-1]
        sampled = self.sampled_center
        if self.trace_correction is not None:
            center = center + self.trace_correction
            sampled = None if sampled is None else sampled + self.trace_correction
        per_column = self.coefficients @ _column_basis(nx, self.column_knots, self.column_degree).T
        offset = np.arange(ny, dtype=float)[:, None] - center[..., None, :]
        u = offset
        if sampled is not None and sampled.shape == (nx,):
            # Beyond the sampled rows the spline is not fitted but extrapolated by its penalty, wildly for a
            # bright source; a shifted trace (jitter, nods) sees the edge value instead.
            u = np.clip(u, -sampled, ny - 1.0 - sampled)
        values = _evaluate_offsets(u, per_column, self.offset_knots)
        if self.wings is not None:
            values = values + self.wing_scale * _wing_taper(offset, self.support) * self.wings.evaluate(ny, center)
        return values

    # A spline learnt from the data is only known on the pixel scale (see ProfileFit.derivatives).
    derivative_step: ClassVar[float] = 1.0
    column_degree_fitted: ClassVar[int] = 1
    """Degree along the dispersion of the fits of this kind."""

    @property
    def n_parameters(self) -> float:
        return self.effective_parameters

    def to_entry(self) -> dict[str, Any]:
        entry = {"offset_knots": self.offset_knots, "column_knots": self.column_knots,
                 "column_degree": int(self.column_degree), "coefficients": self.coefficients}
        if np.all(np.isfinite(self.support)):
            entry["support"] = np.array(support_sides(self.support))
        if self.wings is not None:
            entry["wings"] = {"kind": PROFILES.name_of(type(self.wings)), **self.wings.to_entry()}
            entry["wing_scale"] = float(self.wing_scale)
        if self.trace_correction is not None:
            entry["trace_correction"] = np.asarray(self.trace_correction, float)
        return entry

    @classmethod
    def from_entry(cls, entry: Any, center: np.ndarray, ny: int) -> SplineProfile:
        wings = getattr(entry, "wings", None)
        if wings is not None:
            wings = PROFILES.lookup(str(wings.kind)).from_entry(wings, center, ny)
        correction = getattr(entry, "trace_correction", None)
        if correction is not None and np.shape(correction) != np.shape(center):
            raise ValueError(f"the profile's trace correction has {np.size(correction)} columns for {np.size(center)}")
        support = getattr(entry, "support", None)  # one number: symmetric
        return cls(np.asarray(entry.offset_knots), np.asarray(entry.column_knots), int(entry.column_degree),
                   np.asarray(entry.coefficients), sampled_center=np.asarray(center, float), wings=wings,
                   wing_scale=float(getattr(entry, "wing_scale", 1.0)),
                   support=np.inf if support is None else support_sides(support),
                   trace_correction=None if correction is None else np.asarray(correction, float))

    @classmethod
    def fit(cls, problem: ProfileProblem, window: float | None = None, wings: Profile | None = None,
            start: SplineProfile | None = None) -> SplineProfile | None:
        """A spline with knots every ``window`` columns, fitted with the background of its scene if there is one.

        The Gaussian of the trace fit gives the first amplitudes. With a
        background, ``wings`` (e.g. a fitted Moffat), in an amount fitted with
        the spline, is the light beyond the spline's support
        (`fit_spline_profile`). ``start``, a spline fitted with the background to
        the same problem (e.g. with other windows), gives the first amplitudes
        and trace correction instead: fewer passes are needed. None (with a
        warning) when the data cannot give a spline.
        """
        window = problem.window if window is None else window
        warm = start is not None and start.trace_correction is not None
        try:
            support = start.support if warm else _support(problem)
            model = cls._fit_once(problem, window, wings, start if warm else None, support)
            if not warm and problem.background.fitted:
                # The support was read off the Gaussian's scene, whose background leans where the Gaussian misfits
                # the source (a double, or a winged profile): read again off the spline's own scene, the light
                # reached 1-2 rows further on one side (seed 88456 S031, -1.8 %) and 4 rows less on the other.
                revised = _support(problem, model)
                if np.max(np.abs(np.subtract(support_sides(revised), support_sides(support)))) > 0.5:
                    log.debug("Slit %s: spline support revised from %s to %s", problem.name, support, revised)
                    model = cls._fit_once(problem, window, wings, model, revised)
        except ValueError as error:
            log.warning("Slit %s: %s; using the Gaussian profile", problem.name, error)
            return None
        return model if type(model) is cls else cls(**vars(model))

    @classmethod
    def _fit_once(cls, problem: ProfileProblem, window: float, wings: Profile | None, start: SplineProfile | None,
                  support: float | tuple[float, float]) -> SplineProfile:
        """`fit_spline_profile` on ``support``, from ``start`` (a spline fitted with the background) or the
        trace's Gaussian."""
        # The finely knotted core reaches as far as the light is seen: a Gaussian fitted to one peak of a double
        # is narrower than the source, and the coarse wing knots rang about its other peak.
        reach = max(support_sides(support)) - _SUPPORT_MARGIN
        return fit_spline_profile(
            problem.image, problem.good, problem.var_rnoise, problem.var_poisson, problem.center,
            (problem.gaussian if start is None else start).evaluate(problem.ny, problem.center),
            core_half_width=max(3.0 * float(problem.gaussian.sigma.max()), 2.0, reach if np.isfinite(reach) else 0.0),
            window=window, column_degree=cls.column_degree_fitted, oversample=problem.oversample,
            smoothing=problem.smoothing, reject_sigma=problem.reject_sigma,
            background=problem.background if problem.background.fitted else None, wings=wings, support=support,
            iterations=_PASSES if start is None else _WARM_PASSES,
            start_correction=None if start is None else start.trace_correction,
        )


def _support(problem: ProfileProblem, about: Profile | None = None) -> float | tuple[float, float]:
    """The half-widths of a spline's support below and above the trace: as far as light is seen on that side, and
    at least the Gaussian's core.

    A Gaussian fitted to one peak of a double-peaked source (or to the core of a
    very winged one) is narrower than the light: `light_extent` of the image
    less the background of the scene of ``about`` (default: the Gaussian)
    finds how far it reaches. Each
    side ends where its light does: rows beyond, on both sides of a source near
    the slit's edge, pin the background down where a symmetric support would
    leave it to be extrapolated from one side. The core is the Gaussian's
    median width (its widest, fitted across the two peaks of a double, would
    reach over the rows that pin the background).
    """
    support = _SUPPORT_SIGMA * float(np.median(problem.gaussian.sigma)) + _SUPPORT_MARGIN
    if not problem.background.fitted:
        return support

    about = problem.gaussian if about is None else about

    def extent():
        _, scene = problem.scene(about)
        return light_extent(problem.image - scene.background, problem.good, problem.variances.total(),
                            problem.center)

    return tuple(max(support, side + _SUPPORT_MARGIN) for side in problem.kept(("light extent", id(about)), extent))


def support_sides(support: float | tuple[float, float] | np.ndarray) -> tuple[float, float]:
    """A support's half-widths below and above the trace, from one number (symmetric) or a pair."""
    below, above = np.broadcast_to(np.asarray(support, float), (2,))
    return float(below), float(above)


def coherent_gain(problem: ProfileProblem, model: Profile, window: float | None = None,
                  cap: float = 5.0) -> tuple[float, int]:
    """What a spline could gain over the profile ``model``: the chi-square of its scene fit's coherent residuals.

    A spline changes the profile, the same in every column of a window; noise
    does not repeat from column to column. The residuals of the scene fit
    with ``profile`` are binned by offset from the trace (bins of the spline's
    core knot spacing, over its support) and by window of ``window`` columns
    (the whole slit in two, as the linear blend of a whole-slit spline); each
    bin's best correction of the profile, ``f(x)`` times a constant, lowers
    the chi-square by ``(sum w f r)**2 / sum w f**2``. Returns the sum over
    the bins and their number: where the profile is right the sum is a
    chi-square with about that many degrees of freedom, so a spline could
    only fit noise. Pixels' residuals are capped at ``cap`` sigma (unflagged
    cosmic rays are no one's profile).
    """
    ny, nx = problem.image.shape
    below, above = support_sides(_support(problem) if problem.background.fitted else ny)
    profile, scene = problem.scene(model)
    flux = np.nan_to_num(scene.flux)
    sky = getattr(scene, "background", 0.0)
    variance = problem.variances.total()
    u = np.arange(ny)[:, None] - np.asarray(problem.center, float)[None, :]
    use = problem.good & (variance > 0) & (u > -below) & (u < above) & np.isfinite(problem.image)
    sigma = np.sqrt(np.where(use, variance, 1.0))
    chi = np.clip(np.where(use, problem.image - flux * profile - sky, 0.0) / sigma, -cap, cap)
    fw = np.broadcast_to(flux, (ny, nx)) / sigma  # the profile correction's derivative, in sigma
    blocks = 2 if window is None or window >= nx else max(1, round(nx / window))
    block = np.minimum(np.arange(nx) * blocks // nx, blocks - 1)
    return binned_coherent_chi2(u, block[None, :], blocks, chi, fw, use, max(below, above), 1.0 / problem.oversample)


def binned_coherent_chi2(offset: np.ndarray, block: np.ndarray, n_blocks: int, chi: np.ndarray, fw: np.ndarray,
                         use: np.ndarray, support: float, step: float) -> tuple[float, int]:
    """The chi-square a correction of the profile, constant in each bin, would remove, and the number of bins.

    Pixels ``use`` are binned by ``offset`` from the trace (bins of ``step``
    over ``[-support, support]``) and by ``block`` of columns (``0`` to
    ``n_blocks - 1``, broadcast to ``offset``); a bin's best correction,
    ``f(x)`` times a constant, lowers the chi-square by ``(sum fw chi)**2 /
    sum fw**2``, with ``chi`` the residuals and ``fw`` the amplitudes, both
    in units of sigma. Shared by `coherent_gain` and the joint fit of
    `optx_combine`.
    """
    offset_bin = np.floor((offset + support) / step).astype(int)
    n_offsets = int(np.ceil(2 * support / step)) + 1
    index = (offset_bin * n_blocks + block)[use]
    size = n_offsets * n_blocks
    a = np.bincount(index, (fw * chi)[use], size)
    b = np.bincount(index, (fw * fw)[use], size)
    informative = b > 0
    return float(np.sum(a[informative] ** 2 / b[informative])), int(informative.sum())


def light_extent(source: np.ndarray, good: np.ndarray, variance: np.ndarray, center: np.ndarray,
                 threshold: float = 4.0, fraction: float = 0.01, baseline_degree: int = 2,
                 passes: int = 3) -> tuple[float, float]:
    """How far below and above the trace light is seen: on each side, the outermost whole-row offset whose median
    over the columns is significant, in a run of significant offsets from the trace.

    The median over the columns of the ``(ny, nx)`` ``source`` (background
    subtracted) at each integer offset from ``center`` is significant when it
    exceeds ``threshold`` times its noise (1.25 sigma over the square root of
    the columns, for a median) and ``fraction`` of the largest such median
    (a bright source's far wings are seen, but are no reason to widen a
    spline that the background must then be told apart from). Medians are
    blind to the cosmic rays that a sum over the columns would see everywhere.

    The background subtracted is a first guess (a Gaussian's scene takes part
    of a double-peaked source into its background, and leaves a bowl about
    the trace): a polynomial of ``baseline_degree`` in the offset, fitted to
    the medians beyond the light found so far, is taken out of them, over a
    few ``passes``.
    """
    ny, nx = source.shape
    offsets = np.rint(np.arange(ny)[:, None] - center[None, :]).astype(int)
    lowest = offsets.min()
    level = np.full(offsets.max() - lowest + 1, -np.inf)
    noise = np.full(level.size, np.inf)
    at = good & (variance > 0) & np.isfinite(source)
    index = offsets - lowest
    count = np.bincount(index[at], minlength=level.size)
    enough = count >= max(8, nx // 4)
    level[enough] = _offset_medians(index, at, source, count)[enough]
    noise[enough] = 1.25 * np.sqrt(_offset_medians(index, at, variance, count)[enough] / count[enough])
    offset_of = np.arange(level.size) + lowest
    measured = np.isfinite(level)
    extent = (0.0, 0.0)
    for _ in range(passes):
        significant = (level > threshold * noise) & (level > fraction * level.max())
        found = _significant_run(significant, lowest)
        if found == extent:
            break
        extent = found
        beyond = measured & ((offset_of < -extent[0] - 1) | (offset_of > extent[1] + 1))
        degree = min(baseline_degree, int(beyond.sum()) - 3)
        if degree < 0:
            break
        weights = 1.0 / noise[beyond]
        coeffs = np.polynomial.polynomial.polyfit(offset_of[beyond], level[beyond], degree, w=weights)
        level = np.where(measured, level - np.polynomial.polynomial.polyval(offset_of, coeffs), level)
    return extent


def _offset_medians(index: np.ndarray, at: np.ndarray, values: np.ndarray, count: np.ndarray) -> np.ndarray:
    """The median of the ``(ny, nx)`` ``values`` at each offset ``index`` from the trace, over the pixels ``at``.

    Where every column has one row at each offset (the rows' offsets step by
    one: no trace centre exactly half a row off a row), the offsets and columns
    make a grid, and its rows' medians are taken at once; else the pixels are
    grouped by offset (`_grouped_median`).
    """
    if not np.all(np.diff(index, axis=0) == 1):
        return _grouped_median(index[at], values[at], count)
    grid = np.full((count.size, index.shape[1]), np.nan)
    grid[index[at], np.nonzero(at)[1]] = values[at]
    return nanmedian(grid, axis=-1)


def _grouped_median(group: np.ndarray, values: np.ndarray, count: np.ndarray) -> np.ndarray:
    """The median of ``values`` in each group (``group`` its index, ``count`` the sizes), as `numpy.median` gives
    it; NaN for an empty group. One sort for all groups."""
    ordered = values[np.lexsort((values, group))]
    start = np.concatenate([[0], np.cumsum(count)[:-1]])
    low = ordered[np.minimum(start + (count - 1) // 2, ordered.size - 1)] if ordered.size else np.zeros(count.size)
    high = ordered[np.minimum(start + count // 2, ordered.size - 1)] if ordered.size else np.zeros(count.size)
    return np.where(count > 0, np.where(low == high, low, 0.5 * (low + high)), np.nan)


def _significant_run(significant: np.ndarray, lowest: int) -> tuple[float, float]:
    """The farthest significant offsets below and above zero, walking out from it (one gap allowed)."""
    extent = {-1: 0.0, 1: 0.0}
    for direction in extent:
        offset, gap = 0, 0
        while 0 <= offset - lowest < significant.size and gap < 2:
            if significant[offset - lowest]:
                extent[direction], gap = max(extent[direction], abs(offset)), 0
            else:
                gap += 1
            offset += direction
    return extent[-1], extent[1]


@register("spline2d")
class Spline2DProfile(SplineProfile):
    """A tensor-product spline profile, cubic along the dispersion too (``spline2d``)."""

    column_degree_fitted: ClassVar[int] = 3


_PASSES, _WARM_PASSES = 5, 3
"""Passes of amplitudes, spline and trace correction of a spline fitted with the background, from the trace's
Gaussian and from another spline."""
_SUPPORT_SIGMA, _SUPPORT_MARGIN = 2.5, 1.5
"""With a fitted background the spline is free within this many Gaussian sigma of the trace, plus a margin in
pixels (and no further than leaves `_BACKGROUND_ROWS` rows of the slit outside)."""
_BACKGROUND_ROWS = 6
"""Rows of a column that the spline's support leaves to the background, at least (where the slit allows): with
fewer, the polynomial across the slit is not pinned down outside the source and trades with the spline."""


def offset_knots(half_core: float, low: float, high: float, oversample: float = 4.0,
                 wing_spacing: float = 2.0) -> np.ndarray:
    """Cubic knot vector in offset: ``1/oversample`` pixel steps within ``half_core``, coarser beyond.

    Parameters
    ----------
    half_core : float
        Half-width of the finely sampled core, in pixels.
    low, high : float
        Range of offsets the spline must cover (the slit seen from the trace).
    oversample : float
        Knots per pixel in the core.
    wing_spacing : float
        Knot spacing in the wings, in pixels.
    """
    step = 1.0 / oversample
    core = np.arange(-half_core, half_core + step / 2, step)
    left = np.arange(core[0] - wing_spacing, low - wing_spacing, -wing_spacing)[::-1]
    right = np.arange(core[-1] + wing_spacing, high + wing_spacing, wing_spacing)
    interior = np.concatenate([left, core, right])
    return np.concatenate([[interior[0]] * _DEGREE_U, interior, [interior[-1]] * _DEGREE_U])


def column_knots(nx: int, window: float, degree: int) -> np.ndarray:
    """Knot vector along the columns with about ``window`` columns between knots."""
    n_intervals = max(1, round((nx - 1) / window))
    interior = np.linspace(0.0, nx - 1.0, n_intervals + 1)
    return np.concatenate([[interior[0]] * degree, interior, [interior[-1]] * degree])


def fit_spline_profile(
    data: np.ndarray,
    good: np.ndarray,
    var_rnoise: np.ndarray,
    var_poisson: np.ndarray | None,
    center: np.ndarray,
    start_profile: np.ndarray,
    core_half_width: float,
    window: float = 64.0,
    column_degree: int = 1,
    oversample: float = 4.0,
    smoothing: float = 30.0,
    reject_sigma: float = 5.0,
    iterations: int = 3,
    background: SceneBackground | None = None,
    wings: Profile | None = None,
    support: float = np.inf,
    start_correction: np.ndarray | None = None,
) -> SplineProfile:
    """Fit a spline profile to a 2D slit image, with its background if it still holds one.

    With ``background``, the spline and the background's coefficients are
    one penalised least-squares problem for given amplitudes, and amplitudes
    (from the scene fit with the last profile) and shape alternate. A shape
    free over the whole slit could then take up any polynomial across the
    slit from the background and leave the flux scale undetermined, so the
    spline is free only within ``support`` pixels of the trace (and ends
    there with zero value and slope), leaving at least `_BACKGROUND_ROWS`
    rows of a column to pin the background down. ``wings`` (e.g. a fitted
    Moffat), in an amount fitted with the rest, is the light beyond the
    support, rising from nothing over the support's last pixels where the
    spline meets it; without, there is no light beyond the support. The
    trace's smooth wander along the dispersion is corrected in the same
    problem.

    Parameters
    ----------
    data, good : ndarray
        ``(ny, nx)`` image (background-subtracted unless ``background``) and good-pixel mask.
    var_rnoise, var_poisson : ndarray
        Variances as for `~jwst_optextract.core.optimal.optimal_extract`.
    center : ndarray
        Trace centre per column.
    start_profile : ndarray
        A first profile (e.g. the Gaussian fit), for the first amplitudes.
    core_half_width : float
        Half-width in pixels of the finely knotted core (a few sigma).
    window : float
        Columns between knots along the dispersion.
    column_degree : int
        1 for ``spline`` (windows blended linearly), 3 for ``spline2d``.
    oversample : float
        Knots per pixel in the core.
    smoothing : float
        Weight of the second-difference penalty, in chi-square units: the
        data outweigh it where they are informative and it smooths the shape
        where they are not.
    reject_sigma : float
        Pixels further above the model than this are left out (cosmic rays).
    iterations : int
        Alternations of amplitudes and spline fit.
    background : SceneBackground, optional
        The background fitted together with the spline (`SceneBackground.basis`).
    wings : Profile, optional
        With ``background``: the shape of the light beyond ``support``; None for none.
    support : float
        With ``background``: the largest half-width in pixels of the spline's support about the trace.
    start_correction : ndarray, optional
        With ``background``: a first trace correction ``(nx,)``, from a spline whose profile is
        ``start_profile``.

    Returns
    -------
    SplineProfile
    """
    if background is not None and background.fitted:
        return _fit_with_background(data, good, var_rnoise, var_poisson, center, start_profile, core_half_width,
                                    window, column_degree, oversample, smoothing, reject_sigma, iterations,
                                    background, wings, support, start_correction)
    ny, nx = data.shape
    rows = np.arange(ny, dtype=float)[:, None]
    u = rows - center[None, :]
    knots_u = offset_knots(core_half_width, u.min() - 0.5, u.max() + 0.5, oversample)
    knots_x = column_knots(nx, window, column_degree)
    n_u = len(knots_u) - _DEGREE_U - 1
    n_x = len(knots_x) - column_degree - 1
    penalty = smoothing * _penalty(n_u, n_x)
    # The extraction weighs (and may reject) only pixels on its profile. Where a Gaussian start is exactly
    # zero (beyond ~8 sigma) the spline's far wings would have no data and be extrapolated by the penalty.
    profile = np.where(start_profile != 0, start_profile, np.finfo(np.float32).tiny)
    model = None
    for iteration in range(iterations):
        result = optimal_extract(data, profile, var_rnoise, var_poisson, mask=good, min_coverage=0.0,
                                 reject_sigma=reject_sigma, return_inverse_variance=True)
        flux = np.nan_to_num(result.flux)
        iv = result.inverse_variance
        use = (iv > 0) & (flux[None, :] != 0)
        if use.sum() < 2 * len(knots_u):
            raise ValueError("too few pixels with signal to fit a spline profile")
        last = iteration == iterations - 1  # the effective parameters (a dense solve) of the final fit only
        coefficients, chi2, effective = _solve_spline(data, iv, flux, u, use, knots_u, knots_x, column_degree,
                                                      n_u, n_x, penalty, with_effective=last)
        model = SplineProfile(knots_u, knots_x, column_degree, coefficients, chi2, effective,
                              sampled_center=np.asarray(center, float))
        profile = model.evaluate(ny, center)
    return model


def _fit_with_background(data, good, var_rnoise, var_poisson, center, start_profile, core_half_width, window,
                         column_degree, oversample, smoothing, reject_sigma, iterations, background, wings,
                         support, start_correction=None) -> SplineProfile:
    """`fit_spline_profile` with the background's coefficients in the same least-squares problem.

    Besides the spline's and the background's, the design has a column for
    the amount of ``wings`` and, from the second pass on, columns for a
    smooth shift of the trace, linearised about the last spline: fitted
    alone to the data, the spline would take the trace's wander (a Gaussian
    centre on a source that is not one) into its shape, smeared.
    """
    ny, nx = data.shape
    center = np.asarray(center, float)
    rows = np.arange(ny, dtype=float)[:, None]
    support = _within_room(support, rows - center[None, :])
    knots_u = support_knots(core_half_width, support, oversample)
    knots_x = column_knots(nx, window, column_degree)
    n_u = len(knots_u) - _DEGREE_U - 1
    n_x = len(knots_x) - column_degree - 1
    penalty = smoothing * _penalty(n_u, n_x)
    rows_basis, columns_basis = background.basis(ny, nx)
    sky_design = sparse.kron(sparse.csr_array(rows_basis), columns_basis, format="csr")  # every pixel, once a fit
    total = start_profile.sum(axis=0)
    profile = np.divide(start_profile, total, out=np.zeros_like(start_profile, dtype=float), where=total > 0)
    correction = np.zeros(nx) if start_correction is None else np.asarray(start_correction, float)
    model = None
    for iteration in range(iterations):
        # Outliers are rejected from the first pass, against the start: a double-peaked source's misfit by the
        # Gaussian is smooth along the dispersion and stays (the scene fit's neighbour test), while an unflagged
        # hot pixel left in drew the smooth background through the source (seed 77123 S076: the first flux was
        # 5 % of the truth, and five passes climbed back to 76 %).
        scene = background.fit(data, profile, var_rnoise, var_poisson, mask=good, min_coverage=0.0,
                               reject_sigma=reject_sigma, return_inverse_variance=True,
                               with_variance=False)
        flux = np.nan_to_num(scene.flux)
        iv = scene.inverse_variance
        effective_center = center + correction
        u = rows - effective_center[None, :]
        beyond = (u < -support[0]) | (u > support[1])
        if (iv > 0)[~beyond].sum() < 2 * len(knots_u) or not flux.any():
            raise ValueError("too few pixels with signal to fit a spline profile")
        last = iteration == iterations - 1
        n_spline, n_sky = n_u * n_x, sky_design.shape[1]
        shifts = _shift_images(model, flux, center, ny) if model is not None and not last else []
        pass_wings = wings
        while True:
            extra = list(shifts)
            if pass_wings is not None:
                extra.insert(0, flux[None, :] * _wing_taper(u, support) * pass_wings.evaluate(ny, effective_center))
            design, pixels = _joint_design(u, iv > 0, flux, knots_u, knots_x, column_degree, sky_design,
                                           np.array(extra) if extra else None)
            solution, chi2, effective = _solve_rejecting(design, data[pixels], iv[pixels], penalty, n_u, n_x, last,
                                                         reject_sigma, pixels, flux, (ny, nx))
            if pass_wings is None or solution[n_spline + n_sky] >= 0:
                break
            # Light beyond the support is never negative: wings fitted below zero trade with the background.
            log.debug("spline pass %d: the wings' amount fitted below zero; none in this pass", iteration)
            pass_wings = None
        coefficients = solution[:n_spline].reshape(n_u, n_x)
        amounts = solution[n_spline + n_sky:]
        scale = 0.0
        if pass_wings is not None:
            scale, amounts = float(amounts[0]), amounts[1:]
        if amounts.size:
            correction = _bounded_correction(correction, _shift_basis(nx) @ amounts)
        model = SplineProfile(knots_u, knots_x, column_degree, coefficients, chi2, effective,
                              sampled_center=center, wings=pass_wings, wing_scale=scale, support=support,
                              trace_correction=correction)
        profile = model.evaluate(ny, center)
        log.debug("spline pass %d: support %.2f to %.2f px, chi2 %.3f, wing scale %.3f, trace correction %.3f to "
                  "%.3f px", iteration, -support[0], support[1], chi2, scale, correction.min(), correction.max())
    return model


_TAPER_WIDTH = 2.0
"""Pixels inside the spline's support over which the wings rise from nothing to whole."""


def _wing_taper(offset: np.ndarray, support: float | tuple[float, float]) -> np.ndarray:
    """The share of the wings at each offset from the trace: none well inside the support, all beyond it.

    The rise (a smoothstep over `_TAPER_WIDTH` pixels) lies where the spline
    still has freedom to meet it, so the profile has no jump at the support's
    edge; the core stays the spline's alone, so the wings' amount is set by
    the light beyond the core, not by the spline's penalty.
    """
    below, above = support_sides(support)
    edge = np.where(offset < 0, below, above)
    t = np.clip((np.abs(offset) - (edge - _TAPER_WIDTH)) / _TAPER_WIDTH, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _within_room(support: float | tuple[float, float], offset: np.ndarray, step: float = 0.25) -> tuple[float, float]:
    """``support`` (below and above the trace) narrowed until `_BACKGROUND_ROWS` rows lie wholly outside it in the
    median column, the wider side first.

    ``offset`` is ``(ny, nx)``, each pixel's signed offset in rows from the trace.
    """
    below, above = support_sides(support)
    keep = min(_BACKGROUND_ROWS, offset.shape[0] - 1)
    lowest, highest = np.sort(offset, axis=0)[[0, -1]]
    below, above = min(below, float(np.median(-lowest)) + 0.5), min(above, float(np.median(highest)) + 0.5)

    def outside(below, above):  # rows wholly outside, in the median column
        return np.median(np.sum((offset < -below - 0.5) | (offset > above + 0.5), axis=0))

    while outside(below, above) < keep and max(below, above) > step:
        if below >= above:
            below -= step
        else:
            above -= step
    return below, above


_REJECT_PASSES = 3
"""Solves of one spline pass, each without the pixels the last one found to be outliers."""
_SHIFT_DEGREES = (2, 3, 4)
"""Legendre degrees along the dispersion of the trace correction fitted with a spline: the constant and the
slope of a shift are a spline shape of their own (the offset knots, and the linear blend along the columns)."""


_MAX_SHIFT_STEP = 0.5
"""Rows a pass may move the trace correction by, at most (its step is linearised about the last spline)."""
_MAX_CORRECTION = 1.5
"""Rows the trace correction may reach, at most: the trace was fitted; a spline only refines it."""


def _bounded_correction(correction: np.ndarray, step: np.ndarray) -> np.ndarray:
    """``correction + step``, the step scaled down to `_MAX_SHIFT_STEP` and the sum to `_MAX_CORRECTION`.

    The shift is linearised about the last pass's spline: on a faint source in a short slit its undamped
    steps ran the correction to -15 px in three passes, and the spline to nothing (-100 %).
    """
    largest = float(np.max(np.abs(step), initial=0.0))
    if largest > _MAX_SHIFT_STEP:
        step = step * (_MAX_SHIFT_STEP / largest)
    total = correction + step
    largest = float(np.max(np.abs(total), initial=0.0))
    return total * (_MAX_CORRECTION / largest) if largest > _MAX_CORRECTION else total


def _shift_basis(nx: int) -> np.ndarray:
    return legendre.legvander(np.linspace(-1.0, 1.0, nx), max(_SHIFT_DEGREES))[:, list(_SHIFT_DEGREES)]


def _shift_images(model: SplineProfile, flux: np.ndarray, center: np.ndarray, ny: int,
                  step: float = 0.05) -> np.ndarray:
    """``(K, ny, nx)``: the change of ``f S`` per unit of each Legendre term of a shift of the trace."""
    slope = flux[None, :] * (model.values(ny, center + step) - model.values(ny, center - step)) / (2 * step)
    return slope[None, :, :] * _shift_basis(center.size).T[:, None, :]


def support_knots(half_core: float, support: float | tuple[float, float], oversample: float = 4.0,
                  wing_spacing: float = 2.0) -> np.ndarray:
    """Cubic knots on ``[-below, above]`` of ``support``: ``1/oversample`` pixel steps within ``half_core`` (and the
    support), coarser beyond."""
    below, above = support_sides(support)
    step = 1.0 / oversample
    core = np.arange(-min(half_core, below), min(half_core, above) + step / 2, step)

    def wing(start: float, end: float) -> np.ndarray:  # from the core's last knot out to the support's edge
        gap = end - start
        n_wing = int(np.ceil(gap / wing_spacing - 1e-9)) if gap > 1e-9 else 0
        return start + gap * np.arange(1, n_wing + 1) / max(n_wing, 1)

    interior = np.concatenate([-wing(-core[0], below)[::-1], core, wing(core[-1], above)])
    return np.concatenate([[interior[0]] * _DEGREE_U, interior, [interior[-1]] * _DEGREE_U])


def _design(x: np.ndarray, knots: np.ndarray, degree: int) -> tuple[np.ndarray, np.ndarray]:
    """Non-zero B-spline values and their indices at ``x``: two ``(len(x), degree + 1)`` arrays.

    scipy's design matrix stores exactly ``degree + 1`` entries per row.
    """
    lo, hi = knots[degree], knots[-degree - 1]
    matrix = BSpline.design_matrix(np.clip(x, lo, hi), knots, degree)
    shape = (len(x), degree + 1)
    return matrix.data.reshape(shape), matrix.indices.reshape(shape)


def _column_basis(nx: int, knots: np.ndarray, degree: int) -> np.ndarray:
    """Dense ``(nx, n_basis)`` basis along the columns."""
    values, index = _design(np.arange(nx, dtype=float), knots, degree)
    dense = np.zeros((nx, len(knots) - degree - 1))
    np.add.at(dense, (np.arange(nx)[:, None], index), values)
    return dense


def _evaluate_offsets(u: np.ndarray, per_column: np.ndarray, knots_u: np.ndarray) -> np.ndarray:
    """``sum_j B_j(u[y, x]) per_column[j, x]`` for every pixel; zero outside the knots."""
    lo, hi = knots_u[_DEGREE_U], knots_u[-_DEGREE_U - 1]
    values, index = _design(u.reshape(-1), knots_u, _DEGREE_U)
    cols = np.broadcast_to(np.arange(u.shape[-1]), u.shape).reshape(-1, 1)
    result = np.sum(values * per_column[index, cols], axis=-1).reshape(u.shape)
    return np.where((u >= lo) & (u <= hi), result, 0.0)


def _solve_spline(data, iv, flux, u, use, knots_u, knots_x, degree_x, n_u, n_x, penalty, with_effective=True):
    """Weighted, penalised least squares for the spline coefficients."""
    y_idx, x_idx = np.nonzero(use)
    vu, iu = _design(u[y_idx, x_idx], knots_u, _DEGREE_U)
    vx, ix = _design(x_idx.astype(float), knots_x, degree_x)
    weight = np.sqrt(iv[y_idx, x_idx])
    # Tensor product of the two basis rows of every pixel, times its amplitude.
    cols = (iu[:, :, None] * n_x + ix[:, None, :]).reshape(y_idx.size, -1)
    vals = (vu[:, :, None] * vx[:, None, :]).reshape(y_idx.size, -1) * (flux[x_idx] * weight)[:, None]
    design = sparse.csr_array((vals.ravel(), cols.ravel(), np.arange(0, vals.size + 1, vals.shape[1])),
                              shape=(y_idx.size, n_u * n_x))
    target = data[y_idx, x_idx] * weight
    normal = (design.T @ design).tocsc()
    # Coefficients that no data constrain (rows outside the slit's good pixels)
    # are held at zero; the curvature penalty alone would extrapolate them
    # linearly, and the profile's normalisation over the slit would inherit that.
    strength = max(penalty.diagonal().max(), 1.0)
    unconstrained = normal.diagonal() < strength  # less information than the penalty carries
    ridge = sparse.diags_array(np.where(unconstrained, strength, 0.0))
    regularised = normal + penalty + ridge
    coefficients = spsolve(regularised, design.T @ target)
    resid = target - design @ coefficients
    effective = _effective_parameters(normal, regularised) if with_effective else np.nan
    return coefficients.reshape(n_u, n_x), float(np.mean(resid**2)), effective


def _joint_design(u, use, flux, knots_u, knots_x, degree_x, sky_design, extra=None):
    """The unweighted design of the spline, the background and ``extra`` on the pixels ``use``.

    Columns: the spline's coefficients (offset basis times column basis,
    times the amplitude ``flux`` of the pixel's column), the background's
    (``sky_design``: ``L_j(y) S_m(x)`` of `SceneBackground.basis` on every
    pixel, row ``y * nx + x``), and one per ``(K, ny, nx)`` image of
    ``extra``. Returns the sparse matrix and the index of its rows' pixels.
    """
    pixels = np.nonzero(use)
    y_idx, x_idx = pixels
    n_x = len(knots_x) - degree_x - 1
    n_spline = (len(knots_u) - _DEGREE_U - 1) * n_x
    vu, iu = _design(u[pixels], knots_u, _DEGREE_U)
    vx, ix = _design(x_idx.astype(float), knots_x, degree_x)
    cols = (iu[:, :, None] * n_x + ix[:, None, :]).reshape(y_idx.size, -1)
    vals = (vu[:, :, None] * vx[:, None, :]).reshape(y_idx.size, -1) * flux[x_idx, None]
    spline = sparse.csr_array((vals.ravel(), cols.ravel(), np.arange(0, vals.size + 1, vals.shape[1])),
                              shape=(y_idx.size, n_spline))
    sky = sky_design[y_idx * u.shape[1] + x_idx]
    blocks = [spline, sky] + ([] if extra is None else [sparse.csr_array(extra[:, y_idx, x_idx].T)])
    return sparse.hstack(blocks, format="csr"), pixels


def _solve_rejecting(design, target, weights, penalty, n_u, n_x, with_effective, reject_sigma, pixels=None,
                     flux=None, shape=None):
    """`_solve_joint`, again without the pixels it leaves more than ``reject_sigma`` above the model, a few times.

    The outliers are judged against this spline (the scene fit judged them against the last profile). Given the
    rows' ``pixels`` (indices into an image of ``shape``) and the columns' ``flux``, only those that also stand out
    from the same row of the neighbouring columns (`~jwst_optextract.core.optimal.sharp_along_dispersion`): the
    spline being learnt misses a bright source's shape smoothly along the dispersion, by many sigma, and rejecting
    those pixels kept it from learning it.
    """
    for _ in range(_REJECT_PASSES):
        solution, chi2, effective = _solve_joint(design, target, weights, penalty, n_u, n_x, with_effective)
        chi = (target - design @ solution) * np.sqrt(weights)
        outliers = (weights > 0) & (chi > (reject_sigma or np.inf))
        if outliers.any() and pixels is not None:
            image = np.full((1, *shape), np.inf)
            image[(0, *pixels)] = np.where(weights > 0, chi, np.inf)
            candidates = np.flatnonzero(outliers)
            at = (np.zeros(candidates.size, int), pixels[0][candidates], pixels[1][candidates])
            outliers[candidates] = sharp_along_dispersion(image, flux[None, :], at, reject_sigma)
        if not outliers.any():
            break
        weights = np.where(outliers, 0.0, weights)
    return solution, chi2, effective


def _solve_joint(design, target, weights, penalty, n_u, n_x, with_effective):
    """Penalised weighted least squares of `_joint_design`'s columns: the solution, chi-square per pixel and the
    spline's effective parameters (NaN unless ``with_effective``).

    The spline's first and last two offset coefficients are held at zero,
    so that it ends at the edges of its support with zero value and slope
    (no polynomial across the slit can then trade with it); coefficients
    that no data constrain are held at zero too (those of the spline where
    they carry less information than the penalty).
    """
    n_spline = n_u * n_x
    n = design.shape[1]
    weighted = design.multiply(weights[:, None]).tocsr()
    normal = (design.T @ weighted).tocsc()
    penalty = sparse.block_diag([penalty, sparse.csc_array((n - n_spline, n - n_spline))], format="csc")
    strength = max(penalty.diagonal().max(), 1.0)
    diagonal = normal.diagonal()
    top = max(diagonal.max(), 1e-300)
    ends = np.zeros((n_u, n_x), bool)
    ends[:2] = ends[-2:] = True
    hold = np.r_[np.where(ends.ravel(), 1e9 * max(top, strength), np.where(diagonal[:n_spline] < strength,
                                                                           strength, 0.0)),
                 np.where(diagonal[n_spline:] < 1e-12 * top, top, 0.0)]
    regularised = (normal + penalty + sparse.diags_array(hold)).tocsc()
    solution = spsolve(regularised, weighted.T @ target)
    resid2 = weights * (target - design @ solution) ** 2
    used = weights > 0
    effective = (_effective_parameters(normal[:n_spline, :n_spline], regularised[:n_spline, :n_spline])
                 if with_effective else np.nan)
    return solution, float(resid2[used].sum() / max(used.sum(), 1)), effective


def _effective_parameters(normal, regularised, dense_limit: int = 4000) -> float:
    """Effective number of parameters of the penalised fit, ``trace((N + R)^-1 N)``.

    Exact (dense) up to ``dense_limit`` coefficients; beyond, the diagonal
    approximation, which undercounts coefficients the penalty couples.
    """
    n = normal.shape[0]
    if n <= dense_limit:
        return float(np.trace(np.linalg.solve(regularised.toarray(), normal.toarray())))
    return float(np.sum(normal.diagonal() / np.maximum(regularised.diagonal(), 1e-300)))


def _penalty(n_u: int, n_x: int) -> sparse.csc_array:
    """Second differences along the offset and along the columns (P-spline penalty)."""
    d_u = sparse.diags_array([1.0, -2.0, 1.0], offsets=[0, 1, 2], shape=(max(n_u - 2, 1), n_u))
    pen = sparse.kron(d_u.T @ d_u, sparse.eye_array(n_x))
    if n_x > 2:
        d_x = sparse.diags_array([1.0, -2.0, 1.0], offsets=[0, 1, 2], shape=(n_x - 2, n_x))
        pen = pen + sparse.kron(sparse.eye_array(n_u), d_x.T @ d_x)
    return sparse.csc_array(pen)
