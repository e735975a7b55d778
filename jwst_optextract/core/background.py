"""Background models of 2D/3D spectra and the variance of each estimate.

Arrays are shaped ``(..., ny, nx)`` (dispersion last, leading axes =
integrations); ``mask`` is True for pixels that may be used for the background
(good pixels *outside* the source). Every method returns a
`BackgroundEstimate`: the model at every pixel, NaN where it cannot be
estimated, and the variance of that model split like the pipeline's variance
arrays into Poisson, read-noise and flat-field parts.

Methods, and when to use them:

- `smooth_background` (the default of the step): a tensor-product model, a
  polynomial of degree ``degree`` across the slit times a cubic B-spline along
  the dispersion with knots every ``knot_spacing`` columns, fitted by weighted
  least squares to every background pixel at once. The background under the
  source is predicted from hundreds of pixels, so its noise adds almost nothing
  to the extracted flux. Use it whenever the background changes smoothly along
  the dispersion on scales longer than the knot spacing.
- `poly_background`: an independent polynomial across the slit in every column
  (jwst ``extract_1d``'s ``bkg_order``). For backgrounds with structure on the
  scale of a few columns (sky lines, edges of a stray-light feature); each
  column's model has the noise of the ~ny pixels it used.
- `poly_rows_background`: a polynomial *along the dispersion* in every row,
  interpolated across the rows that the source fills. For backgrounds flat
  across the slit that vary along the dispersion, or when the slit is too
  short for a cross-slit fit.
- `column_background`: a per-column median or sigma-clipped mean of the
  background rows. The simplest and most robust; for flat backgrounds.
- `image2d_background`: photutils ``Background2D`` on a grid of boxes, median
  filtered and interpolated. For large images with a sparse source (slitless
  data, wide slits).
- `combine_exposures`: dedicated background exposures or the other nods of
  a nodded observation, median- or mean-combined.

Sigma clipping uses a signal-independent noise model (read noise and flat
variances as given, and a Poisson variance proportional to the *model*, scaled
by the data-derived ``var_poisson``), so that a pixel that fluctuates low is
not given more weight than one that fluctuates high, which would bias faint
backgrounds low.

The reported variance is the variance of the *fitted model* at each pixel
(``phi^T C phi`` for basis values ``phi`` and coefficient covariance ``C``),
not a pixel's variance. The model errors are correlated between pixels (all
the rows of a column share one polynomial); added to diagonal variance arrays
they are exact for each pixel but understate the error of a sum over many
pixels of one column. For `smooth_background` they are tiny anyway.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass

import numpy as np
from numpy.polynomial import legendre
from scipy import sparse
from scipy.interpolate import BSpline

__all__ = [
    "BackgroundEstimate",
    "column_background",
    "combine_exposures",
    "image2d_background",
    "poly_background",
    "poly_rows_background",
    "smooth_background",
]

log = logging.getLogger(__name__)

# Variance of the median of n normal deviates over that of one deviate, for
# small n; (pi / 2) / n beyond.
_MEDIAN_VARIANCE = {1: 1.0, 2: 0.5, 3: 0.4487, 4: 0.2982}
# Clipping stops when fewer than this fraction of the usable pixels change.
_CONVERGED = 1e-4


@dataclass
class BackgroundEstimate:
    """A background model and the variance of the estimate, shaped like the data.

    Attributes
    ----------
    background : ndarray
        Model of the background at every pixel; NaN where it could not be
        estimated (no usable pixel nearby).
    var_poisson, var_rnoise, var_flat : ndarray
        Variance of the model at every pixel from the Poisson, read-noise and
        flat-field variance of the pixels it was estimated from.
    used : ndarray of bool
        Pixels the final estimate used (after source masking and clipping).
    """

    background: np.ndarray
    var_poisson: np.ndarray
    var_rnoise: np.ndarray
    var_flat: np.ndarray
    used: np.ndarray

    @property
    def var_total(self) -> np.ndarray:
        return self.var_poisson + self.var_rnoise + self.var_flat


@dataclass
class _Noise:
    """Signal-independent pixel variance: ``rnoise + flat + poisson_factor * max(signal, 0)``."""

    rnoise: np.ndarray
    flat: np.ndarray
    poisson_factor: np.ndarray

    @classmethod
    def from_arrays(cls, data, mask, var_rnoise, var_poisson, var_flat) -> _Noise:
        zeros = np.zeros((1,) * data.ndim, dtype=np.float32)
        rnoise = zeros if var_rnoise is None else np.where(mask, var_rnoise, 0).astype(np.float32)
        flat = zeros if var_flat is None else np.where(mask, var_flat, 0).astype(np.float32)
        if var_poisson is None:
            factor = np.zeros(data.shape[:-2] + (1, 1), dtype=np.float32)
        else:
            # var_poisson = max(data, 0) / (exposure x gain) x units: the ratio, per integration.
            signal = np.where(mask, np.maximum(data, 0), 0).sum(axis=(-2, -1), keepdims=True, dtype=np.float64)
            total = np.where(mask, var_poisson, 0).sum(axis=(-2, -1), keepdims=True, dtype=np.float64)
            with np.errstate(invalid="ignore", divide="ignore"):
                factor = np.where(signal > 0, total / signal, 0.0).astype(np.float32)
        return cls(rnoise, flat, factor)

    def components(self, signal: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Poisson, read-noise and flat variance of pixels whose expected value is ``signal``."""
        return self.poisson_factor * np.fmax(signal, 0), self.rnoise, self.flat

    def total(self, signal: np.ndarray) -> np.ndarray:
        """Total variance, floored so that no pixel gets an infinite weight."""
        total = np.fmax(signal, 0) * self.poisson_factor + self.rnoise_flat
        return np.maximum(total, self.floor, out=total)

    @property
    def rnoise_flat(self) -> np.ndarray:
        if getattr(self, "_rnoise_flat", None) is None:
            self._rnoise_flat = self.rnoise + self.flat
        return self._rnoise_flat

    @property
    def floor(self) -> np.float32:
        peak = max(float(np.max(self.rnoise)), float(np.max(self.flat)), float(np.max(self.poisson_factor)))
        return np.float32(peak * 1e-12 if peak > 0 else 1e-30)


