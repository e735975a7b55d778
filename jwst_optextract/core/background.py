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

    def __post_init__(self):
        self.rnoise_flat = self.rnoise if self.flat.size == 1 and not self.flat.any() else self.rnoise + self.flat
        peak = max(float(np.max(self.rnoise)), float(np.max(self.flat)), float(np.max(self.poisson_factor)))
        self.floor = np.float32(peak * 1e-12 if peak > 0 else 1e-30)

    @classmethod
    def from_arrays(cls, data, mask, var_rnoise, var_poisson, var_flat) -> _Noise:
        """The noise model of ``data`` (zero where not ``mask``) from its variance arrays."""
        zeros = np.zeros((1,) * data.ndim, dtype=np.float32)
        rnoise = zeros if var_rnoise is None else np.where(mask, var_rnoise, 0).astype(np.float32, copy=False)
        flat = zeros if var_flat is None else np.where(mask, var_flat, 0).astype(np.float32, copy=False)
        if var_poisson is None:
            factor = np.zeros(data.shape[:-2] + (1, 1), dtype=np.float32)
        else:
            # var_poisson = max(data, 0) / (exposure x gain) x units: the ratio, per integration.
            signal = np.maximum(data, 0).sum(axis=(-2, -1), keepdims=True, dtype=np.float64)
            total = np.sum(var_poisson, axis=(-2, -1), where=mask, keepdims=True, dtype=np.float64)
            with np.errstate(invalid="ignore", divide="ignore"):
                factor = np.where(signal > 0, total / signal, 0.0).astype(np.float32)
        return cls(rnoise, flat, factor)

    def components(self, signal: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Poisson, read-noise and flat variance of pixels whose expected value is ``signal``."""
        return self.poisson_factor * np.fmax(signal, 0), self.rnoise, self.flat

    def total(self, signal: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Total variance (float32, into ``out`` if given), floored so that no pixel gets an infinite weight."""
        if out is None:
            out = np.empty(np.broadcast_shapes(signal.shape, self.rnoise_flat.shape), dtype=np.float32)
        np.fmax(signal, 0, out=out)
        out *= self.poisson_factor
        out += self.rnoise_flat
        return np.maximum(out, self.floor, out=out)


def _prepare(data, mask, var_rnoise, var_poisson, var_flat):
    """Float32 data (zero where unusable), the usable mask, and the noise model."""
    data = np.asarray(data)
    mask = np.broadcast_to(np.asarray(mask, dtype=bool), data.shape) & np.isfinite(data)
    variances = [None if v is None else np.broadcast_to(np.asarray(v), data.shape)
                 for v in (var_rnoise, var_poisson, var_flat)]
    for v in variances:
        if v is not None:
            mask &= np.isfinite(v)
    data = np.where(mask, data, 0).astype(np.float32, copy=False)
    return data, mask, _Noise.from_arrays(data, mask, *variances)


def _legendre_basis(n: int, degree: int) -> np.ndarray:
    """``(degree + 1, n)`` Legendre polynomials on ``n`` points scaled to [-1, 1]."""
    t = np.linspace(-1.0, 1.0, n) if n > 1 else np.zeros(1)
    return legendre.legvander(t, degree).T


def _spline_design(nx: int, knot_spacing: float) -> sparse.csr_matrix:
    """``(nx, nb)`` cubic B-spline design matrix with interior knots every ``knot_spacing`` columns."""
    n_intervals = max(1, round((nx - 1) / max(knot_spacing, 1.0)))
    edges = np.linspace(0.0, nx - 1.0, n_intervals + 1)
    knots = np.r_[[edges[0]] * 3, edges, [edges[-1]] * 3]
    return BSpline.design_matrix(np.arange(nx, dtype=np.float64), knots, 3).tocsr()


def _pairs(k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ``K (K + 1) / 2`` pairs ``a <= b`` of K terms, and the ``(K, K)`` index of each pair among them.

    Symmetric ``(K, K)`` matrices (normal equations, covariances) are
    stored packed as their entries at these pairs.
    """
    first, second = np.triu_indices(k)
    index = np.empty((k, k), dtype=int)
    index[first, second] = index[second, first] = np.arange(first.size)
    return first, second, index


def _column_moments(data, weights, basis, products, work):
    """Per-column normal equations of a fit along the row axis.

    ``products`` are the ``(P, ny)`` products of the basis pairs (`_pairs`);
    ``work`` is scratch space shaped like ``data``. Returns the packed
    ``gram`` ``(..., P, nx)`` and ``rhs`` ``(..., K, nx)`` in float64.
    """
    gram = np.matmul(products, weights)
    rhs = np.matmul(basis, np.multiply(weights, data, out=work))
    return gram.astype(np.float64), rhs.astype(np.float64)


class _ColumnSolver:
    """Independent weighted least squares in every column: ``(..., nx)`` systems of size K."""

    def solve(self, gram, rhs, counts):
        """Coefficients ``(..., K, nx)``, NaN in columns with fewer good pixels than terms."""
        k = rhs.shape[-2]
        normal = np.moveaxis(gram, -1, -2)[..., _pairs(k)[2]]  # (..., nx, K, K)
        scale = np.trace(normal, axis1=-2, axis2=-1)[..., None, None]
        self.normal = normal + np.eye(k) * (1e-12 * scale + 1e-300)
        self.bad = counts < k
        coef = np.linalg.solve(self.normal, np.moveaxis(rhs, -1, -2)[..., None])[..., 0]
        coef[self.bad] = np.nan
        return np.moveaxis(coef, -1, -2)

    def covariance(self):
        """Packed covariance ``(..., P, nx)`` of the last solution's coefficients (see `_pairs`)."""
        first, second, _ = _pairs(self.normal.shape[-1])
        cov = np.linalg.inv(self.normal)[..., first, second]
        cov[self.bad] = np.nan
        return np.moveaxis(cov, -1, -2)


class _SplineSolver:
    """Weighted least squares of column polynomials whose coefficients are B-splines along x.

    ``design`` is the ``(nx, nb)`` sparse B-spline design matrix. With the
    unknowns ordered spline by spline (``i * K + a`` for spline ``i`` and
    polynomial term ``a``), the normal matrix of each integration is banded:
    splines overlap only ``order - 1`` neighbours. It is assembled in banded
    form from the per-column moments with one sparse product, factorised
    (`_ldl_banded`) and solved for every integration at once; the covariance
    needs only the entries of the inverse within that band
    (`_banded_inverse`). Solutions are mapped back to the coefficients (and
    covariance) of a polynomial in each column.
    """

    def __init__(self, design: sparse.csr_matrix):
        self.design = design
        self.support = (design != 0).astype(np.float64)
        dense = design.toarray()
        nx, nb = dense.shape
        self.order = int(np.diff(design.indptr).max())  # splines active in a column
        # Row d * nb + i holds B_i(x) B_{i + d}(x).
        products = np.zeros((self.order, nb, nx))
        for d in range(self.order):
            products[d, : nb - d] = (dense[:, : nb - d] * dense[:, d:]).T
        self.products = sparse.csr_matrix(products.reshape(self.order * nb, nx))

    def _band_index(self, k):
        """Where the packed moments of spline pairs ``(i, i + d)`` go in the band of the normal matrix.

        For the pair ``a <= b`` (`_pairs`), ``N[(i + d) K + b, i K + a]``
        (every ``d``) and ``N[(i + d) K + a, i K + b]`` (``d >= 1``) in
        lower band storage: ``(row, column)`` index arrays broadcasting to
        ``(order, P, nb)`` and ``(order - 1, P, nb)``.
        """
        first, second, _ = _pairs(k)
        d = np.arange(self.order)[:, None, None]
        spline = np.arange(self.design.shape[1]) * k
        return (d * k + (second - first)[:, None], spline + first[:, None],
                d[1:] * k + (first - second)[:, None], spline + second[:, None])

    def solve(self, gram, rhs, counts):
        """Per-column polynomial coefficients ``(..., K, nx)``, NaN where no data constrain them."""
        lead, k, nx = rhs.shape[:-2], rhs.shape[-2], rhs.shape[-1]
        n_lead = int(np.prod(lead, dtype=int))
        nb = self.design.shape[1]
        self.shape = (lead, n_lead, nb, k, nx)
        moments = (self.products @ gram.reshape(-1, nx).T).reshape(self.order, nb, n_lead, -1).transpose(0, 3, 1, 2)
        rows, columns, rows_mirror, columns_mirror = self._band_index(k)
        band = np.zeros((self.order * k, nb * k, n_lead))
        band[rows, columns] = moments
        band[rows_mirror, columns_mirror] = moments[1:]
        band[0] += 1e-10 * band[0].max(axis=0) + 1e-300  # a tiny ridge keeps empty stretches solvable
        vector = (self.design.T @ rhs.reshape(-1, nx).T).reshape(nb, n_lead, k).transpose(0, 2, 1)
        self.factor = _ldl_banded(band)
        coef = _solve_ldl_banded(self.factor, vector.reshape(nb * k, n_lead)).reshape(nb, k * n_lead)
        column_coef = (self.design @ coef).reshape(nx, k, n_lead).transpose(2, 1, 0).reshape(lead + (k, nx))
        # A column is constrained when every spline active there has enough data under it.
        per_basis = self.design.T @ counts.reshape(n_lead, nx).T  # (nb, L)
        starved = self.support @ (per_basis < k).astype(np.float64)  # (nx, L)
        self.bad = (starved > 0).T.reshape(lead + (nx,))
        column_coef[np.broadcast_to(self.bad[..., None, :], column_coef.shape)] = np.nan
        return column_coef

    def covariance(self):
        """Packed covariance ``(..., P, nx)`` of the per-column coefficients of the last solution."""
        lead, n_lead, nb, k, nx = self.shape
        inverse = _banded_inverse(self.factor)
        # cov_ab(x) = sum over splines i, i' active at x of B_i(x) B_i'(x) C[i K + a, i' K + b]
        rows, columns, rows_mirror, columns_mirror = self._band_index(k)
        terms = inverse[rows, columns]
        terms[1:] += inverse[rows_mirror, columns_mirror]  # i' = i - d
        terms = terms.transpose(0, 2, 3, 1).reshape(self.order * nb, -1)  # (order * nb, L * P)
        cov = (self.products.T @ terms).reshape(nx, n_lead, -1).transpose(1, 2, 0).reshape(lead + (-1, nx))
        cov[np.broadcast_to(self.bad[..., None, :], cov.shape)] = np.nan
        return cov


def _ldl_banded(band: np.ndarray) -> np.ndarray:
    """``L D L^T`` factors of symmetric banded matrices, without pivoting.

    Parameters
    ----------
    band : ndarray
        ``(u + 1, n, ...)``: the lower band of ``n x n`` matrices of
        bandwidth ``u`` (``band[r, j] = A[j + r, j]``, LAPACK's lower
        storage, zero beyond the matrix), one matrix per trailing index.

    Returns
    -------
    ndarray
        ``(u + 1, n + u, ...)``: ``D`` in row 0 and the unit lower factor
        ``L[j + r, j]`` in row ``r``, padded with ``u`` zero columns.
    """
    u, n = band.shape[0] - 1, band.shape[1]
    factor = np.zeros((u + 1, n + u) + band.shape[2:])
    factor[:, :n] = band
    # The update of the trailing block, A[j + a, j + b] for u >= a >= b >= 1, in band storage.
    a, b = np.tril_indices(u)
    for j in range(n):
        column = factor[1:, j].copy()
        factor[1:, j] /= factor[0, j]
        factor[a - b, j + 1 + b] -= column[a] * factor[1 + b, j]
    return factor


def _solve_ldl_banded(factor: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """Solve ``A x = rhs`` with the factors of `_ldl_banded`; ``rhs`` is ``(n, ...)``."""
    u = factor.shape[0] - 1
    n = factor.shape[1] - u
    lower = factor[1:]
    x = np.zeros((n + u,) + rhs.shape[1:])
    x[:n] = rhs
    for j in range(n):
        x[j + 1 : j + 1 + u] -= lower[:, j] * x[j]
    x[:n] /= factor[0, :n]
    for j in range(n - 1, -1, -1):
        x[j] -= np.sum(lower[:, j] * x[j + 1 : j + 1 + u], axis=0)
    return x[:n]


def _banded_inverse(factor: np.ndarray) -> np.ndarray:
    """The entries of ``A^-1`` within the band of ``A``, from the factors of `_ldl_banded`.

    Takahashi's recursion, from the last column to the first:
    ``S[i, j] = delta_ij / D[j] - sum_k S[i, k] L[k, j]`` over the ``u``
    rows ``k`` below ``j``, which needs only entries already within the band.
    Returns them in the lower band storage of `_ldl_banded`'s input.
    """
    u = factor.shape[0] - 1
    n = factor.shape[1] - u
    lower = factor[1:]
    inverse = np.zeros_like(factor)
    # S[j + a, j + b] for 1 <= a, b <= u, in band storage.
    a, b = (x.ravel() for x in np.indices((u, u)))
    rows, columns = np.abs(a - b), 1 + np.minimum(a, b)
    for j in range(n - 1, -1, -1):
        block = inverse[rows, j + columns].reshape((u, u) + factor.shape[2:])
        inverse[1:, j] = -np.einsum("ab...,b...->a...", block, lower[:, j])
        inverse[0, j] = 1 / factor[0, j] - np.sum(lower[:, j] * inverse[1:, j], axis=0)
    return inverse[:, :n]


def _fit_along_rows(data, mask, noise, basis, solver, clip_sigma, max_iterations) -> BackgroundEstimate:
    """Clipped, weighted least-squares fit of ``sum_j a_j(x) basis_j(y)`` (see the module notes).

    ``solver`` is a `_ColumnSolver` (independent columns) or a `_SplineSolver`
    (``a_j(x)`` B-splines along the dispersion). The cube-sized arrays of
    the iterations are allocated once and overwritten.
    """
    first, second, _ = _pairs(basis.shape[0])
    products = (basis[first] * basis[second]).astype(np.float32)
    basis = basis.astype(np.float32)
    used = mask.copy()
    counts = np.count_nonzero(used, axis=-2)
    usable = max(np.count_nonzero(mask), 1)
    # First weights: the noise of each column's mean level (signal independent).
    with np.errstate(invalid="ignore", divide="ignore"):
        level = data.sum(axis=-2, keepdims=True) / counts[..., None, :]
    variance = noise.total(level, out=np.empty_like(data))
    weights, work, model = np.empty_like(data), np.empty_like(data), np.empty_like(data)
    for iteration in range(max_iterations + 1):
        np.divide(used, variance, out=weights)
        gram, rhs = _column_moments(data, weights, basis, products, work)
        coef = solver.solve(gram, rhs, counts)
        np.matmul(basis.T, coef.astype(np.float32), out=model)
        if clip_sigma is None or iteration == max_iterations:
            break
        residual = np.subtract(data, model, out=work)
        if iteration == 0:
            # Cosmic rays and hot pixels pull the first fit up: reject only pixels far above it first.
            np.fmax(residual, 0, out=residual)
        residual *= residual
        with np.errstate(invalid="ignore"):  # NaN in unconstrained columns
            residual /= noise.total(model, out=variance)
            keep = mask & (residual <= np.float32(clip_sigma**2))
        if np.count_nonzero(keep ^ used) <= _CONVERGED * usable:
            break
        used = keep
        counts = np.count_nonzero(used, axis=-2)
    weight_pairs = np.where(first == second, 1.0, 2.0).astype(np.float32)  # a != b appear twice in phi^T C phi
    var_model = np.matmul(products.T * weight_pairs, solver.covariance().astype(np.float32), out=variance)
    np.square(weights, out=weights)
    poisson, rnoise, flat = _split_variance(var_model, weights, model, noise, work)
    return BackgroundEstimate(model, poisson, rnoise, flat, used)


def _split_variance(var_model, w2, model, noise, work):
    """Share the model variance among the noise components, column by column.

    With weights ``w = 1 / V`` (``w2`` is their square) the covariance of a
    weighted fit is ``sum w^2 V_k`` summed over components; each component's
    share is taken as its share of ``sum_y w^2 V_k`` over the column's
    pixels. The three variances are written into ``work``, ``w2`` and ``var_model``.
    """
    def weighted_sum(component):
        if component.size == 1:
            return np.sum(w2, axis=-2, keepdims=True) * component
        return np.multiply(w2, component, out=work).sum(axis=-2, keepdims=True)

    shares = [noise.poisson_factor * weighted_sum(np.fmax(model, 0, out=work)), weighted_sum(noise.rnoise),
              weighted_sum(noise.flat)]
    total = sum(shares)
    with np.errstate(invalid="ignore", divide="ignore"):
        fractions = [np.where(total > 0, s / total, 1.0 / 3.0).astype(np.float32) for s in shares]
    return tuple(np.multiply(var_model, f, out=out) for f, out in zip(fractions, (work, w2, var_model)))


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
