"""The ``poly_rows`` background method: a polynomial along the dispersion in every row.

Interpolated across the rows that the source fills. For backgrounds flat across the slit that vary
along the dispersion, or when the slit is too short for a cross-slit fit.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from .base import BackgroundEstimate, BackgroundMethod, register
from .solvers import ColumnSolver, fit_along_rows, legendre_basis, prepare


def poly_rows_background(
    data: np.ndarray,
    mask: np.ndarray,
    var_rnoise: np.ndarray | None,
    var_poisson: np.ndarray | None = None,
    var_flat: np.ndarray | None = None,
    degree: int = 2,
    clip_sigma: float | None = 3.0,
    max_iterations: int = 5,
    min_fraction: float = 0.5,
) -> BackgroundEstimate:
    """A polynomial of ``degree`` along the dispersion, fitted in every row.

    Rows in which fewer than ``min_fraction`` of the columns are usable (the
    rows the source fills) get the model of the nearest usable rows, linearly
    interpolated across the slit (the nearest one beyond the last).
    """
    swapped = [None if v is None else np.swapaxes(np.broadcast_to(v, np.shape(data)), -1, -2)
               for v in (data, mask, var_rnoise, var_poisson, var_flat)]
    data_t, mask_t, noise = prepare(*swapped)
    basis = legendre_basis(data_t.shape[-2], degree)
    fit = fit_along_rows(data_t, mask_t, noise, basis, ColumnSolver(), clip_sigma, max_iterations)
    row_ok = mask_t.mean(axis=-2) >= min_fraction  # (..., ny)
    arrays = [np.swapaxes(a, -1, -2) for a in (fit.background, fit.var_poisson, fit.var_rnoise, fit.var_flat)]
    filled = _interpolate_rows(arrays, row_ok)
    used = np.swapaxes(fit.used, -1, -2) & row_ok[..., :, None]
    return BackgroundEstimate(*filled, used)


def _interpolate_rows(arrays, row_ok):
    """Replace rows that are not ``row_ok`` by linear interpolation between the nearest good rows.

    ``arrays[0]`` is the model, the others variances (combined with squared weights).
    """
    ny = row_ok.shape[-1]
    rows = np.arange(ny)
    below = np.maximum.accumulate(np.where(row_ok, rows, -1), axis=-1)
    above = np.flip(np.minimum.accumulate(np.flip(np.where(row_ok, rows, ny), -1), axis=-1), -1)
    has_below, has_above = below >= 0, above < ny
    lo = np.where(has_below, below, np.where(has_above, above, 0))
    hi = np.where(has_above, above, lo)
    with np.errstate(invalid="ignore", divide="ignore"):
        t = np.where(hi > lo, (rows - lo) / (hi - lo), 0.0)
    t = t[..., :, None]
    lo_idx, hi_idx = lo[..., :, None], hi[..., :, None]
    out = []
    for index, array in enumerate(arrays):
        a = np.take_along_axis(array, np.broadcast_to(lo_idx, array.shape), axis=-2)
        b = np.take_along_axis(array, np.broadcast_to(hi_idx, array.shape), axis=-2)
        power = 1 if index == 0 else 2
        out.append((1 - t) ** power * a + t**power * b)
    none = ~(has_below | has_above)[..., :, None]
    return [np.where(none, np.nan, a) for a in out]



@register("poly_rows")
class PolyRowsBackground(BackgroundMethod):
    """`poly_rows_background` with the step's ``poly_degree`` (along the dispersion) and clipping."""

    summary: ClassVar[str] = "per-row polynomial along the dispersion"

    @classmethod
    def estimate(cls, data: np.ndarray, mask: np.ndarray, variances: tuple, params: Any) -> BackgroundEstimate:
        return poly_rows_background(data, mask, *variances, degree=params.poly_degree, **cls.clipping(params))