def _prepare(data, mask, var_rnoise, var_poisson, var_flat):
    """Float32 data (zero where unusable), the usable mask, and the noise model."""
    data = np.asarray(data)
    mask = np.broadcast_to(np.asarray(mask, dtype=bool), data.shape) & np.isfinite(data)
    variances = [None if v is None else np.broadcast_to(np.asarray(v), data.shape)
                 for v in (var_rnoise, var_poisson, var_flat)]
    for v in variances:
        if v is not None:
            mask = mask & np.isfinite(v)
    noise = _Noise.from_arrays(data, mask, *variances)
    return np.where(mask, data, 0).astype(np.float32), mask, noise


def _legendre_basis(n: int, degree: int) -> np.ndarray:
    """``(degree + 1, n)`` Legendre polynomials on ``n`` points scaled to [-1, 1]."""
    t = np.linspace(-1.0, 1.0, n) if n > 1 else np.zeros(1)
    return legendre.legvander(t, degree).T


def _spline_design(nx: int, knot_spacing: float) -> sparse.csr_matrix:
    """``(nx, nb)`` cubic B-spline design matrix with interior knots every ``knot_spacing`` columns."""
    n_intervals = max(1, int(round((nx - 1) / max(knot_spacing, 1.0))))
    edges = np.linspace(0.0, nx - 1.0, n_intervals + 1)
    knots = np.r_[[edges[0]] * 3, edges, [edges[-1]] * 3]
    return BSpline.design_matrix(np.arange(nx, dtype=np.float64), knots, 3).tocsr()


