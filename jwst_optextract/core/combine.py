"""Combination of the exposures of one source: nod differences, cross-exposure outliers, pooled extraction.

Arrays are stacked exposures on a common detector grid, ``(n_exp, ny, nx)``
with the dispersion along the last axis. The combined flux of a column is a
linear combination ``f = sum(c D)`` of the pixels of every exposure, so its
variance follows exactly from the pixel variances, also when nod differences
make the exposures' noise correlated (each exposure's data enter several
differences): the coefficients are carried back to the original pixels
before the variances are summed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .optimal import optimal_extract
from .pixels import VarianceComponents, Variances
from .robust import nanmedian
from .scene import SceneBackground, SceneResult

__all__ = [
    "CombinedResult",
    "ExposureStack",
    "NodDifference",
    "bright_or_extreme",
    "bright_outside",
    "cosmic_rays",
    "difference_nods",
    "exposure_disagreement",
    "negative_images",
    "pixel_weights",
    "pooled_extract",
    "rectified_image",
    "repeated_outliers",
    "scene_extract",
    "sharpness",
    "source_model",
    "weighted_wavelength",
]

VARIANCES = ("var_poisson", "var_rnoise", "var_flat")


@dataclass
class NodDifference:
    """Each exposure minus the mean of the good exposures at the other nod positions.

    Attributes
    ----------
    data, good : ndarray
        ``(n_exp, ny, nx)`` differences and where they are defined.
    variances : dict of str to ndarray
        Variance components of each difference, ignoring that differences
        share exposures (for weights; `pooled_extract` propagates exactly).
    other : ndarray of bool
        ``(n_exp, n_exp)``: ``other[e, o]`` when ``o`` is at another nod position than ``e``.
    share : ndarray
        ``(n_exp, ny, nx)``: ``1 / number of good other-nod exposures`` of every pixel (0 where none).
    source_good : ndarray of bool
        The good-pixel mask of the exposures before differencing.
    """

    data: np.ndarray
    good: np.ndarray
    variances: dict[str, np.ndarray]
    other: np.ndarray
    share: np.ndarray
    source_good: np.ndarray

    def to_exposures(self, coefficients: np.ndarray) -> np.ndarray:
        """Coefficients on the differences as coefficients on the original exposures.

        With ``d_e = D_e - share_e sum_o other[e, o] good_o D_o`` (pixel by
        pixel), ``sum_e c_e d_e = sum_o a_o D_o`` where
        ``a_o = c_o - good_o sum_e other[e, o] share_e c_e``.
        """
        spread = np.einsum("eo,e...->o...", self.other.astype(coefficients.dtype), coefficients * self.share)
        return coefficients - np.where(self.source_good, spread, 0.0)


def difference_nods(data: np.ndarray, good: np.ndarray, variances: dict[str, np.ndarray],
                    positions: np.ndarray) -> NodDifference:
    """Subtract from every exposure the mean of the exposures at the other nod positions.

    Parameters
    ----------
    data, good : ndarray
        ``(n_exp, ny, nx)`` exposures on a common grid, and their good pixels.
    variances : dict of str to ndarray
        Variance components, each ``(n_exp, ny, nx)``.
    positions : array-like
        Nod position label of every exposure (at least two distinct labels).

    Returns
    -------
    NodDifference
    """
    positions = np.asarray(positions)
    other = positions[:, None] != positions[None, :]
    if not other.any():
        raise ValueError("nod differences need exposures at two or more nod positions")
    weight = other.astype(np.float64)
    counts = np.einsum("eo,o...->e...", weight, good.astype(np.float64))
    share = np.divide(1.0, counts, out=np.zeros_like(counts), where=counts > 0)
    clean = np.where(good, data, 0.0)
    difference = data - share * np.einsum("eo,o...->e...", weight, clean)
    diff_good = good & (counts > 0)
    diff_var = {}
    for key, var in variances.items():
        spread = np.einsum("eo,o...->e...", weight, np.where(good, var, 0.0))
        diff_var[key] = var + share**2 * spread
    return NodDifference(np.where(diff_good, difference, np.nan), diff_good, diff_var, other, share, good)


def sharpness(data: np.ndarray, good: np.ndarray, variance: np.ndarray, half_window: int = 2) -> np.ndarray:
    """How far each pixel lies from the median of its ``2 * half_window`` neighbours along the dispersion, in sigma.

    Sky and source vary smoothly along the dispersion (a line is a few
    pixels wide); a cosmic ray or a hot pixel is one pixel. NaN where undefined.
    """
    filled = np.where(good, data, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (filled - _neighbour_median(filled, half_window)) / np.sqrt(variance)


def repeated_outliers(data: np.ndarray, good: np.ndarray, variance: np.ndarray, positions: np.ndarray,
                      sigma: float) -> np.ndarray:
    """Detector pixels sharp along the dispersion in exposures at two or more nod positions.

    A pixel is sharp when its `sharpness` exceeds ``sigma`` (up for hot
    pixels, down for cold ones). The sky is smooth and the source moves with
    the nod; a detector defect stays where it is, so a pixel sharp in the same
    direction at several nod positions is flagged in every exposure.

    Returns
    -------
    ndarray of bool
        ``(ny, nx)``: the flagged detector pixels.
    """
    positions = np.asarray(positions)
    labels = np.unique(positions)
    if labels.size < 2:
        return np.zeros(data.shape[1:], bool)
    z = np.nan_to_num(sharpness(data, good, variance))
    flagged = np.zeros(data.shape[1:], bool)
    for direction in (1.0, -1.0):
        at = np.stack([(direction * z[positions == label] > sigma).any(axis=0) for label in labels])
        flagged |= at.sum(axis=0) >= 2
    return flagged


def _neighbour_median(filled: np.ndarray, half_window: int) -> np.ndarray:
    """Median of the ``2 * half_window`` neighbours of every pixel along the last axis (NaN-aware)."""
    padded = np.pad(filled, [(0, 0)] * (filled.ndim - 1) + [(half_window, half_window)], mode="edge")
    nx = filled.shape[-1]
    shifts = [s for s in range(-half_window, half_window + 1) if s != 0]
    stack = np.stack([padded[..., half_window + s:half_window + s + nx] for s in shifts])
    return nanmedian(stack, axis=0)


def bright_outside(data: np.ndarray, good: np.ndarray, variance: np.ndarray, model: np.ndarray,
                   outside: np.ndarray, factor: float, sigma: float = 5.0) -> np.ndarray:
    """Pixels away from every trace that are brighter than the trace itself.

    Flags pixels in ``outside`` (``(n_exp, ny, nx)``) whose value exceeds
    ``factor`` times the column's maximum of the source ``model`` and is
    also more than ``sigma`` standard deviations above zero, so that noise
    in a faint column is not taken for a defect.
    """
    peak = np.max(model, axis=-2, keepdims=True)
    with np.errstate(invalid="ignore"):
        return good & outside & (data > factor * peak) & (data > sigma * np.sqrt(variance))


@dataclass
class CombinedResult(VarianceComponents):
    """The combined spectrum of one source: per-column arrays ``(nx,)``."""

    flux: np.ndarray
    var_poisson: np.ndarray
    var_rnoise: np.ndarray
    var_flat: np.ndarray
    npixels: np.ndarray
    """Effective number of pixels, summed over the exposures."""
    coverage: np.ndarray
    """Mean fraction of the exposures' profiles on the pixels used."""
    n_exposures: np.ndarray
    """Exposures contributing to each column."""
    valid: np.ndarray


