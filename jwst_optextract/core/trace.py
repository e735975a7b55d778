"""Trace (cross-dispersion centre per column) from the data.

Binned, window-limited and then Gaussian-weighted centroids (optionally of
Richardson-Lucy deconvolved columns) smoothed by a clipped polynomial or
smoothing spline. By default a first estimate only: the Gaussian profile fit
in `jwst_optextract.core.profile` refines the centre jointly with the width.
"""

from __future__ import annotations

import logging
import warnings

import numpy as np
from numpy.polynomial import legendre
from scipy import ndimage
from scipy.interpolate import make_smoothing_spline
from scipy.special import erf

from .robust import nanmedian

__all__ = [
    "bin_columns",
    "collapse_integrations",
    "find_trace",
    "fit_smooth",
    "negative_traces",
    "peak_row",
    "richardson_lucy",
    "shifted_profiles",
    "smoothing_spline",
    "trace_shifts",
]

log = logging.getLogger(__name__)

_TRIAL_WIDTHS = (0.7, 1.2, 2.0, 3.0)
"""Gaussian sigmas (rows) tried for the source in `source_profile`, narrowest first."""


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


def source_profile(image: np.ndarray, good: np.ndarray, degree: int = 2,
                   widths: tuple[float, ...] = _TRIAL_WIDTHS) -> np.ndarray:
    """The median column profile ``(ny,)`` less a smooth background across the slit (NaN where no data).

    The background is a polynomial of ``degree`` in the row fitted together
    with a Gaussian source: of the trial rows (every half row) and
    ``widths``, the one whose fit leaves the least squared residual, with a
    positive amount. A background fitted alone takes up part of a source, or
    is left at a guess of which rows are free of it: a faint, broad source
    over a gradient steeper than its peak (a double over 40 % of a 26-row
    slit) filled the fainter half of the rows, and the slit's brightest edge
    was taken for it.
    """
    collapsed, background = _median_profile_and_background(image, good, degree, widths)
    return collapsed - background


def _median_profile_and_background(image, good, degree, widths) -> tuple[np.ndarray, np.ndarray]:
    """The median column profile and its polynomial background fitted with a Gaussian source (`source_profile`)."""
    collapsed = nanmedian(np.where(good, image, np.nan), axis=-1)
    use = np.isfinite(collapsed)
    if use.sum() <= degree + 3:
        return collapsed, np.zeros(collapsed.size)
    rows = np.arange(collapsed.size, dtype=float)
    basis = legendre.legvander(2.0 * rows / max(rows[-1], 1.0) - 1.0, degree)
    orthonormal, _ = np.linalg.qr(basis[use])
    data = collapsed[use] - orthonormal @ (orthonormal.T @ collapsed[use])
    trial = np.arange(0.0, rows[-1] + 0.25, 0.5)
    best, amount, source = 0.0, 0.0, np.zeros(collapsed.size)
    for width in widths:
        if width > rows[-1] / 6.0 and width != widths[0]:
            break
        shapes = np.exp(-0.5 * ((rows[None, :] - trial[:, None]) / width) ** 2)  # (trials, ny)
        free = shapes[:, use] - (shapes[:, use] @ orthonormal) @ orthonormal.T  # each less its background part
        norm = np.einsum("ij,ij->i", free, free)
        projection = free @ data
        gain = np.where((projection > 0) & (norm > 1e-12 * len(data)), projection**2 / np.maximum(norm, 1e-300), 0.0)
        k = int(np.argmax(gain))
        if gain[k] > best:
            best, amount, source = gain[k], projection[k] / norm[k], shapes[k]
    coeffs, *_ = np.linalg.lstsq(basis[use], collapsed[use] - amount * source[use], rcond=None)
    return collapsed, np.where(use, basis @ coeffs, np.nan)


def peak_row(image: np.ndarray, good: np.ndarray) -> float:
    """Row of the brightest cross-dispersion peak of the median column profile, over its smooth background."""
    return _peak_of(source_profile(image, good))


def _peak_of(profile: np.ndarray) -> float:
    """`peak_row` of a `source_profile`."""
    if not np.isfinite(profile).any():
        return (profile.size - 1) / 2.0
    return float(np.argmax(np.nan_to_num(profile, nan=-np.inf)))


