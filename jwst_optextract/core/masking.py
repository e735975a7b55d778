"""Pixel masks shared by every step: bad values, DQ bits, saturation, hot pixels, cosmic rays.

Pipeline independent: plain arrays shaped ``(..., ny, nx)`` and integer DQ
bit masks; the datamodel layer turns DQ flag names into bits. Every function
returns a boolean array that is True for *good* pixels, except `source_mask`
and `profile_mask`, which are True *on the source*.
"""

from __future__ import annotations

import logging
import warnings

import numpy as np
from scipy import ndimage

__all__ = [
    "cosmic_ray_mask",
    "dq_mask",
    "finite_mask",
    "good_pixel_mask",
    "hot_pixel_mask",
    "profile_mask",
    "saturation_mask",
    "source_mask",
]

log = logging.getLogger(__name__)

_MAD_TO_SIGMA = 1.4826


def finite_mask(*arrays: np.ndarray | None) -> np.ndarray:
    """True where every given array (None entries ignored) is finite; arrays broadcast."""
    present = [np.asarray(a) for a in arrays if a is not None]
    if not present:
        raise ValueError("finite_mask needs at least one array")
    good = np.ones(np.broadcast_shapes(*(a.shape for a in present)), dtype=bool)
    for array in present:
        good &= np.isfinite(array)
    return good


def dq_mask(dq: np.ndarray, bits: int) -> np.ndarray:
    """True where none of ``bits`` is set in the DQ array."""
    return (np.asarray(dq).astype(np.uint32) & np.uint32(bits)) == 0


def saturation_mask(data: np.ndarray, level: float) -> np.ndarray:
    """True where the data are below a saturation ``level`` (NaN counts as not saturated)."""
    with np.errstate(invalid="ignore"):
        return ~(np.asarray(data) >= level)


def hot_pixel_mask(
    data: np.ndarray,
    mask: np.ndarray | None = None,
    sigma: float = 5.0,
    size: int = 5,
) -> np.ndarray:
    """Pixels far above their neighbours along the dispersion, by a robust threshold.

    Each pixel is compared with the median of the ``size`` pixels around it in
    its row (along the dispersion, where the trace and the background change
    slowly); a pixel whose excess exceeds ``sigma`` robust standard deviations
    (1.4826 x the median absolute excess of its row) is bad. Unresolved
    emission lines brighter than the threshold are flagged too: use a high
    ``sigma`` on bright-line spectra.

    Parameters
    ----------
    data : ndarray
        ``(..., ny, nx)`` image(s).
    mask : ndarray of bool, optional
        Good pixels (True); bad pixels neither count in the medians nor get
        flagged.
    sigma : float
        Threshold in robust standard deviations.
    size : int
        Odd number of columns in the running median.

    Returns
    -------
    ndarray of bool
        True for pixels that are *not* hot.
    """
    data = np.asarray(data, dtype=np.float64)
    good = finite_mask(data) if mask is None else (np.asarray(mask, bool) & np.isfinite(data))
    filled = np.where(good, data, np.nan)
    # NaN-aware running median along the rows: fill bad pixels by the row median first.
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows
        row_median = np.nanmedian(filled, axis=-1, keepdims=True)
        filled = np.where(good, data, np.nan_to_num(row_median))
        footprint = (1,) * (data.ndim - 1) + (int(size),)
        excess = data - ndimage.median_filter(filled, size=footprint, mode="nearest")
        scale = _MAD_TO_SIGMA * np.nanmedian(np.abs(np.where(good, excess, np.nan)), axis=-1, keepdims=True)
        hot = good & (excess > sigma * np.nan_to_num(scale, nan=np.inf))
    if hot.any():
        log.info("%d hot pixel(s) above %.1f robust sigma", int(hot.sum()), sigma)
    return ~hot


