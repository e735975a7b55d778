"""Box extraction with fractional-pixel aperture edges.

The aperture convention is that of jwst ``extract_1d``: limits ``lower`` and
``upper`` are *inclusive* pixel indices, so the aperture covers the interval
``[lower - 0.5, upper + 0.5]`` in pixel coordinates, and each pixel is weighted
by the fraction of it that lies inside.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .pixels import VarianceComponents

__all__ = ["BoxResult", "aperture_weights", "box_extract", "trace_aperture"]


@dataclass
class BoxResult(VarianceComponents):
    """Box-extracted spectrum; every array has the input's shape without the row axis."""

    flux: np.ndarray
    var_poisson: np.ndarray
    var_rnoise: np.ndarray
    var_flat: np.ndarray
    npixels: np.ndarray
    filled: np.ndarray
    """Number of flagged pixels in the aperture whose value came from the profile model."""


def trace_aperture(trace: np.ndarray, width: float) -> tuple[np.ndarray, np.ndarray]:
    """Inclusive aperture limits of full width ``width`` centred on ``trace``.

    Parameters
    ----------
    trace : ndarray
        Centre row of the aperture per column, shape ``(..., nx)``.
    width : float
        Full width of the aperture in pixels.

    Returns
    -------
    lower, upper : ndarray
        Inclusive limits, as jwst ``extract_1d`` defines them from a trace and
        ``extract_width``.
    """
    lower = np.asarray(trace, dtype=float) - (width - 1.0) / 2.0
    return lower, lower + width - 1.0


def aperture_weights(ny: int, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """Fraction of each pixel inside the aperture ``[lower - 0.5, upper + 0.5]``.

    Parameters
    ----------
    ny : int
        Number of rows (cross-dispersion pixels).
    lower, upper : float or ndarray
        Inclusive limits per column, broadcastable to ``(..., nx)``.

    Returns
    -------
    ndarray
        Weights in [0, 1], shape ``(..., ny, nx)``.
    """
    rows = np.arange(ny, dtype=float)[:, None]
    lower = np.atleast_1d(np.asarray(lower, dtype=float))[..., None, :]
    upper = np.atleast_1d(np.asarray(upper, dtype=float))[..., None, :]
    overlap = np.minimum(rows - lower + 1.0, upper - rows + 1.0)
    return np.clip(overlap, 0.0, 1.0)


def box_extract(
    data: np.ndarray,
    weights: np.ndarray,
    var_rnoise: np.ndarray,
    var_poisson: np.ndarray | None = None,
    var_flat: np.ndarray | None = None,
    mask: np.ndarray | None = None,
    fill_profile: np.ndarray | None = None,
    fill_flux: np.ndarray | None = None,
) -> BoxResult:
    """Sum the data inside an aperture, column by column.

    Parameters
    ----------
    data : ndarray
        Shape ``(..., ny, nx)``, dispersion along the last axis.
    weights : ndarray
        Aperture weights (see `aperture_weights`), broadcastable to ``data``.
    var_rnoise, var_poisson, var_flat : ndarray or None
        Variance components, broadcastable to ``data``; None means zero.
    mask : ndarray of bool, optional
        True for good pixels. Non-finite data are always treated as bad.
    fill_profile, fill_flux : ndarray, optional
        When both are given, bad pixels inside the aperture are replaced by
        ``fill_flux * fill_profile`` (a spectrum of shape ``(..., nx)`` times a
        normalised profile) instead of being dropped, so a flagged pixel no
        longer loses flux. Filled pixels add no variance and count in
        ``npixels``.

    Returns
    -------
    BoxResult
        ``flux = sum(w D)``, each variance ``sum(w**2 var)``, ``npixels = sum(w)``
        over the pixels used, exactly as jwst ``extract_1d`` computes them;
        NaN flux where no pixel is used (``npixels == 0``; the variances are
        then zero, as jwst writes them).
    """
    good = np.isfinite(data)
    if mask is not None:
        good &= mask
    w = np.where(good, weights, 0.0)
    flux = np.sum(np.where(good, data, 0.0) * w, axis=-2)
    npixels = np.sum(w, axis=-2)
    filled = np.zeros(flux.shape, dtype=int)
    if fill_profile is not None and fill_flux is not None:
        w_fill = np.where(good, 0.0, weights)
        flux = flux + np.asarray(fill_flux)[..., :] * np.sum(w_fill * fill_profile, axis=-2)
        npixels = npixels + np.sum(w_fill, axis=-2)
        filled = np.sum(w_fill > 0, axis=-2)

    def _propagate(var: np.ndarray | None) -> np.ndarray:
        if var is None:
            return np.zeros_like(flux)
        return np.sum(np.where(good & np.isfinite(var), var, 0.0) * w**2, axis=-2)

    return BoxResult(
        # A column with no pixel in the aperture has no flux, not a flux of
        # zero; its variances stay zero, as jwst extract_1d writes them.
        flux=np.where(npixels > 0, flux, np.nan),
        var_poisson=_propagate(var_poisson),
        var_rnoise=_propagate(var_rnoise),
        var_flat=_propagate(var_flat),
        npixels=npixels,
        filled=filled,
    )