def pooled_extract(data: np.ndarray, profile: np.ndarray, weights: np.ndarray, variances: dict[str, np.ndarray],
                   model: np.ndarray | None = None, nods: NodDifference | None = None,
                   min_coverage: float = 0.3) -> CombinedResult:
    """Weighted least-squares flux of every column from the pixels of all exposures.

    ``f = sum(w P D) / sum(w P M)`` over exposures and rows, with ``P`` the
    exposures' profiles normalised per column and ``M`` the model of the data
    per unit flux (``P`` itself, or ``P`` minus the negative traces of nod
    differences): unbiased whatever the weights, and the Horne estimate when
    ``w`` are the inverse variances.

    Parameters
    ----------
    data : ndarray
        ``(n_exp, ny, nx)`` background-subtracted (or nod-differenced) data.
    profile : ndarray
        ``(n_exp, ny, nx)`` profile of the source in every exposure, normalised per column.
    weights : ndarray
        ``(n_exp, ny, nx)`` pixel weights, 0 for pixels not used.
    variances : dict of str to ndarray
        Variance components of the ORIGINAL exposures' pixels (before nod differencing).
    model : ndarray, optional
        Model of ``data`` per unit flux; ``profile`` by default.
    nods : NodDifference, optional
        The nod differencing that made ``data``, to propagate the variance exactly.
    min_coverage : float
        Columns where the pixels used hold less than this fraction of the
        profile (averaged over exposures) are not valid (NaN).

    Returns
    -------
    CombinedResult
    """
    model = profile if model is None else model
    used = weights > 0
    wp = np.where(used, weights * profile, 0.0)
    denominator = np.sum(wp * model, axis=(0, 1))
    coverage = np.sum(np.where(used, profile, 0.0), axis=(0, 1)) / data.shape[0]
    valid = (denominator > 0) & (coverage >= min_coverage)
    scale = np.divide(1.0, denominator, out=np.zeros_like(denominator), where=valid)
    coefficients = wp * scale
    flux = np.sum(coefficients * np.where(used, data, 0.0), axis=(0, 1))
    on_exposures = nods.to_exposures(coefficients) if nods is not None else coefficients
    squared = on_exposures**2
    var = {key: np.sum(squared * np.where(np.isfinite(v), v, 0.0), axis=(0, 1)) for key, v in variances.items()}
    p_used = np.where(used, profile, 0.0)
    p2 = np.sum(profile**2, axis=1)
    npixels = np.sum(np.divide(p_used.sum(axis=1), p2, out=np.zeros_like(p2), where=p2 > 0), axis=0)
    nan = np.where(valid, 0.0, np.nan)
    return CombinedResult(
        flux=flux + nan, npixels=npixels, coverage=coverage, valid=valid,
        n_exposures=np.sum(used.any(axis=1), axis=0),
        **{key: var.get(key, np.zeros_like(flux)) + nan for key in VARIANCES},
    )


