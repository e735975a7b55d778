"""Trace (cross-dispersion centre per column) from the data.

A first estimate only: binned, window-limited centroids smoothed by a
clipped polynomial. The Gaussian profile fit in `jwst_optextract.core.profile`
refines the centre jointly with the width.
"""

from __future__ import annotations

import logging

import numpy as np
from numpy.polynomial import legendre

__all__ = [
    "collapse_integrations", "find_trace", "fit_smooth", "negative_traces", "peak_row",
    "shifted_profiles", "trace_shifts",
]

log = logging.getLogger(__name__)


def collapse_integrations(data: np.ndarray, good: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean over leading (integration) axes of the good pixels.

    Returns the 2D mean image (zero where no integration is good) and the 2D
    mask of pixels good in at least one integration.
    """
    if data.ndim == 2:
        return np.where(good, data, 0.0), good
    axes = tuple(range(data.ndim - 2))
    n = good.sum(axis=axes)
    total = np.where(good, data, 0.0).sum(axis=axes)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, total / n, 0.0), n > 0


def peak_row(image: np.ndarray, good: np.ndarray) -> float:
    """Row of the brightest cross-dispersion peak of the median column profile."""
    with np.errstate(invalid="ignore"):
        collapsed = np.nanmedian(np.where(good, image, np.nan), axis=-1)
    if not np.isfinite(collapsed).any():
        return (image.shape[-2] - 1) / 2.0
    collapsed = np.nan_to_num(collapsed, nan=-np.inf)
    return float(np.argmax(collapsed))


def find_trace(
    image: np.ndarray,
    good: np.ndarray,
    guess: float | None = None,
    half_window: float = 4.0,
    bin_width: int = 16,
    degree: int = 3,
    clip_sigma: float = 4.0,
) -> np.ndarray:
    """Centre row of the trace in every column of a 2D image.

    Parameters
    ----------
    image : ndarray
        Background-subtracted 2D image ``(ny, nx)``.
    good : ndarray of bool
        Good-pixel mask, same shape.
    guess : float, optional
        Starting row (e.g. from the WCS source position); default: the
        brightest peak of the median column profile.
    half_window : float
        Half-width, in pixels, of the window in which centroids are taken.
    bin_width : int
        Columns summed per centroid, for signal to noise.
    degree : int
        Degree of the Legendre polynomial smoothing the centroids.
    clip_sigma : float
        Centroids further than this many robust standard deviations from the
        fit are dropped, iteratively.

    Returns
    -------
    ndarray
        Trace centre per column, shape ``(nx,)``, in 0-based row coordinates.
    """
    ny, nx = image.shape
    row0 = peak_row(image, good) if guess is None else float(guess)
    nbins = max(1, nx // bin_width)
    edges = np.linspace(0, nx, nbins + 1).astype(int)
    img = np.where(good, image, 0.0)
    binned = np.add.reduceat(img, edges[:-1], axis=1)
    x_bin = 0.5 * (edges[:-1] + edges[1:] - 1)
    rows = np.arange(ny, dtype=float)[:, None]
    centre = np.full(nbins, row0)
    # Two passes: a centroid about the guess, then about the first centroids.
    for _ in range(2):
        inside = np.abs(rows - centre) <= half_window
        w = np.where(inside, np.clip(binned, 0, None), 0.0)
        total = w.sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            centre = np.where(total > 0, (w * rows).sum(axis=0) / total, row0)
    signal = np.where(np.abs(rows - centre) <= half_window, binned, 0.0).sum(axis=0)
    usable = signal > 0
    if usable.sum() < degree + 1:
        log.warning("Trace: too few columns with signal to fit; using a constant row %.2f", row0)
        return np.full(nx, row0)
    return fit_smooth(x_bin[usable], centre[usable], nx, degree, clip_sigma, weights=signal[usable])


def fit_smooth(
    x: np.ndarray,
    y: np.ndarray,
    nx: int,
    degree: int,
    clip_sigma: float = 4.0,
    weights: np.ndarray | None = None,
    max_iterations: int = 5,
) -> np.ndarray:
    """Clipped Legendre fit of ``y(x)``, evaluated at columns ``0 .. nx-1``."""
    t = _scaled(x, nx)
    keep = np.isfinite(y)
    w = np.ones_like(y) if weights is None else np.asarray(weights, dtype=float)
    deg = min(degree, max(int(keep.sum()) - 1, 0))
    coef = legendre.legfit(t[keep], y[keep], deg, w=np.sqrt(w[keep]))
    for _ in range(max_iterations):
        resid = y - legendre.legval(t, coef)
        scale = 1.4826 * np.median(np.abs(resid[keep])) + 1e-12
        new_keep = np.isfinite(y) & (np.abs(resid) <= clip_sigma * scale)
        if new_keep.sum() < deg + 1 or np.array_equal(new_keep, keep):
            break
        keep = new_keep
        coef = legendre.legfit(t[keep], y[keep], deg, w=np.sqrt(w[keep]))
    return legendre.legval(_scaled(np.arange(nx), nx), coef)


def _scaled(x: np.ndarray, nx: int) -> np.ndarray:
    return 2.0 * np.asarray(x, dtype=float) / max(nx - 1, 1) - 1.0


def shifted_profiles(P0: np.ndarray, dP: np.ndarray, d2P: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    """Profiles ``(nints, ny, nx)`` for small trace shifts, by a second-order Taylor expansion.

    ``P0`` is the profile about the shared trace and ``dP``, ``d2P`` its first and
    second derivatives with respect to the trace centre; accurate to a fraction
    of a percent of the peak for shifts up to a few tenths of a pixel.
    """
    d = np.asarray(shifts, dtype=float)[:, None, None]
    return P0[None] + d * dP[None] + 0.5 * d * d * d2P[None]


def trace_shifts(
    data: np.ndarray,
    good: np.ndarray,
    weights: np.ndarray,
    spectrum: np.ndarray,
    P0: np.ndarray,
    dP: np.ndarray,
    d2P: np.ndarray,
    iterations: int = 4,
    reject_sigma: float = 5.0,
) -> np.ndarray:
    """Per-integration cross-dispersion shift of a shared trace (jitter), all integrations at once.

    Integration ``i`` is modelled as ``s_i f(x) P(y; c(x) + d_i)``: the mean
    spectrum ``f`` scaled by a white-light factor ``s_i``, on the shared profile
    shifted by ``d_i`` (second-order Taylor in ``d_i``). Everything the fit
    needs from the data is three projections of each integration onto fixed
    templates (``W f P``, ``W f dP``, ``W f d2P``), so the cube is read a
    handful of times and the Gauss-Newton iterations run on ``(nints,)``
    arrays.

    Parameters
    ----------
    data, good : ndarray
        ``(nints, ny, nx)`` data and good-pixel mask.
    weights : ndarray
        ``(ny, nx)`` inverse variance of one integration (signal independent).
    spectrum : ndarray
        ``(nx,)`` mean extracted spectrum.
    P0, dP, d2P : ndarray
        ``(ny, nx)`` profile about the shared trace and its first and second
        derivatives with respect to the trace centre.
    iterations : int
        Gauss-Newton iterations.
    reject_sigma : float
        Pixels further than this from the unshifted model of their integration
        (cosmic rays) are replaced by that model, so they carry no shift.

    Returns
    -------
    ndarray
        ``(nints,)`` shifts in pixels (positive: towards higher rows), with
        median zero: the shared trace is the median position.
    """
    W = np.where(np.isfinite(weights), weights, 0).astype(np.float32)
    basis = [(spectrum * T).astype(np.float32) for T in (P0, dP, d2P)]
    templates = [W * B for B in basis]
    gram = {(j, k): float(np.sum(W * basis[j] * basis[k])) for j in range(3) for k in range(j, 3)}
    # first pass: bad pixels only replaced (by the scaled, unshifted model)
    scale = np.einsum("iyx,yx->i", np.where(good, data, 0), templates[0]) / gram[(0, 0)]
    s, d = scale, np.zeros_like(scale)
    for use_outliers in (False, True):
        expected = shifted_profiles(basis[0], basis[1], basis[2], d) * s[:, None, None]
        bad = ~good
        if use_outliers:  # second pass: cosmic rays judged against the shifted model
            bad = bad | (np.abs(np.nan_to_num(data) - expected) * np.sqrt(W) > reject_sigma)
        clean = np.where(bad, expected, data).astype(np.float32)
        projections = [np.einsum("iyx,yx->i", clean, T) for T in templates]
        s, d = _fit_scale_and_shift(projections, gram, s, d, iterations)
    return d - np.median(d)


def _fit_scale_and_shift(projections, gram, s, d, iterations):
    """Gauss-Newton for ``(s_i, d_i)`` of the model ``s (P + d P' + d^2/2 P'')`` from data projections."""
    a, b, c = projections

    def inner(u, v):  # <m_u, m_v> for model terms given as coefficient triples on (P, P', P'')
        return sum(u[j] * v[k] * gram[(min(j, k), max(j, k))] for j in range(3) for k in range(3))

    for _ in range(iterations):
        m = (s, s * d, 0.5 * s * d * d)
        ds = (np.ones_like(s), d, 0.5 * d * d)
        dd = (np.zeros_like(s), s, s * d)
        r_s = a * ds[0] + b * ds[1] + c * ds[2] - inner(ds, m)
        r_d = b * dd[1] + c * dd[2] - inner(dd, m)
        h_ss, h_sd, h_dd = inner(ds, ds), inner(ds, dd), inner(dd, dd)
        det = h_ss * h_dd - h_sd * h_sd
        with np.errstate(invalid="ignore", divide="ignore"):
            s = s + np.where(det > 0, (h_dd * r_s - h_sd * r_d) / det, 0.0)
            d = d + np.where(det > 0, (h_ss * r_d - h_sd * r_s) / det, 0.0)
    return s, d


def negative_traces(
    image: np.ndarray, good: np.ndarray, center: np.ndarray, flux: np.ndarray, variance: np.ndarray,
    threshold: float = 5.0,
) -> np.ndarray:
    """Offsets (whole pixels) from the trace of negative traces left by nod subtraction.

    The image is stacked in trace-relative rows with each column weighted by
    its extracted flux (a matched filter: a negative trace is a scaled copy of
    the positive one, so its emission lines and bright continuum count most),
    and the stack is searched for local minima more than ``threshold``
    standard errors below zero.

    Parameters
    ----------
    image, good : ndarray
        ``(ny, nx)`` image and good-pixel mask.
    center : ndarray
        ``(nx,)`` trace of the positive source.
    flux : ndarray
        ``(nx,)`` extracted flux of the positive source.
    variance : ndarray
        ``(ny, nx)`` pixel variances.
    threshold : float
        Significance of a negative trace, in standard errors.
    """
    ny, nx = image.shape
    offsets = np.arange(ny)[:, None] - np.round(center)[None, :]
    k = (offsets + ny).astype(int)
    w = np.broadcast_to(np.clip(np.nan_to_num(flux), 0, None)[None, :], image.shape)
    use = good & (w > 0) & np.isfinite(variance)
    weight_sum = np.bincount(k[use], weights=w[use] ** 2, minlength=2 * ny)
    stack = np.bincount(k[use], weights=(w * image)[use], minlength=2 * ny)
    noise = np.bincount(k[use], weights=(w**2 * variance)[use], minlength=2 * ny)
    with np.errstate(invalid="ignore", divide="ignore"):
        significance = stack / np.sqrt(noise)
    significant = (weight_sum > 0) & (significance < -threshold)
    local_min = np.r_[False, (significance[1:-1] < significance[:-2]) & (significance[1:-1] < significance[2:]), False]
    return (np.flatnonzero(significant & local_min) - ny).astype(float)
