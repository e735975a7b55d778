"""The scene model: source and background of a slit fitted together.

For a given cross-dispersion profile ``P`` (which may hold the negative images
of nod-differenced data, with their weights), every pixel of a slit is modelled
as

    D(y, x) = f(x) P(y, x) + B(y, x),

with ``B`` a background that is linear in its coefficients: a polynomial across
the slit in every column (``column``), or that polynomial times a cubic B-spline
along the dispersion (``smooth``: the background under the source is then
predicted from many columns). For given ``P``, ``f`` and ``B`` are one weighted
linear least-squares problem. Each column's ``f`` is eliminated analytically;
what remains is a small system per column (``column``), or one banded system of
the background coefficients of the whole slit (``smooth``).

No mask separates source from background: the wings of ``P`` are source, and
every good pixel constrains ``B``. The flux variance is marginalised over the
background coefficients, so the error bars include the uncertainty of the
background under the source.

The weights are signal-independent, as in `~jwst_optextract.core.optimal`:
read noise and flat variance plus a smooth model of the Poisson variance.
Unflagged cosmic rays and hot pixels are rejected iteratively, the worst pixel
above the model in each column at a time.
"""

from __future__ import annotations

import functools
import logging
import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from numpy.polynomial import legendre
from scipy import sparse
from scipy.interpolate import BSpline

from .optimal import sharp_along_dispersion
from .pixels import HasVariances, Variances