def _column_moments(data, weights, basis):
    """Per-column normal equations of a fit along the row axis.

    Returns ``gram`` ``(..., K, K, nx)`` and ``rhs`` ``(..., K, nx)`` in float64.
    """
    k = basis.shape[0]
    products = (basis[:, None, :] * basis[None, :, :]).reshape(k * k, -1).astype(weights.dtype)
    gram = np.matmul(products, weights).reshape(weights.shape[:-2] + (k, k, weights.shape[-1]))
    rhs = np.matmul(basis.astype(weights.dtype), weights * data)
    return gram.astype(np.float64), rhs.astype(np.float64)


class _ColumnSolver:
    """Independent weighted least squares in every column: ``(..., nx)`` systems of size K."""

    def solve(self, gram, rhs, counts):
        """Coefficients ``(..., K, nx)``, NaN in columns with fewer good pixels than terms."""
        k = rhs.shape[-2]
        normal = np.moveaxis(gram, -1, -3)  # (..., nx, K, K)
        scale = np.trace(normal, axis1=-2, axis2=-1)[..., None, None]
        self.normal = normal + np.eye(k) * (1e-12 * scale + 1e-300)
        self.bad = counts < k
        coef = np.linalg.solve(self.normal, np.moveaxis(rhs, -1, -2)[..., None])[..., 0]
        coef[self.bad] = np.nan
        return np.moveaxis(coef, -1, -2)

    def covariance(self):
        """Covariance ``(..., K, K, nx)`` of the last solution's coefficients."""
        cov = np.linalg.inv(self.normal)
        cov[self.bad] = np.nan
        return np.moveaxis(cov, -3, -1)


class _SplineSolver:
    """Weighted least squares of column polynomials whose coefficients are B-splines along x.

    ``design`` is the ``(nx, nb)`` sparse B-spline design matrix. The normal
    equations are assembled from the per-column moments with one sparse
    product and solved for every integration at once; the solution is mapped
    back to the coefficients (and covariance) of a polynomial in each column.
    """

    def __init__(self, design: sparse.csr_matrix):
        self.design = design
        self.dense = design.toarray()
        self.pairs = _basis_pairs(design)  # (nb * nb, nx)

    def solve(self, gram, rhs, counts):
        """Per-column polynomial coefficients ``(..., K, nx)``, NaN where no data constrain them."""
        lead, k, nx = rhs.shape[:-2], rhs.shape[-2], rhs.shape[-1]
        n_lead = int(np.prod(lead, dtype=int))
        nb = self.design.shape[1]
        self.shape = (lead, n_lead, nb, k, nx)
        g = self.pairs @ gram.reshape(n_lead * k * k, nx).T  # (nb*nb, L*K*K)
        g = g.reshape(nb, nb, n_lead, k, k).transpose(2, 0, 3, 1, 4).reshape(n_lead, nb * k, nb * k)
        r = (self.design.T @ rhs.reshape(n_lead * k, nx).T).reshape(nb, n_lead, k).transpose(1, 0, 2)
        diag = np.einsum("lii->li", g)  # a writable view: a tiny ridge keeps empty stretches solvable
        diag += 1e-10 * diag.max(axis=-1, keepdims=True) + 1e-300
        self.normal = g
        coef = np.linalg.solve(self.normal, r.reshape(n_lead, nb * k, 1)).reshape(n_lead, nb, k)
        column_coef = np.matmul(self.dense[None], coef).transpose(0, 2, 1).reshape(lead + (k, nx))
        # A column is constrained when every spline active there has enough data under it.
        per_basis = self.design.T @ counts.reshape(n_lead, nx).T  # (nb, L)
        starved = (self.design != 0).astype(np.float64) @ (per_basis < k).astype(np.float64)  # (nx, L)
        self.bad = (starved > 0).T.reshape(lead + (nx,))
        column_coef[np.broadcast_to(self.bad[..., None, :], column_coef.shape)] = np.nan
        return column_coef

    def covariance(self):
        """Covariance ``(..., K, K, nx)`` of the per-column coefficients of the last solution."""
        lead, n_lead, nb, k, nx = self.shape
        inverse = np.linalg.inv(self.normal)
        inverse = inverse.reshape(n_lead, nb, k, nb, k).transpose(1, 3, 0, 2, 4).reshape(nb * nb, -1)
        cov = (self.pairs.T @ inverse).reshape(nx, n_lead, k, k).transpose(1, 2, 3, 0).reshape(lead + (k, k, nx))
        cov[np.broadcast_to(self.bad[..., None, None, :], cov.shape)] = np.nan
        return cov


