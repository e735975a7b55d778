"""Trace (cross-dispersion centre per column) from the data.

A first estimate only: binned, window-limited centroids smoothed by a
clipped polynomial. The Gaussian profile fit in `jwst_optextract.core.profile`
refines the centre jointly with the width.
"""

from __future__ import annotations

import logging

import numpy as np
from numpy.polynomial import legendre

__all__ = ["collapse_integrations", "find_trace", "peak_row", "fit_smooth"]

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
