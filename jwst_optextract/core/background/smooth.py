"""The ``smooth`` background method (the step's default): a polynomial across the slit times a spline along it.

A tensor-product model, a polynomial of degree ``degree`` across the slit times a cubic B-spline along
the dispersion with knots every ``knot_spacing`` columns, fitted by weighted least squares to every
background pixel at once. The background under the source is predicted from hundreds of pixels, so its
noise adds almost nothing to the extracted flux. Use it whenever the background changes smoothly along
the dispersion on scales longer than the knot spacing.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from .base import BackgroundEstimate, BackgroundMethod, register
from .solvers import fit_along_rows, legendre_basis, prepare, spline_design, SplineSolver


def smooth_background(
    data: np.ndarray,
    mask: np.ndarray,
    var_rnoise: np.ndarray | None,
    var_poisson: np.ndarray | None = None,
    var_flat: np.ndarray | None = None,
    degree: int = 2,
    knot_spacing: float = 32.0,
    clip_sigma: float | None = 3.0,
    max_iterations: int = 5,
) -> BackgroundEstimate:
    """Smooth 2D background: a polynomial across the slit times a cubic B-spline along it.

    Parameters
    ----------
    data : ndarray
        ``(..., ny, nx)``; each leading index (integration) is fitted alone.
    mask : ndarray of bool
        Pixels that may be used: good and outside the source.
    var_rnoise, var_poisson, var_flat : ndarray or None
        The pixels' variance components (broadcastable to ``data``).
    degree : int
        Degree of the polynomial in the row (across the slit): 1 for a
        linear gradient, 2 for a curved one.
    knot_spacing : float
        Columns between spline knots along the dispersion; the background
        must be smooth on this scale, and the model under the source averages
        about ``knot_spacing`` columns.
    clip_sigma : float or None
        Pixels further than this many standard deviations from the model are
        dropped, iteratively; None to keep them all.
    max_iterations : int
        At most this many clipping iterations.

    Returns
    -------
    BackgroundEstimate
    """
    data, mask, noise = prepare(data, mask, var_rnoise, var_poisson, var_flat)
    basis = legendre_basis(data.shape[-2], degree)
    design = spline_design(data.shape[-1], knot_spacing)
    return fit_along_rows(data, mask, noise, basis, SplineSolver(design), clip_sigma, max_iterations)



@register("smooth")
class SmoothBackground(BackgroundMethod):
    """`smooth_background` with the step's ``poly_degree``, ``knot_spacing`` and clipping."""

    summary: ClassVar[str] = "2D spline model (lowest noise)"
    degree_across_slit: ClassVar[bool] = True

    @classmethod
    def estimate(cls, data: np.ndarray, mask: np.ndarray, variances: tuple, params: Any) -> BackgroundEstimate:
        return smooth_background(data, mask, *variances, degree=params.poly_degree,
                                 knot_spacing=params.knot_spacing, **cls.clipping(params))