def _basis_pairs(design: sparse.csr_matrix) -> sparse.csr_matrix:
    """Sparse ``(nb * nb, nx)`` matrix of ``B_i(x) B_k(x)`` at row ``i * nb + k``."""
    nx, nb = design.shape
    p = np.diff(design.indptr)[0]
    index = design.indices.reshape(nx, p)
    value = design.data.reshape(nx, p)
    rows = (index[:, :, None] * nb + index[:, None, :]).ravel()
    cols = np.repeat(np.arange(nx), p * p)
    vals = (value[:, :, None] * value[:, None, :]).ravel()
    return sparse.csr_matrix((vals, (rows, cols)), shape=(nb * nb, nx))


def _fit_along_rows(data, mask, noise, basis, solver, clip_sigma, max_iterations) -> BackgroundEstimate:
    """Clipped, weighted least-squares fit of ``sum_j a_j(x) basis_j(y)`` (see the module notes).

    ``solver`` is a `_ColumnSolver` (independent columns) or a `_SplineSolver`
    (``a_j(x)`` B-splines along the dispersion).
    """
    used = mask.copy()
    # First weights: the noise of each column's mean level (signal independent).
    with np.errstate(invalid="ignore", divide="ignore"):
        level = (data * used).sum(axis=-2, keepdims=True) / used.sum(axis=-2, keepdims=True)
    variance = noise.total(level)
    basis_t = basis.T.astype(np.float32)
    for iteration in range(max_iterations + 1):
        weights = used / variance
        gram, rhs = _column_moments(data, weights, basis)
        coef = solver.solve(gram, rhs, used.sum(axis=-2))
        model = np.matmul(basis_t, coef.astype(np.float32))
        fit_variance, variance = variance, noise.total(model)
        if clip_sigma is None or iteration == max_iterations:
            break
        residual = data - model
        if iteration == 0:
            # Cosmic rays and hot pixels pull the first fit up: reject only pixels far above it first.
            residual = np.fmax(residual, 0)
        residual *= residual
        with np.errstate(invalid="ignore"):
            keep = mask & (residual <= np.float32(clip_sigma**2) * variance)
        if np.count_nonzero(keep ^ used) <= _CONVERGED * max(np.count_nonzero(mask), 1):
            break
        used = keep
    k = basis.shape[0]
    cov = solver.covariance().astype(np.float32)
    products = (basis[:, None, :] * basis[None, :, :]).reshape(k * k, -1).T.astype(np.float32)
    var_model = np.matmul(products, cov.reshape(cov.shape[:-3] + (k * k, cov.shape[-1])))
    poisson, rnoise, flat = _split_variance(var_model, used, fit_variance, noise.components(model))
    return BackgroundEstimate(model, poisson, rnoise, flat, used)


def _split_variance(var_model, used, fit_variance, components):
    """Share the model variance among the noise components, column by column.

    With weights ``1 / V`` the covariance of a weighted fit is ``sum w^2 V_k``
    summed over components; each component's share is taken as its share of
    ``sum_y w^2 V_k`` over the column's pixels.
    """
    w2 = used / (fit_variance * fit_variance)
    w2_sum = np.sum(w2, axis=-2, keepdims=True)
    shares = [w2_sum * c if c.size == 1 else np.sum(w2 * c, axis=-2, keepdims=True) for c in components]
    total = sum(shares)
    with np.errstate(invalid="ignore", divide="ignore"):
        return tuple(var_model * np.where(total > 0, s / total, 1.0 / 3.0) for s in shares)


