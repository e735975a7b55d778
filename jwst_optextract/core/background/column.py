"""The ``column`` background method: a per-column median or sigma-clipped mean of the background rows.

The simplest and most robust; for flat backgrounds.
"""

from __future__ import annotations

import warnings
from typing import Any, ClassVar

import numpy as np

from .base import BackgroundEstimate, BackgroundMethod, register
from .poly import poly_background
from .solvers import median_variances, prepare


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
    data, mask, noise = prepare(data, mask, var_rnoise, var_poisson, var_flat)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # columns with no usable pixel
        median = np.nanmedian(np.where(mask, data, np.nan), axis=-2, keepdims=True)
    background = np.broadcast_to(median, data.shape)
    variances = median_variances(noise.components(background), mask, axis=-2)
    return BackgroundEstimate(np.array(background), *(np.broadcast_to(v, data.shape).copy() for v in variances), mask)



@register("column")
class ColumnBackground(BackgroundMethod):
    """`column_background` with the step's ``column_statistic`` and clipping."""

    summary: ClassVar[str] = "per-column median/mean"

    @classmethod
    def estimate(cls, data: np.ndarray, mask: np.ndarray, variances: tuple, params: Any) -> BackgroundEstimate:
        return column_background(data, mask, *variances, statistic=params.column_statistic, **cls.clipping(params))
