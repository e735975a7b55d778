"""What every background method is: the `BackgroundMethod` protocol, the registry of methods, and their result."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ..pixels import VarianceComponents
from ..registry import Registry

__all__ = ["METHODS", "BackgroundEstimate", "BackgroundMethod", "background_method", "register"]


@dataclass
class BackgroundEstimate(VarianceComponents):
    """A background model and the variance of the estimate, shaped like the data.

    Attributes
    ----------
    background : ndarray
        Model of the background at every pixel; NaN where it could not be
        estimated (no usable pixel nearby).
    var_poisson, var_rnoise, var_flat : ndarray
        Variance of the model at every pixel from the Poisson, read-noise and
        flat-field variance of the pixels it was estimated from.
    used : ndarray of bool
        Pixels the final estimate used (after source masking and clipping).
    """

    background: np.ndarray
    var_poisson: np.ndarray
    var_rnoise: np.ndarray
    var_flat: np.ndarray
    used: np.ndarray


class BackgroundMethod(ABC):
    """A way to estimate the background of a slit, registered by name in `METHODS`."""

    summary: ClassVar[str]
    """What the method is, in a few words (the step's help for ``method``)."""
    from_exposures: ClassVar[bool] = False
    """Estimated from other exposures (background exposures, other nods), not from the slit's own pixels."""
    degree_across_slit: ClassVar[bool] = False
    """``poly_degree`` is a polynomial across the slit: lowered where too few rows are left outside the source."""

    @classmethod
    @abstractmethod
    def estimate(cls, data: np.ndarray, mask: np.ndarray, variances: tuple, params: Any) -> BackgroundEstimate:
        """The background of ``data`` from its ``mask`` pixels.

        Parameters
        ----------
        data, mask : ndarray
            ``(..., ny, nx)`` data and the pixels that may be used (good, outside
            the source); for `from_exposures` methods, a stack of the other
            exposures, ``(n_exposures, ..., ny, nx)``.
        variances : tuple of ndarray or None
            Read-noise, Poisson and flat-field variances, shaped like ``data``.
        params
            The background parameters (`~jwst_optextract.background.BackgroundParameters`).
        """

    @staticmethod
    def clipping(params: Any) -> dict[str, Any]:
        """The sigma clipping of the iterative fits, from the parameters."""
        return {"clip_sigma": params.clip_sigma, "max_iterations": params.max_clip_iterations}


METHODS = Registry("background method", BackgroundMethod, {"summary": str})
"""The registered background methods by name, in the order their modules register them."""
register = METHODS.register
background_method = METHODS.lookup