def smooth_background(
    data: np.ndarray,
    mask: np.ndarray,
    var_rnoise: np.ndarray | None,
    var_poisson: np.ndarray | None = None,
    var_flat: np.ndarray | None = None,
    degree: int = 2,
    knot_spacing: float = 32.0,
    clip_sigma: float | None = 3.0,
    max_iterations: int = 5,
) -> BackgroundEstimate:
    """Smooth 2D background: a polynomial across the slit times a cubic B-spline along it.

    Parameters
    ----------
    data : ndarray
        ``(..., ny, nx)``; each leading index (integration) is fitted alone.
    mask : ndarray of bool
        Pixels that may be used: good and outside the source.
    var_rnoise, var_poisson, var_flat : ndarray or None
        The pixels' variance components (broadcastable to ``data``).
    degree : int
        Degree of the polynomial in the row (across the slit): 1 for a
        linear gradient, 2 for a curved one.
    knot_spacing : float
        Columns between spline knots along the dispersion; the background
        must be smooth on this scale, and the model under the source averages
        about ``knot_spacing`` columns.
    clip_sigma : float or None
        Pixels further than this many standard deviations from the model are
        dropped, iteratively; None to keep them all.
    max_iterations : int
        At most this many clipping iterations.

    Returns
    -------
    BackgroundEstimate
    """
    data, mask, noise = _prepare(data, mask, var_rnoise, var_poisson, var_flat)
    basis = _legendre_basis(data.shape[-2], degree)
    design = _spline_design(data.shape[-1], knot_spacing)
    return _fit_along_rows(data, mask, noise, basis, _SplineSolver(design), clip_sigma, max_iterations)


def poly_background(
    data: np.ndarray,
    mask: np.ndarray,
    var_rnoise: np.ndarray | None,
    var_poisson: np.ndarray | None = None,
    var_flat: np.ndarray | None = None,
    degree: int = 2,
    clip_sigma: float | None = 3.0,
    max_iterations: int = 5,
) -> BackgroundEstimate:
    """A polynomial of ``degree`` across the slit, fitted in every column independently.

    Parameters are those of `smooth_background` (without the knots). Columns
    with fewer usable pixels than ``degree + 1`` get NaN.
    """
    data, mask, noise = _prepare(data, mask, var_rnoise, var_poisson, var_flat)
    basis = _legendre_basis(data.shape[-2], degree)
    return _fit_along_rows(data, mask, noise, basis, _ColumnSolver(), clip_sigma, max_iterations)


def poly_rows_background(
    data: np.ndarray,
    mask: np.ndarray,
    var_rnoise: np.ndarray | None,
    var_poisson: np.ndarray | None = None,
    var_flat: np.ndarray | None = None,
    degree: int = 2,
    clip_sigma: float | None = 3.0,
    max_iterations: int = 5,
    min_fraction: float = 0.5,
) -> BackgroundEstimate:
    """A polynomial of ``degree`` along the dispersion, fitted in every row.

    Rows in which fewer than ``min_fraction`` of the columns are usable (the
    rows the source fills) get the model of the nearest usable rows, linearly
    interpolated across the slit (the nearest one beyond the last).
    """
    swapped = [None if v is None else np.swapaxes(np.broadcast_to(v, np.shape(data)), -1, -2)
               for v in (data, mask, var_rnoise, var_poisson, var_flat)]
    data_t, mask_t, noise = _prepare(*swapped)
    basis = _legendre_basis(data_t.shape[-2], degree)
    fit = _fit_along_rows(data_t, mask_t, noise, basis, _ColumnSolver(), clip_sigma, max_iterations)
    row_ok = mask_t.mean(axis=-2) >= min_fraction  # (..., ny)
    arrays = [np.swapaxes(a, -1, -2) for a in (fit.background, fit.var_poisson, fit.var_rnoise, fit.var_flat)]
    filled = _interpolate_rows(arrays, row_ok)
    used = np.swapaxes(fit.used, -1, -2) & row_ok[..., :, None]
    return BackgroundEstimate(*filled, used)