def seeded_row(image: np.ndarray, good: np.ndarray, guess: float, radius: float = 6.0) -> float:
    """The source row near a guess (a WCS source position): the guess, unless the data show the source elsewhere.

    On the median column profile less its smooth background (`source_profile`),
    the guess stands if the profile there holds at least half of the highest
    peak within ``radius`` rows; otherwise that peak is taken. A WCS position
    a few rows off (a source off its shutter's centre) would start the
    centroids on the source's flank, or on blank sky.
    """
    return _seeded(source_profile(image, good), guess, radius)


def _seeded(profile: np.ndarray, guess: float, radius: float = 6.0) -> float:
    """`seeded_row` of a `source_profile`."""
    if not np.isfinite(profile).any():
        return float(guess)
    profile = np.nan_to_num(profile, nan=-np.inf)
    rows = np.arange(profile.size)
    near = np.abs(rows - guess) <= radius
    if not near.any():
        return float(guess)
    peak = int(rows[near][np.argmax(profile[near])])
    at_guess = float(np.interp(guess, rows, profile))
    return float(guess) if not profile[peak] > 0 or at_guess >= 0.5 * profile[peak] else float(peak)


def find_trace(
    image: np.ndarray,
    good: np.ndarray,
    guess: float | None = None,
    half_window: float = 4.0,
    bin_width: int = 16,
    degree: int = 3,
    clip_sigma: float = 4.0,
    model: str = "polynomial",
    deconvolve_iterations: int = 0,
    psf_sigma: float = 1.0,
    variance: np.ndarray | None = None,
) -> np.ndarray:
    """Centre row of the trace in every column of a 2D image.

    Columns are averaged in bins (cosmic rays left out); in each bin the
    centre is a centroid in a window about the guess, twice, then a centroid
    weighted by a Gaussian of ``psf_sigma`` about the previous one, iterated
    (a matched filter whose fixed point is the centre of a symmetric profile,
    whatever the pixel phase). The centres are smoothed along the dispersion
    by a clipped Legendre polynomial or smoothing spline.

    Parameters
    ----------
    image : ndarray
        Background-subtracted 2D image ``(ny, nx)``.
    good : ndarray of bool
        Good-pixel mask, same shape.
    guess : float, optional
        Starting row (e.g. from the WCS source position), moved to the source
        if the data show it within a few rows (see `seeded_row`); default: the
        brightest peak of the median column profile.
    half_window : float
        Half-width, in pixels, of the window in which the first centroids are
        taken, and the furthest the weighted centroid may move from them.
    bin_width : int
        Columns averaged per centroid, for signal to noise.
    degree : int
        Degree of the Legendre polynomial smoothing the centroids.
    clip_sigma : float
        Centroids further than this many robust standard deviations from the
        fit are dropped, iteratively.
    model : {"polynomial", "spline"}
        Smooth model of the centres along the dispersion (see `fit_smooth`).
    deconvolve_iterations : int
        Richardson-Lucy iterations applied to the binned columns before
        centring (0: none), with a Gaussian kernel of 0.7 ``psf_sigma`` (a
        kernel wider than the PSF would overshoot); see `richardson_lucy`.
        The centres' errors are then scaled up by the excess scatter of
        their second differences (deconvolution amplifies the noise).
    psf_sigma : float
        Gaussian sigma (pixels) of the centroid weights, and of the PSF.
    variance : ndarray, optional
        ``(ny, nx)`` pixel variances, for the centroids' errors (which weight
        them, and tell the spline how closely to follow them); without it,
        the scatter of the pixels in each bin.

    Returns
    -------
    ndarray
        Trace centre per column, shape ``(nx,)``, in 0-based row coordinates.
    """
    ny, nx = image.shape
    collapsed, background = _median_profile_and_background(image, good, 2, _TRIAL_WIDTHS)
    profile = collapsed - background  # `source_profile`, made once for the start row and the centroids
    row0 = _peak_of(profile) if guess is None else _seeded(profile, float(guess))
    binned, binned_var, x_bin = bin_columns(image, good, bin_width, variance)
    if deconvolve_iterations > 0:
        binned = richardson_lucy(binned, _KERNEL_FRACTION * psf_sigma, deconvolve_iterations)
    # Centroids of the source, not of the sky: a gradient across the slit pulled them to its bright edge (a faint
    # source 5 rows from its WCS position got a trace from row 34 to 12 of a 32-row slit, and was not detected).
    binned = binned - np.nan_to_num(background)[:, None]
    rows = np.arange(ny, dtype=float)[:, None]
    centre = np.full(x_bin.size, row0)
    # Two passes: a centroid about the guess, then about the first centroids.
    for _ in range(2):
        inside = np.abs(rows - centre) <= half_window
        w = np.where(inside, np.clip(binned, 0, None), 0.0)
        total = w.sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            centre = np.where(total > 0, (w * rows).sum(axis=0) / total, row0)
    signal = np.where(np.abs(rows - centre) <= half_window, binned, 0.0).sum(axis=0)
    centre, centre_var = _weighted_centroids(binned, binned_var, centre, psf_sigma, half_window)
    if deconvolve_iterations > 0:
        centre_var = centre_var * _excess_scatter(centre, centre_var)
    with np.errstate(divide="ignore"):
        weights = 1.0 / centre_var
    usable = (signal > 0) & np.isfinite(centre) & np.isfinite(weights) & (weights > 0)
    if usable.sum() < degree + 1:
        log.warning("Trace: too few columns with signal to fit; using a constant row %.2f", row0)
        return np.full(nx, row0)
    return fit_smooth(x_bin[usable], centre[usable], nx, degree, clip_sigma, weights=weights[usable], model=model)