def scene_extract(stack: ExposureStack, profile: np.ndarray, background: SceneBackground,
                  reject_sigma: float | None, min_coverage: float = 0.3) -> tuple[CombinedResult, SceneResult]:
    """The flux of every column from the scene model of each exposure: its own background, the shared profile.

    Every exposure is fitted as ``D_e = f_e P_e + B_e``
    (`~jwst_optextract.core.scene.fit_scene`, its background ``B_e`` the
    smooth or per-column polynomial of ``background``, its outliers rejected),
    and the combined flux is the inverse-variance mean of the ``f_e``, their
    variances marginalised over each background. The exposures' noises are
    independent and no exposure is subtracted from another, so the variance is
    that of all exposures with their backgrounds fitted: nod differences
    instead add every other exposure's noise where the background dominates.

    Parameters
    ----------
    stack : ExposureStack
        The exposures as they are (background not removed).
    profile : ndarray
        ``(n_exp, ny, nx)`` the source's profile in every exposure, normalised per column.
    background : SceneBackground
        How each exposure's background is modelled.
    reject_sigma : float or None
        Outlier rejection of the scene fits.
    min_coverage : float
        An exposure's column whose good pixels hold less than this fraction of
        the profile does not enter the mean.

    Returns
    -------
    combined : CombinedResult
    scenes : SceneResult
        The exposures' fits (backgrounds, rejected pixels, final weights).
    """
    vr, vp, vf = (stack.variances[k] for k in ("var_rnoise", "var_poisson", "var_flat"))
    scenes = background.fit(stack.data, profile, vr, vp, vf, mask=stack.good, reject_sigma=reject_sigma,
                            min_coverage=min_coverage, return_inverse_variance=True, shared_source=True)
    info = np.divide(1.0, scenes.var_total, out=np.zeros(scenes.var_total.shape),
                     where=scenes.valid & (scenes.var_total > 0))
    total = info.sum(axis=0)
    valid = total > 0
    share = np.divide(info, total, out=np.zeros_like(info), where=valid)
    nan = np.where(valid, 0.0, np.nan)
    used = share > 0
    return CombinedResult(
        flux=np.sum(share * np.where(used, scenes.flux, 0.0), axis=0) + nan,
        **{key: np.sum(share**2 * np.where(used, getattr(scenes, key), 0.0), axis=0) + nan for key in VARIANCES},
        npixels=np.sum(np.where(used, scenes.npixels, 0.0), axis=0),
        coverage=np.mean(scenes.coverage, axis=0), n_exposures=used.sum(axis=0), valid=valid,
    ), scenes