def _interpolate_rows(arrays, row_ok):
    """Replace rows that are not ``row_ok`` by linear interpolation between the nearest good rows.

    ``arrays[0]`` is the model, the others variances (combined with squared weights).
    """
    ny = row_ok.shape[-1]
    rows = np.arange(ny)
    below = np.maximum.accumulate(np.where(row_ok, rows, -1), axis=-1)
    above = np.flip(np.minimum.accumulate(np.flip(np.where(row_ok, rows, ny), -1), axis=-1), -1)
    has_below, has_above = below >= 0, above < ny
    lo = np.where(has_below, below, np.where(has_above, above, 0))
    hi = np.where(has_above, above, lo)
    with np.errstate(invalid="ignore", divide="ignore"):
        t = np.where(hi > lo, (rows - lo) / (hi - lo), 0.0)
    t = t[..., :, None]
    lo_idx, hi_idx = lo[..., :, None], hi[..., :, None]
    out = []
    for index, array in enumerate(arrays):
        a = np.take_along_axis(array, np.broadcast_to(lo_idx, array.shape), axis=-2)
        b = np.take_along_axis(array, np.broadcast_to(hi_idx, array.shape), axis=-2)
        power = 1 if index == 0 else 2
        out.append((1 - t) ** power * a + t**power * b)
    none = ~(has_below | has_above)[..., :, None]
    return [np.where(none, np.nan, a) for a in out]


def column_background(
    data: np.ndarray,
    mask: np.ndarray,
    var_rnoise: np.ndarray | None,
    var_poisson: np.ndarray | None = None,
    var_flat: np.ndarray | None = None,
    statistic: str = "median",
    clip_sigma: float | None = 3.0,
    max_iterations: int = 5,
) -> BackgroundEstimate:
    """A constant per column: the median, or the sigma-clipped weighted mean, of its usable pixels.

    Parameters
    ----------
    statistic : {"median", "mean"}
        ``median``: robust with no clipping, variance ``pi / 2`` times the
        mean's. ``mean``: inverse-variance weighted, sigma-clipped mean.

    Other parameters as in `smooth_background`.
    """
    if statistic == "mean":
        return poly_background(data, mask, var_rnoise, var_poisson, var_flat, degree=0,
                               clip_sigma=clip_sigma, max_iterations=max_iterations)
    if statistic != "median":
        raise ValueError(f"statistic must be 'median' or 'mean', not {statistic!r}")
    data, mask, noise = _prepare(data, mask, var_rnoise, var_poisson, var_flat)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # columns with no usable pixel
        median = np.nanmedian(np.where(mask, data, np.nan), axis=-2, keepdims=True)
    background = np.broadcast_to(median, data.shape)
    variances = _median_variances(noise.components(background), mask, axis=-2)
    return BackgroundEstimate(np.array(background), *(np.broadcast_to(v, data.shape).copy() for v in variances), mask)


def _median_variances(components, mask, axis):
    """Variance of a median of the ``mask``-ed values along ``axis``, per component."""
    n = mask.sum(axis=axis, keepdims=True)
    factor = np.where(n > 4, np.pi / 2, 0.0)
    for count, value in _MEDIAN_VARIANCE.items():
        factor = np.where(n == count, value * count, factor)
    with np.errstate(invalid="ignore", divide="ignore"):
        return tuple(
            np.where(n > 0, factor * np.sum(np.where(mask, c, 0.0), axis=axis, keepdims=True) / n**2,
                     np.nan)
            for c in components
        )


