"""What the background methods share: the signal-independent noise model, the banded solvers, the clipped fit.

Sigma clipping uses a signal-independent noise model (read noise and flat
variances as given, and a Poisson variance proportional to the *model*, scaled
by the data-derived ``var_poisson``), so that a pixel that fluctuates low is
not given more weight than one that fluctuates high, which would bias faint
backgrounds low.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.polynomial import legendre
from scipy import sparse
from scipy.interpolate import BSpline

from ..pixels import Variances
from .base import BackgroundEstimate

__all__ = ["ColumnSolver", "Noise", "SplineSolver", "banded_inverse", "column_moments", "fit_along_rows",
           "ldl_banded", "legendre_basis", "median_variances", "prepare", "solve_ldl_banded", "spline_design",
           "split_variance"]

# Variance of the median of n normal deviates over that of one deviate, for
# small n; (pi / 2) / n beyond.
_MEDIAN_VARIANCE = {1: 1.0, 2: 0.5, 3: 0.4487, 4: 0.2982}
# Clipping stops when fewer than this fraction of the usable pixels change.
_CONVERGED = 1e-4



@dataclass
class Noise:
    """Signal-independent pixel variance: ``rnoise + flat + poisson_factor * max(signal, 0)``."""

    rnoise: np.ndarray
    flat: np.ndarray
    poisson_factor: np.ndarray

    def __post_init__(self):
        no_flat = self.flat.size == 1 and not self.flat.any()  # the placeholder of from_arrays
        self.rnoise_flat = Variances(self.rnoise, flat=None if no_flat else self.flat).signal_independent()
        peak = max(float(np.max(self.rnoise)), float(np.max(self.flat)), float(np.max(self.poisson_factor)))
        self.floor = np.float32(peak * 1e-12 if peak > 0 else 1e-30)

    @classmethod
    def from_arrays(cls, data, mask, var_rnoise, var_poisson, var_flat) -> Noise:
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


def prepare(data, mask, var_rnoise, var_poisson, var_flat):
    """Float32 data (zero where unusable), the usable mask, and the noise model."""
    data = np.asarray(data)
    mask = np.broadcast_to(np.asarray(mask, dtype=bool), data.shape) & np.isfinite(data)
    variances = [None if v is None else np.broadcast_to(np.asarray(v), data.shape)
                 for v in (var_rnoise, var_poisson, var_flat)]
    for v in variances:
        if v is not None:
            mask &= np.isfinite(v)
    data = np.where(mask, data, 0).astype(np.float32, copy=False)
    return data, mask, Noise.from_arrays(data, mask, *variances)


def legendre_basis(n: int, degree: int) -> np.ndarray:
    """``(degree + 1, n)`` Legendre polynomials on ``n`` points scaled to [-1, 1]."""
    t = np.linspace(-1.0, 1.0, n) if n > 1 else np.zeros(1)
    return legendre.legvander(t, degree).T


def spline_design(nx: int, knot_spacing: float) -> sparse.csr_matrix:
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


def column_moments(data, weights, basis, products, work):
    """Per-column normal equations of a fit along the row axis.

    ``products`` are the ``(P, ny)`` products of the basis pairs (`_pairs`);
    ``work`` is scratch space shaped like ``data``. Returns the packed
    ``gram`` ``(..., P, nx)`` and ``rhs`` ``(..., K, nx)`` in float64.
    """
    gram = np.matmul(products, weights)
    rhs = np.matmul(basis, np.multiply(weights, data, out=work))
    return gram.astype(np.float64), rhs.astype(np.float64)


class ColumnSolver:
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


class SplineSolver:
    """Weighted least squares of column polynomials whose coefficients are B-splines along x.

    ``design`` is the ``(nx, nb)`` sparse B-spline design matrix. With the
    unknowns ordered spline by spline (``i * K + a`` for spline ``i`` and
    polynomial term ``a``), the normal matrix of each integration is banded:
    splines overlap only ``order - 1`` neighbours. It is assembled in banded
    form from the per-column moments with one sparse product, factorised
    (`ldl_banded`) and solved for every integration at once; the covariance
    needs only the entries of the inverse within that band
    (`banded_inverse`). Solutions are mapped back to the coefficients (and
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
        self.factor = ldl_banded(band)
        coef = solve_ldl_banded(self.factor, vector.reshape(nb * k, n_lead)).reshape(nb, k * n_lead)
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
        inverse = banded_inverse(self.factor)
        # cov_ab(x) = sum over splines i, i' active at x of B_i(x) B_i'(x) C[i K + a, i' K + b]
        rows, columns, rows_mirror, columns_mirror = self._band_index(k)
        terms = inverse[rows, columns]
        terms[1:] += inverse[rows_mirror, columns_mirror]  # i' = i - d
        terms = terms.transpose(0, 2, 3, 1).reshape(self.order * nb, -1)  # (order * nb, L * P)
        cov = (self.products.T @ terms).reshape(nx, n_lead, -1).transpose(1, 2, 0).reshape(lead + (-1, nx))
        cov[np.broadcast_to(self.bad[..., None, :], cov.shape)] = np.nan
        return cov


def ldl_banded(band: np.ndarray) -> np.ndarray:
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


def solve_ldl_banded(factor: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """Solve ``A x = rhs`` with the factors of `ldl_banded`; ``rhs`` is ``(n, ...)``."""
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


def banded_inverse(factor: np.ndarray) -> np.ndarray:
    """The entries of ``A^-1`` within the band of ``A``, from the factors of `ldl_banded`.

    Takahashi's recursion, from the last column to the first:
    ``S[i, j] = delta_ij / D[j] - sum_k S[i, k] L[k, j]`` over the ``u``
    rows ``k`` below ``j``, which needs only entries already within the band.
    Returns them in the lower band storage of `ldl_banded`'s input.
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


def fit_along_rows(data, mask, noise, basis, solver, clip_sigma, max_iterations) -> BackgroundEstimate:
    """Clipped, weighted least-squares fit of ``sum_j a_j(x) basis_j(y)`` (see the module notes).

    ``solver`` is a `ColumnSolver` (independent columns) or a `SplineSolver`
    (``a_j(x)`` B-splines along the dispersion). The cube-sized arrays of
    the iterations are allocated once and overwritten.
    """
    first, second, _ = _pairs(basis.shape[0])
    products = (basis[first] * basis[second]).astype(np.float32)
    basis = basis.astype(np.float32)
    used = mask.copy()
    counts = np.count_nonzero(used, axis=-2)
    usable = np.maximum(np.count_nonzero(mask, axis=(-2, -1)), 1)
    # Each integration clips until its own pixels converge and is then held (its pixels and weights), so that
    # its result does not depend on the integrations fitted with it (a time series is fitted in groups).
    active = np.ones(data.shape[:-2], dtype=bool)
    # First weights: the noise of each column's mean level (signal independent).
    with np.errstate(invalid="ignore", divide="ignore"):
        level = data.sum(axis=-2, keepdims=True) / counts[..., None, :]
    variance = noise.total(level, out=np.empty_like(data))
    weights, work, model = np.empty_like(data), np.empty_like(data), np.empty_like(data)
    for iteration in range(max_iterations + 1):
        np.divide(used, variance, out=weights)
        gram, rhs = column_moments(data, weights, basis, products, work)
        coef = solver.solve(gram, rhs, counts)
        np.matmul(basis.T, coef.astype(np.float32), out=model)
        if clip_sigma is None or iteration == max_iterations:
            break
        residual = np.subtract(data, model, out=work)
        if iteration == 0:
            # Cosmic rays and hot pixels pull the first fit up: reject only pixels far above it first.
            np.fmax(residual, 0, out=residual)
        residual *= residual
        revised = noise.total(model, out=weights)  # the weights are recomputed from the variance next
        with np.errstate(invalid="ignore"):  # NaN in unconstrained columns
            residual /= revised
            keep = mask & (residual <= np.float32(clip_sigma**2))
        active &= np.count_nonzero(keep ^ used, axis=(-2, -1)) > _CONVERGED * usable
        if not active.any():
            break
        np.copyto(used, keep, where=active[..., None, None])
        np.copyto(variance, revised, where=active[..., None, None])
        counts = np.count_nonzero(used, axis=-2)
    weight_pairs = np.where(first == second, 1.0, 2.0).astype(np.float32)  # a != b appear twice in phi^T C phi
    var_model = np.matmul(products.T * weight_pairs, solver.covariance().astype(np.float32), out=variance)
    np.square(weights, out=weights)
    poisson, rnoise, flat = split_variance(var_model, weights, model, noise, work)
    return BackgroundEstimate(model, poisson, rnoise, flat, used)


def split_variance(var_model, w2, model, noise, work):
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



def median_variances(components, mask, axis):
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


