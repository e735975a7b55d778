"""The ``poly`` background method: an independent polynomial across the slit in every column.

As jwst ``extract_1d``'s ``bkg_order``. For backgrounds with structure on the scale of a few columns (sky
lines, edges of a stray-light feature); each column's model has the noise of the ~ny pixels it used.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from .base import BackgroundEstimate, BackgroundMethod, register
from .solvers import ColumnSolver, fit_along_rows, legendre_basis, prepare


def poly_background(
    data: np.ndarray,
    mask: np.ndarray,
    var_rnoise: np.ndarray | None,
    var_poisson: np.ndarray | None = None,
    var_flat: np.ndarray | None = None,
    degree: int = 2,
    clip_sigma: float | None = 3.0,
    max_iterations: int = 5,
) -> BackgroundEstimate:
    """A polynomial of ``degree`` across the slit, fitted in every column independently.

    Parameters are those of `smooth_background` (without the knots). Columns
    with fewer usable pixels than ``degree + 1`` get NaN.
    """
    data, mask, noise = prepare(data, mask, var_rnoise, var_poisson, var_flat)
    basis = legendre_basis(data.shape[-2], degree)
    return fit_along_rows(data, mask, noise, basis, ColumnSolver(), clip_sigma, max_iterations)



@register("poly")
class PolyBackground(BackgroundMethod):
    """`poly_background` with the step's ``poly_degree`` and clipping."""

    summary: ClassVar[str] = "per-column polynomial"
    degree_across_slit: ClassVar[bool] = True

    @classmethod
    def estimate(cls, data: np.ndarray, mask: np.ndarray, variances: tuple, params: Any) -> BackgroundEstimate:
        return poly_background(data, mask, *variances, degree=params.poly_degree, **cls.clipping(params))