def image2d_background(
    data: np.ndarray,
    mask: np.ndarray,
    var_rnoise: np.ndarray | None,
    var_poisson: np.ndarray | None = None,
    var_flat: np.ndarray | None = None,
    box_size: tuple[int, int] = (8, 64),
    filter_size: tuple[int, int] = (1, 3),
    clip_sigma: float = 3.0,
    exclude_fraction: float = 0.9,
) -> BackgroundEstimate:
    """photutils ``Background2D``: sigma-clipped medians in boxes, median filtered and interpolated.

    Parameters
    ----------
    box_size : tuple of int
        ``(rows, columns)`` of each box.
    filter_size : tuple of int
        Median filter over boxes ``(rows, columns)``.
    clip_sigma : float
        Sigma clipping threshold inside each box.
    exclude_fraction : float
        Boxes with more than this fraction of unusable (source or bad) pixels
        are replaced by interpolation from their neighbours.

    The variance of each pixel's model is taken as ``pi / 2`` times the
    box's clipped variance over its number of pixels (the median of a box),
    split among the components as the pixels' variances are; the median
    filter's further averaging is not counted, so it is an upper bound.
    Frames of a cube are done one after the other (photutils is 2D).
    """
    from astropy.stats import SigmaClip
    from photutils.background import Background2D, MedianBackground

    data, mask, noise = _prepare(data, mask, var_rnoise, var_poisson, var_flat)
    frames = data.reshape(-1, *data.shape[-2:])
    masks = mask.reshape(frames.shape)
    background = np.empty_like(frames)
    variance = np.empty_like(frames)
    for index, (frame, good) in enumerate(zip(frames, masks)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # photutils warns about masked boxes
            fit = Background2D(
                frame, box_size, mask=~good, filter_size=filter_size, sigma_clip=SigmaClip(sigma=clip_sigma),
                bkg_estimator=MedianBackground(), exclude_percentile=100.0 * exclude_fraction,
            )
        background[index] = fit.background
        with np.errstate(invalid="ignore", divide="ignore"):
            variance[index] = np.pi / 2 * fit.background_rms**2 / np.maximum(fit.n_pixels_map, 1)
    background = background.reshape(data.shape)
    variance = variance.reshape(data.shape)
    components = [np.broadcast_to(c, data.shape) for c in noise.components(background)]
    total = sum(components)
    with np.errstate(invalid="ignore", divide="ignore"):
        shares = [np.where(total > 0, c / total, 1.0 / 3.0) for c in components]
    return BackgroundEstimate(background, *(variance * s for s in shares), mask)


def combine_exposures(
    data: np.ndarray,
    mask: np.ndarray,
    var_rnoise: np.ndarray | None,
    var_poisson: np.ndarray | None = None,
    var_flat: np.ndarray | None = None,
    statistic: str = "median",
) -> BackgroundEstimate:
    """Combine background exposures pixel by pixel (axis 0 = exposure).

    Parameters
    ----------
    data : ndarray
        ``(n_exposures, ..., ny, nx)``.
    mask : ndarray of bool
        Usable pixels, same shape.
    var_rnoise, var_poisson, var_flat : ndarray or None
        Variances of the exposures, same shape.
    statistic : {"median", "mean"}
        ``median`` for dedicated background exposures (robust to a star or a
        cosmic ray in one of them); ``mean`` for nod differencing (the source
        is in every other nod: a median of two is their mean anyway).

    Returns
    -------
    BackgroundEstimate
        Shaped like one exposure; the variance of the mean is ``sum var / n**2``
        and that of the median about ``pi / 2`` times it (exact for n <= 4).
    """
    if statistic not in ("median", "mean"):
        raise ValueError(f"statistic must be 'median' or 'mean', not {statistic!r}")
    data = np.asarray(data, dtype=np.float64)
    mask = np.asarray(mask, dtype=bool) & np.isfinite(data)
    variances = [np.zeros(data.shape) if v is None else np.asarray(v, np.float64) for v in
                 (var_poisson, var_rnoise, var_flat)]
    for v in variances:
        mask &= np.isfinite(v)
    n = mask.sum(axis=0)
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)  # pixels bad in every exposure
        if statistic == "median":
            background = np.nanmedian(np.where(mask, data, np.nan), axis=0)
            var = _median_variances(variances, mask, axis=0)
            var = tuple(v[0] for v in var)
        else:
            background = np.where(n > 0, np.sum(np.where(mask, data, 0.0), axis=0) / n, np.nan)
            var = tuple(np.where(n > 0, np.sum(np.where(mask, v, 0.0), axis=0) / n**2, np.nan) for v in variances)
    return BackgroundEstimate(background, *var, n > 0)