_KERNEL_FRACTION = 0.7


def _excess_scatter(centre: np.ndarray, variance: np.ndarray) -> float:
    """Factor (at least 1) by which the scatter of second differences of ``centre`` exceeds their errors."""
    ok = np.isfinite(centre) & np.isfinite(variance)
    c, v = centre[ok], variance[ok]
    if c.size < 5:
        return 1.0
    z = (c[:-2] - 2 * c[1:-1] + c[2:]) / np.sqrt(v[:-2] + 4 * v[1:-1] + v[2:])
    return max(1.0, float((1.4826 * np.median(np.abs(z))) ** 2))


def bin_columns(
    image: np.ndarray, good: np.ndarray, width: int, variance: np.ndarray | None = None, clip: float = 5.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Robust mean of the good pixels of every row in bins of ``width`` columns.

    Pixels more than ``clip`` robust standard deviations above the median of
    their row in the bin (cosmic rays; about one per bin at a 0.2 % rate) are
    left out, and so are bad pixels (instead of counting as zero).

    Returns
    -------
    binned : ndarray
        ``(ny, nbins)`` means (0 where a bin's row has no good pixel).
    binned_var : ndarray
        ``(ny, nbins)`` variances of those means (inf where none): from
        ``variance`` when given, else from the scatter of the pixels in the bin.
    x : ndarray
        ``(nbins,)`` mean column of each bin.
    """
    ny, nx = image.shape
    width = max(1, min(int(width), nx))
    nbins = -(-nx // width)

    def cells(values):
        padded = np.full((ny, nbins * width), np.nan)
        padded[:, :nx] = np.where(good, values, np.nan)
        return padded.reshape(ny, nbins, width)

    data = cells(image)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # rows of a bin with no good pixel
        median = nanmedian(data, axis=-1, keepdims=True)
        spread = 1.4826 * nanmedian(np.abs(data - median), axis=-1, keepdims=True)
        data = np.where((spread > 0) & (data - median > clip * spread), np.nan, data)
        binned = np.nanmean(data, axis=-1)
        count = np.sum(np.isfinite(data), axis=-1)
        if variance is None:  # the scatter in the bin, which also counts the spectrum's variation
            total = count * spread[..., 0] ** 2
        else:
            total = np.nansum(np.where(np.isfinite(data), cells(variance), np.nan), axis=-1)
        binned_var = np.where(count > 0, total / np.maximum(count, 1) ** 2, np.inf)
    x = np.arange(nbins) * width + 0.5 * (np.minimum(width, nx - np.arange(nbins) * width) - 1)
    return np.nan_to_num(binned), binned_var, x


def _weighted_centroids(binned, binned_var, centre, sigma, max_shift, iterations=10):
    """Peaks of the cross-correlation of every column with a Gaussian of ``sigma``, and their variances.

    The peak is where the Gaussian-weighted centroid about it is itself,
    ``g(c) = sum w(r - c) (r - c) d_r = 0``: found by Newton's method (a
    plain centroid step where the correlation is not concave), it is the
    centre of a symmetric profile whatever its width and pixel phase. The
    data are not clipped at zero (that would pull faint centres towards the
    start); a centre that moves more than ``max_shift`` from the start, or
    whose weighted sum is not positive, is NaN. The variances come from the
    last step, propagated linearly.
    """
    rows = np.arange(binned.shape[0], dtype=float)[:, None]
    binned_var = np.where(np.isfinite(binned_var), binned_var, 0.0)  # rows with no data add no noise
    start = centre
    variance = np.full(centre.shape, np.inf)
    for _ in range(iterations):
        offset = rows - centre
        wd = np.exp(-0.5 * (offset / sigma) ** 2) * binned
        total = wd.sum(axis=0)
        g = (wd * offset).sum(axis=0)
        slope = (wd * (offset**2 / sigma**2 - 1.0)).sum(axis=0)  # dg/dc
        with np.errstate(invalid="ignore", divide="ignore"):
            newton = slope < 0
            step = np.where(newton, -g / slope, g / total)
            derivative = np.where(newton, -slope, total)
            variance = (np.exp(-0.5 * (offset / sigma) ** 2) * offset) ** 2 * binned_var
            variance = variance.sum(axis=0) / derivative**2
            centre = np.where(total > 0, centre + np.clip(step, -1.0, 1.0), np.nan)
        centre = np.where(np.abs(centre - start) <= max_shift, centre, np.nan)
    return centre, variance


def richardson_lucy(columns: np.ndarray, sigma: float, iterations: int) -> np.ndarray:
    """Richardson-Lucy deconvolution of every column of ``columns`` (``(ny, n)``) by a Gaussian, at once.

    The kernel is a pixel-integrated Gaussian of ``sigma`` pixels along the
    rows; the data are clipped at zero (the method needs non-negative data)
    and the iteration ``u <- u K^T(d / K u)`` starts from them. It sharpens
    the profile, so that a centroid is less pulled by a blended neighbour or
    wide wings; the centroid of the whole column is unchanged by a symmetric
    kernel.

    Parameters
    ----------
    columns : ndarray
        ``(ny, n)`` data, one column per spectral bin.
    sigma : float
        Gaussian sigma of the kernel, pixels.
    iterations : int
        Number of iterations.

    Returns
    -------
    ndarray
        ``(ny, n)`` deconvolved columns.
    """
    half = max(1, int(np.ceil(4 * sigma)))
    edges = (np.arange(-half, half + 2) - 0.5) / (np.sqrt(2.0) * sigma)
    kernel = np.diff(erf(edges)) / 2
    kernel /= kernel.sum()
    data = np.clip(np.nan_to_num(columns), 0, None)
    floor = 1e-6 * max(float(data.max()), 1e-300)
    estimate = data + floor
    for _ in range(iterations):
        blurred = ndimage.convolve1d(estimate, kernel, axis=0, mode="constant")
        ratio = data / np.maximum(blurred, floor)
        estimate = estimate * ndimage.correlate1d(ratio, kernel, axis=0, mode="constant")
    return estimate


def fit_smooth(
    x: np.ndarray,
    y: np.ndarray,
    nx: int,
    degree: int,
    clip_sigma: float = 4.0,
    weights: np.ndarray | None = None,
    max_iterations: int = 5,
    model: str = "polynomial",
) -> np.ndarray:
    """Clipped smooth fit of ``y(x)``, evaluated at columns ``0 .. nx-1``.

    Parameters
    ----------
    x, y : ndarray
        Increasing positions and values (e.g. bin centres and centroids).
    nx : int
        Number of columns to evaluate at.
    degree : int
        Legendre degree (``model="polynomial"``).
    clip_sigma : float
        Polynomial: points further than this many robust standard deviations
        from the fit are dropped, and the fit repeated. Spline: points further
        than this many errors are down-weighted (see `_robust_spline`).
    weights : ndarray, optional
        Inverse variances of the points (for the polynomial, any scale).
    max_iterations : int
        Clipping (re-weighting) iterations at most.
    model : {"polynomial", "spline"}
        A Legendre polynomial of ``degree``, or a cubic smoothing spline
        (see `smoothing_spline`): for shapes no low-degree polynomial follows.
    """
    if model not in ("polynomial", "spline"):
        raise ValueError(f"unknown trace model {model!r}; use 'polynomial' or 'spline'")
    x, y = np.asarray(x, float), np.asarray(y, float)
    w = np.ones_like(y) if weights is None else np.asarray(weights, dtype=float)
    keep = np.isfinite(y) & (w > 0)
    if model == "spline":
        if keep.sum() >= _SPLINE_MIN_POINTS:
            return _robust_spline(x[keep], y[keep], w[keep], clip_sigma, max_iterations)(np.arange(nx, dtype=float))
        log.warning("Trace: %d centres are too few for a smoothing spline; using a polynomial", keep.sum())
    minimum = degree + 1

    def fit(use):
        deg = min(degree, max(int(use.sum()) - 1, 0))
        return legendre.legfit(_scaled(x[use], nx), y[use], deg, w=np.sqrt(w[use]))

    coef = fit(keep)
    for _ in range(max_iterations):
        resid = y - legendre.legval(_scaled(x, nx), coef)
        scale = 1.4826 * np.median(np.abs(resid[keep])) + 1e-12
        new_keep = np.isfinite(y) & (w > 0) & (np.abs(resid) <= clip_sigma * scale)
        if new_keep.sum() < minimum or np.array_equal(new_keep, keep):
            break
        keep = new_keep
        coef = fit(keep)
    return legendre.legval(_scaled(np.arange(nx), nx), coef)


def _robust_spline(x, y, w, clip_sigma, iterations):
    """`smoothing_spline` with outliers down-weighted (Huber): a point ``z`` errors off keeps ``clip_sigma / |z|``.

    Down-weighting rather than dropping keeps every point's pull on the
    shape: a dropped end point would leave the spline to extrapolate.
    """
    weights = w
    spline = smoothing_spline(x, y, weights)
    for _ in range(iterations):
        z = np.abs(y - spline(x)) * np.sqrt(w)
        new = w * np.minimum(1.0, clip_sigma / np.maximum(z, 1e-300))
        if np.allclose(new, weights):
            break
        weights = new
        spline = smoothing_spline(x, y, weights)
    return spline


_SPLINE_MIN_POINTS = 5


def smoothing_spline(x: np.ndarray, y: np.ndarray, inverse_variance: np.ndarray):
    """The smoothest cubic spline that follows the points to within their errors.

    A penalised smoothing spline (`scipy.interpolate.make_smoothing_spline`:
    weighted squared residuals plus ``lam`` times the integrated squared
    second derivative) whose ``lam`` is the largest that keeps the weighted
    chi-square within the number of points (the discrepancy principle; cross-
    validation, scipy's default, follows the noise of a few hundred centroids).

    Returns
    -------
    scipy.interpolate.BSpline
    """
    n = x.size
    w = np.asarray(inverse_variance, float)

    def chi2(log_lam):
        spline = make_smoothing_spline(x, y, w=w, lam=10.0**log_lam)
        return float(np.sum(w * (y - spline(x)) ** 2)), spline

    low, high = -12.0, 12.0  # log10 lam, in units of (x span)^3 / variance
    scale = np.log10((x[-1] - x[0]) ** 3 / max(np.median(w), 1e-300) / n + 1e-300)
    low, high = low + scale, high + scale
    if chi2(high)[0] <= n:
        return chi2(high)[1]
    for _ in range(30):  # to 1e-8 in log10 lam
        middle = 0.5 * (low + high)
        if chi2(middle)[0] <= n:
            low = middle
        else:
            high = middle
    return chi2(low)[1]


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
    # In groups of integrations, so that no temporary is the size of the cube.
    groups = [slice(i, i + _GROUP) for i in range(0, data.shape[0], _GROUP)]
    # first pass: bad pixels only replaced (by the scaled, unshifted model)
    scale = np.concatenate([np.einsum("iyx,yx->i", np.where(good[g], data[g], 0), templates[0]) for g in groups])
    s, d = scale / gram[(0, 0)], np.zeros_like(scale)
    for use_outliers in (False, True):
        projections = np.zeros((3, data.shape[0]))
        for g in groups:
            expected = shifted_profiles(basis[0], basis[1], basis[2], d[g]) * s[g, None, None]
            bad = ~good[g]
            if use_outliers:  # second pass: cosmic rays judged against the shifted model
                bad |= np.abs(np.nan_to_num(data[g]) - expected) * np.sqrt(W) > reject_sigma
            clean = np.where(bad, expected, data[g]).astype(np.float32)
            projections[:, g] = [np.einsum("iyx,yx->i", clean, T) for T in templates]
        s, d = _fit_scale_and_shift(list(projections), gram, s, d, iterations)
    return d - np.median(d)


_GROUP = 32
"""Integrations per group in `trace_shifts`."""


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
    ny = image.shape[0]
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
