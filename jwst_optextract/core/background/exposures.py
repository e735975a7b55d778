"""The ``exposures`` background method: the median of dedicated background exposures, pixel by pixel.

`combine_exposures` also serves the ``nod`` method (the mean of the other nods).
"""

from __future__ import annotations

import warnings
from typing import Any, ClassVar

import numpy as np

from .base import BackgroundEstimate, BackgroundMethod, register
from .solvers import median_variances


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
            var = median_variances(variances, mask, axis=0)
            var = tuple(v[0] for v in var)
        else:
            background = np.where(n > 0, np.sum(np.where(mask, data, 0.0), axis=0) / n, np.nan)
            var = tuple(np.where(n > 0, np.sum(np.where(mask, v, 0.0), axis=0) / n**2, np.nan) for v in variances)
    return BackgroundEstimate(background, *var, n > 0)


@register("exposures")
class ExposuresBackground(BackgroundMethod):
    """The median of background exposures (robust to a star or a cosmic ray in one of them)."""

    summary: ClassVar[str] = "median of background exposures"
    from_exposures: ClassVar[bool] = True
    statistic: ClassVar[str] = "median"
    """How the exposures are combined (see `combine_exposures`)."""

    @classmethod
    def estimate(cls, data: np.ndarray, mask: np.ndarray, variances: tuple, params: Any) -> BackgroundEstimate:
        return combine_exposures(data, mask, *variances, statistic=cls.statistic)