def cosmic_ray_mask(data: np.ndarray, var: np.ndarray, mask: np.ndarray | None = None, **kwargs) -> np.ndarray:
    """Cosmic rays found by L.A.Cosmic (``astroscrappy``, if installed).

    Parameters
    ----------
    data : ndarray
        ``(..., ny, nx)`` image(s), each frame cleaned independently.
    var : ndarray
        Total variance of every pixel (its square root is astroscrappy's noise
        image), broadcastable to ``data``.
    mask : ndarray of bool, optional
        Good pixels; bad ones are ignored by the detection.
    **kwargs
        Passed to ``astroscrappy.detect_cosmics`` (e.g. ``sigclip``, ``objlim``).

    Returns
    -------
    ndarray of bool
        True for pixels that are *not* cosmic rays.

    Raises
    ------
    ImportError
        If astroscrappy is not installed (it is an optional dependency).
    """
    try:
        import astroscrappy
    except ImportError as exc:
        raise ImportError("cosmic-ray masking needs astroscrappy: pip install astroscrappy") from exc
    data = np.asarray(data, dtype=np.float32)
    noise = np.sqrt(np.broadcast_to(np.asarray(var, dtype=np.float32), data.shape))
    bad = ~finite_mask(data, noise) if mask is None else ~np.broadcast_to(mask, data.shape)
    frames = data.reshape(-1, *data.shape[-2:])
    flat_bad, flat_noise = bad.reshape(frames.shape), noise.reshape(frames.shape)
    hits = np.zeros(frames.shape, dtype=bool)
    for index, frame in enumerate(frames):  # astroscrappy works on one 2D frame
        hits[index], _ = astroscrappy.detect_cosmics(
            np.nan_to_num(frame), inmask=flat_bad[index], invar=np.nan_to_num(flat_noise[index]) ** 2, **kwargs
        )
    return ~hits.reshape(data.shape)


def good_pixel_mask(
    data: np.ndarray,
    dq: np.ndarray | None = None,
    variances: tuple[np.ndarray | None, ...] = (),
    dq_bits: int = 1,
    saturation: float | None = None,
    hot_sigma: float | None = None,
) -> np.ndarray:
    """All the cheap masks at once: finite data and variances, DQ, saturation, hot pixels.

    Parameters
    ----------
    data : ndarray
        ``(..., ny, nx)``.
    dq : ndarray, optional
        DQ flags, same shape.
    variances : tuple of ndarray or None
        Variance arrays that must be finite too.
    dq_bits : int
        DQ bits that make a pixel bad (default DO_NOT_USE = 1).
    saturation : float, optional
        Data at or above this level are bad.
    hot_sigma : float, optional
        If given, also mask hot pixels at this threshold (`hot_pixel_mask`).
    """
    good = np.broadcast_to(finite_mask(data, *variances), np.shape(data)).copy()
    if dq is not None:
        good &= dq_mask(dq, dq_bits)
    if saturation is not None:
        good &= saturation_mask(data, saturation)
    if hot_sigma is not None:
        good &= hot_pixel_mask(data, good, sigma=hot_sigma)
    return good


def source_mask(ny: int, center: np.ndarray | float, half_width: float) -> np.ndarray:
    """True on the rows within ``half_width`` of the source centre of each column.

    Parameters
    ----------
    ny : int
        Number of rows.
    center : float or ndarray
        Source centre row per column, shape ``(..., nx)`` (a scalar for a
        straight trace gives a ``(ny, 1)`` mask that broadcasts).
    half_width : float
        Rows whose centres lie within this distance of the centre are masked.

    Returns
    -------
    ndarray of bool
        Shape ``(..., ny, nx)``: True on the source.
    """
    center = np.atleast_1d(np.asarray(center, dtype=np.float64))
    rows = np.arange(ny, dtype=np.float64)[:, None]
    return np.abs(rows - center[..., None, :]) <= half_width



def profile_mask(profile: np.ndarray, threshold: float, peak: np.ndarray | None = None) -> np.ndarray:
    """True where a source's profile exceeds a fraction of its peak, column by column.

    The mask follows the fitted profile: a wide or winged source masks more
    rows than a narrow one, and the mask changes along the dispersion as the
    profile's width does.

    Parameters
    ----------
    profile : ndarray
        ``(..., ny, nx)`` source image per unit flux (negative nod images,
        with their negative weights, are masked by their absolute value).
    threshold : float
        Fraction of the peak, in (0, 1].
    peak : ndarray, optional
        ``(..., nx)`` peak of the source in every column; the maximum of
        ``profile`` over the rows by default (give the positive image's peak
        when ``profile`` holds negative images too).

    Returns
    -------
    ndarray of bool
        Shape of ``profile``: True on the source.
    """
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"the source threshold must be in (0, 1], not {threshold}")
    profile = np.nan_to_num(np.asarray(profile, dtype=np.float64))
    if peak is None:
        peak = profile.max(axis=-2)
    peak = np.asarray(peak, dtype=np.float64)[..., None, :]
    return (np.abs(profile) >= threshold * peak) & (peak > 0)