__all__ = ["SCENE_BACKGROUNDS", "SceneBackground", "SceneResult", "fit_scene"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SceneBackground:
    """How the background of a scene is modelled (see `fit_scene`); travels as one object."""

    kind: str = "smooth"
    """``smooth``, ``column`` or ``none`` (`SCENE_BACKGROUNDS`)."""
    degree: int = 1
    """Polynomial degree across the slit."""
    knot_spacing: float = 32.0
    """``smooth``: columns between spline knots along the dispersion."""

    @property
    def fitted(self) -> bool:
        """Whether there is a background to fit (``kind`` is not ``none``)."""
        return self.kind != "none"

    def project_out(self, arrays: dict, weights: np.ndarray, profile: np.ndarray | None = None) -> dict:
        """``(ny, nx)`` arrays less their weighted least-squares fit by what the linear fit re-solves in every column.

        That is the background's polynomial (none for ``none``) and, if given,
        the ``profile`` (the column's amplitude): what a shape parameter's
        derivative does to the model that the linear parameters cannot take
        up. Gauss-Newton steps of a profile whose amplitudes and background
        are re-solved at every step (variable projection) follow these: without
        the background they trade the profile's wings against it and wander,
        without the amplitude they converge only linearly.
        """
        L = (_legendre_rows(weights.shape[-2], min(self.degree, weights.shape[-2] - 2)) if self.fitted
             else np.zeros((weights.shape[-2], 0)))
        if L.shape[1] == 0 and profile is None:
            return arrays
        names = list(arrays)
        P = None if profile is None else np.broadcast_to(np.asarray(profile, float), weights.shape)
        coeffs = _column_least_squares(L, P, weights, np.stack([arrays[name] for name in names]))
        return {name: arrays[name] - _column_model(L, P, coeffs[k]) for k, name in enumerate(names)}

    def basis(self, ny: int, nx: int) -> tuple[np.ndarray, sparse.csr_array]:
        """The separable basis ``B(y, x) = sum_mj c_mj S_m(x) L_j(y)``: ``L (ny, J)`` and sparse ``S (nx, M)``.

        ``column``: ``S`` is the identity (a polynomial of its own in every
        column); ``smooth``: the cubic B-splines along the dispersion.
        Raises ValueError for ``none``, which has no background to fit.
        """
        if not self.fitted:
            raise ValueError("a scene without background ('none') has no background basis")
        L = _legendre_rows(ny, min(self.degree, ny - 2))
        if self.kind == "column":
            return L, sparse.identity(nx, format="csr")
        return L, _spline_bases(nx, self.knot_spacing).S

    def fit(self, data, profile, var_rnoise, var_poisson=None, var_flat=None, mask=None, **kwargs) -> SceneResult:
        """`fit_scene` with this background."""
        return fit_scene(data, profile, var_rnoise, var_poisson, var_flat, mask, background=self.kind,
                         degree=self.degree, knot_spacing=self.knot_spacing, **kwargs)


@dataclass
class SceneResult(HasVariances):
    """The scene model of a slit: per-column source amplitudes and the background image.

    Per-column arrays have the data's shape without the row axis ``(..., nx)``;
    ``background`` and ``rejected`` have the data's shape.
    """

    flux: np.ndarray
    """Amplitude of the profile (NaN where the column could not be fitted)."""
    var_poisson: np.ndarray
    var_rnoise: np.ndarray
    var_flat: np.ndarray
    """Variance components of ``flux``, marginalised over the background: they add up to ``var_total``."""
    var_total: np.ndarray
    var_known_background: np.ndarray
    """Variance ``flux`` would have if the background were known (``1 / sum(P**2 / V)``)."""
    background: np.ndarray
    """The fitted background ``B``, data-shaped."""
    npixels: np.ndarray
    """Effective number of pixels, ``sum_good(P) / sum(P**2)`` (jwst's definition)."""
    coverage: np.ndarray
    """Fraction of ``sum(P)`` on good pixels."""
    n_rejected: np.ndarray
    rejected: np.ndarray
    """True for pixels rejected as outliers by the fit itself."""
    valid: np.ndarray
    inverse_variance: np.ndarray | None = None
    """Final weights ``1/V`` of every pixel (0 where not used), if asked for."""

    def model(self, profile: np.ndarray) -> np.ndarray:
        """The fitted scene ``f P + B`` for the profile the fit was made with."""
        return np.nan_to_num(self.flux)[..., None, :] * profile + self.background


def fit_scene(
    data: np.ndarray,
    profile: np.ndarray,
    var_rnoise: np.ndarray,
    var_poisson: np.ndarray | None = None,
    var_flat: np.ndarray | None = None,
    mask: np.ndarray | None = None,
    background: str = "smooth",
    degree: int = 1,
    knot_spacing: float = 32.0,
    reject_sigma: float | None = 5.0,
    max_reject_iterations: int = 10,
    min_coverage: float = 0.3,
    chunk_pixels: int = 1 << 21,
    return_inverse_variance: bool = False,
    with_variance: bool = True,
    shared_source: bool = False,
) -> SceneResult:
    """Fit source amplitudes and background of a slit together, for a given profile.

    Parameters
    ----------
    data : ndarray
        ``(..., ny, nx)``, dispersion along the last axis; every leading index
        (integration) is fitted alone.
    profile : ndarray
        The source's image per unit flux, broadcastable to ``data`` and used as
        given (not normalised here: normalise the source image to one over the
        slit, and give negative nod images their weights). Pixels where it is
        zero still constrain the background.
    var_rnoise, var_poisson, var_flat : ndarray
        Variance components as for `~jwst_optextract.core.optimal.optimal_extract`:
        only a smooth model of ``var_poisson`` enters the weights.
    mask : ndarray of bool, optional
        True for good pixels. Non-finite data or variances are always bad.
    background : str
        ``column``: a polynomial of ``degree`` across the slit in every
        column; ``smooth``: that polynomial times a cubic B-spline along the
        dispersion with knots every ``knot_spacing`` columns; ``none``: no
        background (the data are background-subtracted).
    degree : int
        Polynomial degree across the slit.
    knot_spacing : float
        ``smooth``: columns between knots.
    reject_sigma : float or None
        Pixels more than this many standard deviations above the model are
        rejected, the worst of a column at a time; None or 0 disables it.
    max_reject_iterations : int
        At most this many rejection passes.
    min_coverage : float
        Columns whose good pixels hold less than this fraction of the profile
        are not extracted (NaN flux).
    chunk_pixels : int
        Integrations are fitted in chunks of about this many pixels.
    return_inverse_variance : bool
        Also return the final pixel weights.
    with_variance : bool
        False leaves the flux variances NaN, for the fits that use only the
        amplitudes, the background and the weights (the profile fits' many
        steps): the background's covariance is then not computed.
    shared_source : bool
        The leading indices are exposures of one source, whose fluxes are to
        be averaged with their inverse variances: every one's modelled Poisson
        variance follows the exposures' mean flux in the column, not its own.
        A variance that follows an exposure's own noise (higher where its flux
        fluctuated up) weighs it less there, and biased such a mean low (by
        most of a sigma of a bright spectrum's total); one that follows the
        others' weighs the others less where they fluctuated up, and biased it
        high by half as much. The mean flux moves the weights of all
        exposures alike, and follows the spectrum, emission lines and all.
        Exposures are fitted together only within a chunk of ``chunk_pixels``.

    Returns
    -------
    SceneResult
    """
    if background not in SCENE_BACKGROUNDS:
        raise ValueError(f"unknown scene background {background!r}; use one of {tuple(SCENE_BACKGROUNDS)}")
    data = np.asarray(data)
    if data.ndim < 2:
        raise ValueError(f"data must have at least 2 dimensions (rows, columns); got shape {data.shape}")
    shape = data.shape
    ny, nx = shape[-2:]
    lead = shape[:-2]
    n = math.prod(lead)
    model = _background_model(background, ny, nx, degree, knot_spacing)
    dtype = np.float32 if data.dtype == np.float32 else np.float64
    out = _empty_result(shape, dtype, return_inverse_variance)
    flat = {key: value.reshape((n,) + value.shape[len(lead):]) for key, value in vars(out).items()
            if isinstance(value, np.ndarray)}
    arrays = [data.reshape((n, ny, nx))] + [_frames(a, shape, n) for a in (profile, var_rnoise, var_poisson,
                                                                         var_flat, mask)]
    per_chunk = max(1, chunk_pixels // (ny * nx))
    for start in range(0, n, per_chunk):
        part = slice(start, start + per_chunk)
        chunk = [None if a is None else np.asarray(a if a.ndim == 2 else a[part], dt)
                 for a, dt in zip(arrays, (np.float64,) * 5 + (bool,))]
        _fit_chunk(*chunk, model, {k: v[part] for k, v in flat.items()},
                   reject_sigma=reject_sigma or None, max_iterations=max_reject_iterations,
                   min_coverage=min_coverage, with_variance=with_variance, shared_source=shared_source)
    return out


def _empty_result(shape, dtype, with_weights: bool) -> SceneResult:
    per_column = shape[:-2] + shape[-1:]
    return SceneResult(
        **{key: np.empty(per_column, dtype) for key in ("flux", "var_poisson", "var_rnoise", "var_flat",
                                                         "var_total", "var_known_background", "npixels",
                                                         "coverage")},
        background=np.zeros(shape, dtype), n_rejected=np.zeros(per_column, np.int32),
        rejected=np.zeros(shape, bool), valid=np.zeros(per_column, bool),
        inverse_variance=np.zeros(shape, dtype) if with_weights else None,
    )


def _frames(a, shape, n):
    """``a`` as one ``(ny, nx)`` frame, or as ``(n, ny, nx)``; None stays None."""
    if a is None:
        return None
    a = np.asarray(a)
    if a.ndim <= 2:
        return np.broadcast_to(a, shape[-2:])
    return np.broadcast_to(a, shape).reshape((n,) + shape[-2:])


def _fit_chunk(D, P, vr, vp, vf, mask, model, out, reject_sigma, max_iterations, min_coverage, with_variance,
               shared_source=False):
    """Fit ``(n, ny, nx)`` integrations into ``out`` (views of the result's arrays)."""
    shape = D.shape
    good = np.isfinite(D) & np.isfinite(np.broadcast_to(P, shape))
    if mask is not None:
        good &= mask
    for v in (vr, vf):
        if v is not None:
            good &= np.isfinite(v) & (v >= 0)
    if vp is not None:
        good &= np.isfinite(vp)
    D = np.where(good, D, 0.0)
    P = np.broadcast_to(np.nan_to_num(P), shape)
    vr = np.zeros(shape[-2:]) if vr is None else np.where(np.isfinite(vr), vr, 0.0)
    vf = None if vf is None else np.where(np.isfinite(vf), vf, 0.0)
    vp = None if vp is None else np.where(good, vp, 0.0)
    weights = _Weights(D, P, vr, vp, vf, good, _legendre_rows(D.shape[-2], 2), shared_source)
    rejected = np.zeros(shape, bool)
    sol = model.solve(_Moments.of(D, P, weights.inverse(good), model.L), with_variance=False)
    weights.follow(sol.flux)  # the Poisson model follows the flux (and again after the rejection)
    iv = weights.inverse(good)
    moments = _Moments.of(D, P, iv, model.L)
    sol = model.solve(moments, with_variance=False)
    usable, iv_usable = good.copy(), iv.copy()  # neighbours are compared as data, rejected or not
    for _ in range(max_iterations if reject_sigma else 0):
        residual = D - sol.flux[:, None, :] * P - sol.background
        chi = np.where(good, residual * np.sqrt(iv), -np.inf)
        # Only a pixel that stands out from the same row of its neighbouring columns is an outlier (as in
        # `optimal_extract`): a profile that does not match a bright source leaves residuals that vary smoothly
        # along the dispersion, hundreds of sigma at high signal to noise, and rejecting them took its flux.
        above = np.nonzero(chi > reject_sigma)
        if above[0].size:
            neighbours = np.where(usable, residual * np.sqrt(iv_usable), np.inf)
            smooth = ~sharp_along_dispersion(neighbours, sol.flux, above, reject_sigma)
            chi[tuple(index[smooth] for index in above)] = -np.inf
        row = np.argmax(chi, axis=-2)
        worst = np.take_along_axis(chi, row[:, None, :], axis=-2)[:, 0, :]
        hit = worst > reject_sigma
        if not hit.any():
            break
        i, x = np.nonzero(hit)
        y = row[i, x]
        good[i, y, x] = False
        rejected[i, y, x] = True
        # The weights held during the passes: the sums lose the rejected pixels' terms, no image is summed again.
        moments.remove(i, y, x, D, P, iv, model.L)
        iv[i, y, x] = 0.0
        sol = model.solve(moments, with_variance=False)
    if rejected.any():
        weights.follow(sol.flux)
        iv = weights.inverse(good)
        moments = _Moments.of(D, P, iv, model.L)
        sol = model.solve(moments, with_variance=with_variance)
    elif with_variance:  # the last solution is of these very sums: only its variance is missing
        sol = model.add_variance(moments, sol)
    s = np.einsum("nyx,nyx,nyx->nx", P, P, iv)
    total_p = np.abs(P).sum(axis=-2)
    coverage = np.divide(np.where(good, np.abs(P), 0).sum(axis=-2), total_p, out=np.zeros(s.shape),
                         where=total_p > 0)
    valid = (coverage >= min_coverage) & (s > 0) & np.isfinite(sol.flux)
    if with_variance:
        valid &= np.isfinite(sol.var_total)
    nan = np.where(valid, 1.0, np.nan)
    if with_variance:
        # Variance components: those of the known-background estimate, scaled to the marginal variance.
        w = np.divide(P * iv, s[:, None, :], out=np.zeros(shape), where=s[:, None, :] > 0)
        known = np.divide(1.0, s, out=np.full(s.shape, np.nan), where=s > 0)
        w2 = w * w
        components = {"var_rnoise": np.einsum("nyx,nyx->nx", w2, np.broadcast_to(vr, shape))}
        components["var_flat"] = (np.zeros_like(s) if vf is None else
                                  np.einsum("nyx,nyx->nx", w2, np.broadcast_to(vf, shape)))
        components["var_poisson"] = np.clip(known - components["var_rnoise"] - components["var_flat"], 0, None)
        with np.errstate(invalid="ignore", divide="ignore"):
            scale = sol.var_total / known
        out["var_total"][...] = sol.var_total * nan
        out["var_known_background"][...] = known * nan
        for key, value in components.items():
            out[key][...] = value * scale * nan
    else:
        for key in ("var_total", "var_known_background", "var_rnoise", "var_poisson", "var_flat"):
            out[key][...] = np.nan
    out["flux"][...] = sol.flux * nan
    out["background"][...] = sol.background
    sum_p2 = np.einsum("nyx,nyx->nx", P, P)
    good_p = np.where(good, P, 0).sum(axis=-2)
    out["npixels"][...] = np.divide(good_p, sum_p2, out=np.zeros(s.shape), where=sum_p2 > 0)
    out["coverage"][...] = coverage
    out["valid"][...] = valid
    out["rejected"][...] = rejected
    out["n_rejected"][...] = rejected.sum(axis=-2)
    if "inverse_variance" in out:
        out["inverse_variance"][...] = iv


class _Weights:
    """Signal-independent pixel weights: read noise and flat variance, and a smooth Poisson model.

    The pipeline's ``VAR_POISSON`` is fitted in every column as a polynomial
    across the slit (the background's Poisson variance) plus ``b P`` (the
    source's); its model is ``a(y) + q max(f, 0) max(P, 0)`` with ``q = b / f``
    and both ``a`` and ``q`` medians over blocks of columns, so that no pixel's
    weight depends on its own noise and the source term follows the fitted
    flux ``f`` of the scene (not a first estimate that the background inflates).
    """

    def __init__(self, D, P, vr, vp, vf, good, L, shared_source: bool = False):
        self.base = Variances(np.broadcast_to(vr, D.shape), flat=vf).signal_independent()
        self.P_pos = np.maximum(P, 0)
        # shared_source: the exposures (n, nx) whose mean flux a column's Poisson variance follows (see `fit_scene`)
        self.covered = np.any(good & (self.P_pos > 0), axis=-2) if shared_source else None
        self.V = self.base
        self.b = None
        if vp is not None:
            coeffs = _column_least_squares(L, self.P_pos, good.astype(float), vp[None])[0]
            self.a = _block_median((L @ coeffs[..., :-1, :]).clip(0, None), _BLOCK)
            self.b = coeffs[..., -1, :].clip(0, None)
            self.median_b = _block_median(self.b, _BLOCK)

    def follow(self, flux):
        """Set the modelled Poisson variance for the source amplitudes ``flux`` ``(n, nx)``: each exposure's own,
        or for a shared source the mean of the exposures that cover the column."""
        if self.b is None:
            return
        f = np.clip(np.nan_to_num(flux), 0, None)
        if self.covered is not None:
            measured = self.covered & np.isfinite(flux)
            count = measured.sum(axis=0, keepdims=True)
            mean = np.divide(np.where(measured, f, 0.0).sum(axis=0, keepdims=True), count,
                             out=np.zeros(count.shape), where=count > 0)
            f = np.broadcast_to(mean, f.shape)
        med_f = _block_median(f, _BLOCK)
        q = np.divide(self.median_b, med_f, out=np.zeros_like(med_f), where=med_f > 0)
        self.V = self.base + self.a + (q * f)[:, None, :] * self.P_pos

    def inverse(self, good):
        usable = good & (self.V > 0) & np.isfinite(self.V)
        return np.divide(1.0, self.V, out=np.zeros(self.V.shape), where=usable)


_BLOCK = 31
"""Columns per block of the medians that smooth the Poisson-variance model."""


def _block_median(values: np.ndarray, window: int) -> np.ndarray:
    """Median over consecutive blocks of ``window`` columns (the last axis), repeated to every column.

    Robust to single outlying columns (a cosmic ray in ``VAR_POISSON``); the
    last, shorter block has its own median.
    """
    nx = values.shape[-1]
    full = nx // window * window
    parts = []
    if full:
        blocks = values[..., :full].reshape(values.shape[:-1] + (nx // window, window))
        parts.append(np.repeat(_median_last(blocks), window, axis=-1))
    if full < nx:
        tail = values[..., full:]
        parts.append(np.broadcast_to(_median_last(tail)[..., None], tail.shape))
    return np.concatenate(parts, axis=-1)


def _median_last(values: np.ndarray) -> np.ndarray:
    """``np.median(values, axis=-1)``, the same numbers, selected in a quarter of the time for an odd count.

    The median of an odd count is its middle order statistic, which one
    partition finds (``np.median`` partitions for the largest element too, to
    find NaNs, and averages the one middle element); NaN if any value is NaN.
    """
    count = values.shape[-1]
    if count % 2 == 0:
        return np.median(values, axis=-1)
    middle = np.partition(values, count // 2, axis=-1)[..., count // 2]
    return np.where(np.isnan(values).any(axis=-1), np.nan, middle)


@dataclass
class _Solution:
    flux: np.ndarray
    background: np.ndarray
    var_total: np.ndarray | None = None
    system: np.ndarray | None = None
    """The regularised normal matrices solved (`_solve_small`), for the variance (`add_variance`)."""


@dataclass
class _Moments:
    """Per-column weighted sums of the scene's linear fit (``w = 1/V`` on good pixels).

    ``s = sum P^2 w``, ``p = sum P D w``, ``u_j = sum P L_j w``, ``r_j = sum L_j D w``
    and ``m_jk = sum L_j L_k w``, with ``L`` the background's polynomial across
    the slit; shapes ``(n, nx)``, ``(n, J, nx)`` and ``(n, J, J, nx)``.
    """

    s: np.ndarray
    p: np.ndarray
    u: np.ndarray
    r: np.ndarray
    m: np.ndarray

    @classmethod
    def of(cls, D, P, iv, L) -> _Moments:
        n, _, nx = D.shape
        J = L.shape[1]
        Pw = P * iv
        Dw = D * iv
        return cls(s=np.einsum("nyx,nyx->nx", Pw, P), p=np.einsum("nyx,nyx->nx", Pw, D),
                   u=np.matmul(L.T, Pw), r=np.matmul(L.T, Dw),
                   m=np.matmul(_row_products(L), iv).reshape(n, J, J, nx))

    def remove(self, i, y, x, D, P, iv, L) -> None:
        """Take the pixels ``(i, y, x)`` (at most one per integration and column) out of the sums."""
        w = iv[i, y, x]
        Pw, Dw = P[i, y, x] * w, D[i, y, x] * w
        Ly = L[y]  # (k, J)
        self.s[i, x] -= P[i, y, x] * Pw
        self.p[i, x] -= D[i, y, x] * Pw
        self.u[i, :, x] -= Ly * Pw[:, None]
        self.r[i, :, x] -= Ly * Dw[:, None]
        self.m[i, :, :, x] -= Ly[:, :, None] * Ly[:, None, :] * w[:, None, None]

    @property
    def inverse_s(self) -> np.ndarray:
        return np.divide(1.0, self.s, out=np.zeros_like(self.s), where=self.s > 0)


class _ColumnPolynomial:
    """``B(y, x) = sum_j b_j(x) L_j(y)``: every column's amplitude and polynomial solved together."""

    def __init__(self, ny: int, nx: int, degree: int, knot_spacing: float):
        self.L = _legendre_rows(ny, min(degree, ny - 2))  # (ny, J)

    def solve(self, mom: _Moments, with_variance: bool) -> _Solution:
        n, J, nx = mom.u.shape
        normal = np.empty((n, nx, J + 1, J + 1))
        normal[..., 0, 0] = mom.s
        normal[..., 0, 1:] = normal[..., 1:, 0] = np.moveaxis(mom.u, 1, -1)
        normal[..., 1:, 1:] = np.moveaxis(mom.m, 3, 1)
        rhs = np.concatenate([mom.p[..., None], np.moveaxis(mom.r, 1, -1)], axis=-1)
        coeffs, system = _solve_small(normal, rhs)
        background = np.matmul(self.L, np.moveaxis(coeffs[..., 1:], -1, 1))
        solution = _Solution(coeffs[..., 0], background, system=system)
        return self.add_variance(mom, solution) if with_variance else solution

    def add_variance(self, mom: _Moments, sol: _Solution) -> _Solution:
        """``sol`` (a solution of ``mom``) with the flux variance, marginalised over the background."""
        sol.var_total = np.linalg.inv(sol.system)[..., 0, 0]
        return sol


class _SmoothBackground:
    """``B(y, x) = sum_mj c_mj S_m(x) L_j(y)``: one system of the background coefficients of the slit.

    Each column's amplitude is eliminated (`_Moments` names the sums): the
    coefficients solve ``sum_x S(x) S(x)^T (x) (m - u u^T / s) c = sum_x S(x) (x)
    (r - u p / s)``, then ``f = (p - u . b(x)) / s`` with ``b(x)`` the column's
    background polynomial. The sums over columns are products with the sparse
    matrix of the products of the splines, ``S_m(x) S_l(x)`` (16 per column),
    computed once.
    """

    def __init__(self, ny: int, nx: int, degree: int, knot_spacing: float):
        self.L = _legendre_rows(ny, min(degree, ny - 2))
        self.M, self.S, self.SS, self.S_T, self.SS_T, self.S2_T = _spline_bases(nx, knot_spacing)

    def solve(self, mom: _Moments, with_variance: bool) -> _Solution:
        n, J, nx = mom.u.shape
        S, M = self.S, self.M
        inv_s = mom.inverse_s
        Q = mom.m - mom.u[:, :, None, :] * mom.u[:, None, :, :] * inv_s[:, None, None, :]
        q = mom.r - mom.u * (mom.p * inv_s)[:, None, :]
        normal = (self.SS_T @ Q.reshape(n * J * J, nx).T).reshape(M, M, n, J, J)
        normal = normal.transpose(2, 0, 3, 1, 4).reshape(n, M * J, M * J)
        rhs = (self.S_T @ q.reshape(n * J, nx).T).reshape(M, n, J).transpose(1, 0, 2).reshape(n, M * J)
        # The elimination leaves a coefficient the source's amplitude takes up entirely (no pixel but those under
        # the source) a diagonal of rounding errors: its information is measured against the background's own.
        own = self.S2_T @ np.diagonal(mom.m, axis1=1, axis2=2).transpose(0, 2, 1).reshape(n * J, nx).T
        coeffs, system = _solve_small(normal, rhs, scale=own.reshape(M, n, J).max(axis=(0, 2)))
        c = coeffs.reshape(n, M, J).transpose(1, 0, 2).reshape(M, n * J)
        per_column = (S @ c).reshape(nx, n, J).transpose(1, 2, 0)  # (n, J, nx)
        background = np.matmul(self.L, per_column)
        flux = (mom.p - np.einsum("njx,njx->nx", mom.u, per_column)) * inv_s
        solution = _Solution(flux, background, system=system)
        return self.add_variance(mom, solution) if with_variance else solution

    def add_variance(self, mom: _Moments, sol: _Solution) -> _Solution:
        """``sol`` (a solution of ``mom``) with the flux variance, marginalised over the background."""
        n, J, nx = mom.u.shape
        M = self.M
        inv_s = mom.inverse_s
        # var f = 1/s + g^T C g with g = S(x) (x) u / s: the background's uncertainty under the source
        inverse = np.linalg.inv(sol.system)
        C = inverse.reshape(n, M, J, M, J).transpose(1, 3, 0, 2, 4).reshape(M * M, n * J * J)
        H = (self.SS @ C).reshape(nx, n, J, J).transpose(1, 0, 2, 3)  # covariance of each column's polynomial
        g = mom.u * inv_s[:, None, :]
        extra = np.einsum("njx,nxjk,nkx->nx", g, H, g)
        sol.var_total = np.where(mom.s > 0, inv_s + extra, np.nan)
        return sol


class _NoBackground:
    """``B = 0``: the data are background-subtracted; the scene is the source alone."""

    def __init__(self, ny: int, nx: int, degree: int, knot_spacing: float):
        self.L = np.zeros((ny, 0))  # no background terms

    def solve(self, mom: _Moments, with_variance: bool) -> _Solution:
        inv_s = np.divide(1.0, mom.s, out=np.full(mom.s.shape, np.nan), where=mom.s > 0)
        n, nx = mom.s.shape
        return _Solution(mom.p * inv_s, np.zeros((n, self.L.shape[0], nx)), inv_s if with_variance else None)

    def add_variance(self, mom: _Moments, sol: _Solution) -> _Solution:
        """``sol`` (a solution of ``mom``) with the flux variance ``1 / s``."""
        sol.var_total = np.divide(1.0, mom.s, out=np.full(mom.s.shape, np.nan), where=mom.s > 0)
        return sol


SCENE_BACKGROUNDS = {"smooth": _SmoothBackground, "column": _ColumnPolynomial, "none": _NoBackground}
"""The background models of the scene, by name."""


@functools.lru_cache(maxsize=32)
def _background_model(kind: str, ny: int, nx: int, degree: int, knot_spacing: float):
    """The background model of a slit shape: its bases are built once for the many fits of one slit.

    A slit of one row cannot tell a background across it from the source: it gets none.
    """
    if ny < 2 and kind != "none":
        log.warning("A slit of %d row has no room for a background beside the source: none is fitted", ny)
        kind = "none"
    return SCENE_BACKGROUNDS[kind](ny, nx, degree, knot_spacing)


def _column_least_squares(L: np.ndarray, profile: np.ndarray | None, weights: np.ndarray,
                           values: np.ndarray) -> np.ndarray:
    """Weighted least-squares coefficients, column by column, of ``values`` on the rows' polynomials and a profile.

    The design of column ``x`` is ``L`` ``(ny, J)`` and, if given, ``profile[..., :, x]``; ``weights`` is
    ``(..., ny, nx)`` and ``values`` ``(k, ..., ny, nx)``, ``k`` arrays fitted at once. The sums over rows are
    products with ``L`` (the design is separable), not a contraction of a ``(..., ny, nx, J + 1)`` design. Returns
    ``(k, ..., J [+ 1], nx)``: the polynomial's coefficients, then the profile's; a coefficient no pixel
    constrains is zero (`_regularised`).
    """
    J = L.shape[1]
    K = J + (profile is not None)
    lead, nx = weights.shape[:-2], weights.shape[-1]
    weighted = weights * values  # (k, ..., ny, nx)
    normal = np.empty(lead + (nx, K, K))
    rhs = np.empty(values.shape[:-2] + (nx, K))
    normal[..., :J, :J] = np.moveaxis((_row_products(L) @ weights).reshape(lead + (J, J, nx)), -1, -3)
    rhs[..., :J] = np.swapaxes(L.T @ weighted, -1, -2)
    if profile is not None:
        Pw = profile * weights
        normal[..., :J, J] = normal[..., J, :J] = np.swapaxes(L.T @ Pw, -1, -2)
        normal[..., J, J] = np.sum(Pw * profile, axis=-2)
        rhs[..., J] = np.sum(weighted * profile, axis=-2)
    normal = _regularised(normal)
    coeffs = np.linalg.solve(normal, np.moveaxis(rhs, 0, -1))  # (..., nx, K, k)
    return np.moveaxis(coeffs, (-1, -3), (0, -1))


def _row_products(L: np.ndarray) -> np.ndarray:
    """``(J * J, ny)``: every product ``L_j L_k`` of the rows' polynomials ``L`` ``(ny, J)``, whose weighted sums over
    rows are the polynomial's normal matrix."""
    J = L.shape[1]
    return (L[:, :, None] * L[:, None, :]).reshape(L.shape[0], J * J).T


def _column_model(L: np.ndarray, profile: np.ndarray | None, coeffs: np.ndarray) -> np.ndarray:
    """``L`` times the polynomial's coefficients, plus ``profile`` times its own (`_column_least_squares`)."""
    J = L.shape[1]
    model = L @ coeffs[..., :J, :]
    return model if profile is None else model + profile * coeffs[..., J, :]


def _solve_small(normal, rhs, scale=None):
    """Solve a stack of small symmetric systems; rows with no information are held at zero.

    A coefficient that no good pixel constrains (a column with no good pixel,
    a spline with no data under it) would make the system singular: a tiny
    ridge, relative to the largest diagonal element (or to ``scale``, one per
    system, where it is larger), holds it at zero without changing the others.

    Returns the solutions and the regularised matrices (whose inverse is the
    coefficients' covariance).
    """
    regular = _regularised(normal, scale)
    return np.linalg.solve(regular, rhs[..., None])[..., 0], regular


def _regularised(normal, scale=None):
    """The normal matrices with `_solve_small`'s ridge on the diagonal."""
    diag = np.einsum("...kk->...k", normal)
    largest = diag.max(axis=-1, keepdims=True)
    if scale is not None:
        largest = np.maximum(largest, np.reshape(scale, largest.shape))
    scale = np.maximum(largest, 1e-300)
    ridge = np.where(diag > 1e-12 * scale, 1e-12 * scale, scale)
    return normal + ridge[..., None] * np.eye(normal.shape[-1])


@functools.lru_cache(maxsize=64)
def _legendre_rows(ny: int, degree: int) -> np.ndarray:
    """``(ny, degree + 1)`` Legendre polynomials of the row, scaled to [-1, 1] over the slit (read only: shared)."""
    t = np.linspace(-1.0, 1.0, ny) if ny > 1 else np.zeros(1)
    rows = legendre.legvander(t, max(degree, 0))
    rows.flags.writeable = False
    return rows


class _SplineBases(NamedTuple):
    """`_SmoothBackground`'s sparse bases of a slit length: the ``M`` cubic B-splines along the dispersion."""

    M: int
    S: sparse.csr_array
    """``(nx, M)``: the splines in every column."""
    SS: sparse.csr_array
    """``(nx, M * M)``: the products ``S_m(x) S_l(x)``."""
    S_T: sparse.csr_array
    SS_T: sparse.csr_array
    """The transposes of ``S`` and ``SS``, made once, not at every solve."""
    S2_T: sparse.csr_array
    """``(M, nx)``: the squares ``S_m(x)**2``, transposed (the background's own information)."""


@functools.lru_cache(maxsize=16)
def _spline_bases(nx: int, knot_spacing: float) -> _SplineBases:
    """The smooth background's bases of ``nx`` columns, made once for every slit of that length."""
    dense = _spline_columns(nx, knot_spacing)
    M = dense.shape[1]
    S = sparse.csr_array(dense)
    SS = sparse.csr_array((dense[:, :, None] * dense[:, None, :]).reshape(nx, M * M))
    return _SplineBases(M, S, SS, S.T.tocsr(), SS.T.tocsr(), sparse.csr_array(dense**2).T.tocsr())


def _spline_columns(nx: int, knot_spacing: float) -> np.ndarray:
    """``(nx, M)`` cubic B-spline basis along the dispersion, knots every ``knot_spacing`` columns."""
    n_intervals = max(1, round((nx - 1) / max(knot_spacing, 1.0)))
    edges = np.linspace(0.0, nx - 1.0, n_intervals + 1)
    knots = np.r_[[edges[0]] * 3, edges, [edges[-1]] * 3]
    return BSpline.design_matrix(np.arange(nx, dtype=float), knots, 3).toarray()