DISAGREEMENT_BLOCK = 16
"""Columns summed into one block by `exposure_disagreement`."""


def exposure_disagreement(flux: np.ndarray, variance: np.ndarray,
                          block: int = DISAGREEMENT_BLOCK) -> tuple[float, int]:
    """How far the exposures' fluxes of one source are apart: chi-square per degree of freedom, and the freedom.

    The columns are summed in blocks of ``block`` (wide enough that the
    noise a smooth background spreads along the dispersion stays within a
    block), and every exposure's block sum is compared with the
    inverse-variance mean of the others' sums. Columns not fitted in every
    exposure are left out. Returns ``(nan, 0)`` with fewer than two exposures
    or no full block.
    """
    both = np.all(np.isfinite(flux) & np.isfinite(variance) & (variance > 0), axis=0)
    columns = np.flatnonzero(both)
    n_blocks = columns.size // block
    if flux.shape[0] < 2 or n_blocks == 0:
        return float("nan"), 0
    picked = columns[: n_blocks * block].reshape(n_blocks, block)
    sums, var = flux[:, picked].sum(axis=-1), variance[:, picked].sum(axis=-1)
    info = 1.0 / var
    mean = np.sum(info * sums, axis=0) / np.sum(info, axis=0)
    dof = n_blocks * (flux.shape[0] - 1)
    return float(np.sum(info * (sums - mean) ** 2) / dof), dof


@dataclass
class ExposureStack:
    """The exposures of a source as ``(n_exp, ny, nx)`` arrays (on their common detector grid).

    Attributes
    ----------
    data, good : ndarray
        The pixels and where they are usable.
    variances : dict of str to ndarray
        The variance components (`VARIANCES`) of every pixel.
    wavelength : ndarray
        The wavelength of every pixel (NaN where undefined).
    exptime : ndarray
        ``(n_exp,)`` exposure times (for ``exptime`` weights).
    nods : NodDifference or None
        The nod differencing that made these data, if any.
    """

    data: np.ndarray
    good: np.ndarray
    variances: dict[str, np.ndarray]
    wavelength: np.ndarray
    exptime: np.ndarray
    nods: NodDifference | None = None

    @property
    def total_variance(self) -> np.ndarray:
        """The variance of every pixel as a weight: `Variances.total` of its components."""
        return Variances(*(self.variances[k] for k in ("var_rnoise", "var_poisson", "var_flat"))).total()


def source_model(work: ExposureStack, profile: np.ndarray) -> np.ndarray:
    """The data per unit flux: the profile, less the negative images where nods were differenced."""
    return profile if work.nods is None else profile - negative_images(work.nods, profile)


def negative_images(nods: NodDifference, profile: np.ndarray) -> np.ndarray:
    """The source's negative images in each difference, per unit flux (the subtracted mean of the others)."""
    weight = nods.other.astype(float)
    return nods.share * np.einsum("eo,o...->e...", weight, np.where(nods.source_good, profile, 0.0))


def cosmic_rays(alone: ExposureStack, profile: np.ndarray, reject_sigma: float | None) -> tuple[np.ndarray, dict]:
    """Pixels of each exposure far above the profile model, or sharp and bright where the profile is nil."""
    if not reject_sigma:
        return np.zeros(alone.good.shape, bool), {}
    vr, vp, vf = (alone.variances[k] for k in ("var_rnoise", "var_poisson", "var_flat"))
    first = optimal_extract(np.where(alone.good, alone.data, 0.0), profile, vr, vp, vf, mask=alone.good,
                                 reject_sigma=reject_sigma, min_coverage=0.0)
    rejected = first.rejected
    used = alone.good & ~rejected
    variance = alone.total_variance
    away = profile < 1e-3 * profile.max(axis=1, keepdims=True)
    with np.errstate(invalid="ignore"):
        sharp = used & away & (np.nan_to_num(sharpness(alone.data, used, variance)) > reject_sigma)
        sharp &= alone.data > reject_sigma * np.sqrt(variance)
    return rejected | sharp, {"profile": int(rejected.sum()), "off_trace": int(sharp.sum())}


