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
from scipy import sparse
from scipy.interpolate import BSpline
from scipy.sparse.linalg import spsolve

from ..optimal import optimal_extract
from .base import Profile, ProfileProblem, less_background, register

__all__ = ["Spline2DProfile", "SplineProfile", "fit_spline_profile", "offset_knots"]

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
    """

    offset_knots: np.ndarray
    column_knots: np.ndarray
    column_degree: int
    coefficients: np.ndarray
    chi2_per_pixel: float = np.nan
    effective_parameters: float = np.nan
    sampled_center: np.ndarray | None = None

    def evaluate(self, ny: int, center: np.ndarray) -> np.ndarray:
        """The profile ``(..., ny, nx)`` about the trace ``center`` (``(..., nx)``), normalised per column."""
        center = np.asarray(center, dtype=float)
        nx = center.shape[-1]
        per_column = self.coefficients @ _column_basis(nx, self.column_knots, self.column_degree).T
        u = np.arange(ny, dtype=float)[:, None] - center[..., None, :]
        if self.sampled_center is not None and self.sampled_center.shape == (nx,):
            # Beyond the sampled rows the spline is not fitted but extrapolated by its penalty, wildly for a
            # bright source; a shifted trace (jitter, nods) sees the edge value instead.
            u = np.clip(u, -self.sampled_center, ny - 1.0 - self.sampled_center)
        values = _evaluate_offsets(u, per_column, self.offset_knots)
        # Not clipped at zero: noisy wings must average out, not be rectified.
        total = values.sum(axis=-2, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(total > 0, values / total, 0.0)

    # A spline learnt from the data is only known on the pixel scale (see ProfileFit._derivatives).
    derivative_step: ClassVar[float] = 1.0
    column_degree_fitted: ClassVar[int] = 1
    """Degree along the dispersion of the fits of this kind."""

    @property
    def n_parameters(self) -> float:
        return self.effective_parameters

    def to_entry(self) -> dict[str, Any]:
        return {"offset_knots": self.offset_knots, "column_knots": self.column_knots,
                "column_degree": int(self.column_degree), "coefficients": self.coefficients}

    @classmethod
    def from_entry(cls, entry: Any, center: np.ndarray, ny: int) -> SplineProfile:
        return cls(np.asarray(entry.offset_knots), np.asarray(entry.column_knots), int(entry.column_degree),
                   np.asarray(entry.coefficients), sampled_center=np.asarray(center, float))

    @classmethod
    def fit(cls, problem: ProfileProblem, window: float | None = None,
            start: Profile | None = None) -> SplineProfile | None:
        """A spline with knots every ``window`` columns, alternated with the background of its scene if fitted.

        The first spline is fitted to the data less the background of the
        scene of ``start`` (a parametric profile; default the Gaussian); the
        background is then fitted again with that spline, and the spline to the
        data less it, ``_SCENE_PASSES`` times: the alternation approaches the
        joint fit of the spline and the background. None (with a warning) when
        the data cannot give a spline.
        """
        window = problem.window if window is None else window
        spline, shape = None, problem.gaussian if start is None else start
        for _ in range(_SCENE_PASSES if problem.background.fitted else 1):
            fitted = cls._fit_once(less_background(problem, shape), window)
            if fitted is None:
                break
            spline = shape = fitted
        return spline

    @classmethod
    def _fit_once(cls, problem: ProfileProblem, window: float) -> SplineProfile | None:
        gaussian = problem.gaussian
        try:
            model = fit_spline_profile(
                problem.image, problem.good, problem.var_rnoise, problem.var_poisson, problem.center,
                gaussian.evaluate(problem.ny, problem.center),
                core_half_width=max(3.0 * float(gaussian.sigma.max()), 2.0),
                window=window, column_degree=cls.column_degree_fitted,
                oversample=problem.oversample, smoothing=problem.smoothing, reject_sigma=problem.reject_sigma,
            )
        except ValueError as error:
            log.warning("Slit %s: %s; using the Gaussian profile", problem.name, error)
            return None
        return model if type(model) is cls else cls(**vars(model))


@register("spline2d")
class Spline2DProfile(SplineProfile):
    """A tensor-product spline profile, cubic along the dispersion too (``spline2d``)."""

    column_degree_fitted: ClassVar[int] = 3


_SCENE_PASSES = 2


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
) -> SplineProfile:
    """Fit a spline profile to a 2D slit image.

    Parameters
    ----------
    data, good : ndarray
        ``(ny, nx)`` background-subtracted image and good-pixel mask.
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

    Returns
    -------
    SplineProfile
    """
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