def bright_or_extreme(final: ExposureStack, profile: np.ndarray, model: np.ndarray, outside_factor: float | None,
                      clip_percentiles: tuple[float, float] | None) -> tuple[np.ndarray, dict]:
    """Pixels away from the traces brighter than the trace, and residuals in the extreme percentiles."""
    flags, counts = np.zeros(final.good.shape, bool), {}
    if not (outside_factor or clip_percentiles):
        return flags, counts
    variance = final.total_variance
    data = np.where(final.good, final.data, 0.0)
    weight = np.where(final.good & (variance > 0), 1.0 / np.where(variance > 0, variance, 1.0), 0.0)
    flux = np.sum(weight * model * data, axis=1) / np.maximum(np.sum(weight * model**2, axis=1), 1e-300)
    fitted = flux[:, None, :] * model
    if outside_factor:
        away = np.abs(model) < 1e-3 * profile.max(axis=1, keepdims=True)
        flags |= bright_outside(final.data, final.good, variance, fitted, away, outside_factor)
        counts["outside_trace"] = int(flags.sum())
    if clip_percentiles:
        with np.errstate(invalid="ignore", divide="ignore"):
            z = np.where(final.good & ~flags, (final.data - fitted) / np.sqrt(variance), np.nan)
        low, high = np.nanpercentile(z, clip_percentiles)
        extreme = (z < low) | (z > high)
        counts["percentile"] = int(extreme.sum())
        flags |= extreme
    return flags, counts


def pixel_weights(kind: str, final: ExposureStack, profile: np.ndarray) -> np.ndarray:
    """Pixel weights of the chosen kind, zero where a pixel is not used."""
    if kind == "ivm":  # read noise plus a smooth model of the Poisson variance: signal-independent
        vr, vp, vf = (final.variances[k] for k in ("var_rnoise", "var_poisson", "var_flat"))
        w = optimal_extract(np.where(final.good, final.data, 0.0), profile, vr, vp, vf, mask=final.good,
                                 reject_sigma=None, min_coverage=0.0, return_inverse_variance=True).inverse_variance
    elif kind == "poisson":
        variance = final.total_variance
        w = np.divide(1.0, variance, out=np.zeros_like(variance), where=variance > 0)
    elif kind == "exptime":
        w = np.broadcast_to(final.exptime[:, None, None], final.good.shape)
    else:
        w = np.ones(final.good.shape)
    return np.where(final.good, w, 0.0)


def weighted_wavelength(wavelength: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weight-averaged wavelength of every column over the rows of all exposures (NaN where no weight)."""
    w = np.where(np.isfinite(wavelength), weights, 0.0)
    total = w.sum(axis=(0, 1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, np.sum(w * np.nan_to_num(wavelength), axis=(0, 1)) / total, np.nan)


def rectified_image(final: ExposureStack, centers: np.ndarray, half_height: int) -> tuple[np.ndarray, np.ndarray]:
    """For display only: the exposures resampled about their traces and averaged.

    Each exposure's background-removed data are interpolated linearly along
    the rows to offsets ``-half_height .. half_height`` from its trace and the
    exposures averaged with inverse-variance weights. The spectrum never comes
    from this image (resampling correlates the noise of neighbouring rows).

    Returns
    -------
    image, variance : ndarray
        ``(2 * half_height + 1, nx)``; NaN where no exposure covers a pixel.
    """
    ny = final.data.shape[1]
    rows = centers[:, None, :] + np.arange(-half_height, half_height + 1)[None, :, None]
    below = np.clip(np.floor(rows).astype(int), 0, ny - 2)
    t = rows - below
    variance = final.total_variance
    usable = final.good & (variance > 0)
    data = np.where(usable, final.data, 0.0)
    d0, d1 = np.take_along_axis(data, below, axis=1), np.take_along_axis(data, below + 1, axis=1)
    variance = np.where(usable, variance, 0.0)
    v0, v1 = np.take_along_axis(variance, below, axis=1), np.take_along_axis(variance, below + 1, axis=1)
    ok = (np.take_along_axis(usable, below, axis=1) & np.take_along_axis(usable, below + 1, axis=1)
          & (rows >= 0) & (rows <= ny - 1))
    value = (1 - t) * d0 + t * d1
    value_var = (1 - t) ** 2 * v0 + t**2 * v1
    weight = np.where(ok, 1.0 / np.where(ok, value_var, 1.0), 0.0)
    total = weight.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.sum(weight * value, axis=0) / total, np.where(total > 0, 1.0 / total, np.nan)
