"""The variance components of pixel data, and the one place where they are combined.

JWST products carry three variance arrays, ``VAR_RNOISE``, ``VAR_POISSON`` and
``VAR_FLAT``, propagated separately through the pipeline. `Variances` holds
them together; its methods are the only place where they are added up for
weights, so every fit clips the data-derived Poisson variance the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["HasVariances", "VarianceComponents", "Variances"]


@dataclass(frozen=True)
class Variances:
    """The read-noise, Poisson and flat-field variances of pixels (or of values derived from them).

    Parameters
    ----------
    rnoise : ndarray
        Read-noise variance.
    poisson : ndarray, optional
        Poisson (signal-dependent) variance; None when not known.
    flat : ndarray, optional
        Flat-field variance; None when not known or not carried.

    Arrays broadcast against one another; None stands for a component that is
    left out (not for zeros, so that no array is added needlessly).
    """

    rnoise: np.ndarray
    poisson: np.ndarray | None = None
    flat: np.ndarray | None = None

    def total(self) -> np.ndarray:
        """The variance of a pixel as a weight: ``rnoise + max(poisson, 0) + flat``.

        The data-derived Poisson variance is clipped at zero (a pixel that
        fluctuated below zero signal has none, not a negative one); components
        that are None are left out. The terms are added in this order.

        Returns
        -------
        ndarray
            The total variance, the broadcast shape of the components.
        """
        total = self.rnoise
        if self.poisson is not None:
            total = total + np.maximum(self.poisson, 0)
        if self.flat is not None:
            total = total + self.flat
        return total

    def signal_independent(self) -> np.ndarray:
        """The part of the variance that does not depend on the signal: ``rnoise + flat``.

        Returns
        -------
        ndarray
            ``rnoise + flat``, or ``rnoise`` itself when ``flat`` is None.
        """
        return self.rnoise if self.flat is None else self.rnoise + self.flat


class HasVariances:
    """Mixin for classes with ``var_rnoise``, ``var_poisson`` and ``var_flat`` attributes: their `Variances`."""

    var_rnoise: np.ndarray
    var_poisson: np.ndarray
    var_flat: np.ndarray

    @property
    def variances(self) -> Variances:
        """The three variance components as one `Variances`."""
        return Variances(self.var_rnoise, self.var_poisson, self.var_flat)


class VarianceComponents(HasVariances):
    """Mixin for measured values (spectra, background models) with three variance components that add up.

    ``var_total`` is their sum as they are: a measured value's variance is
    the sum of its components, which are reported as they come (the Poisson
    part is not clipped here, unlike a pixel's weight in `Variances.total`).
    """

    @property
    def var_total(self) -> np.ndarray:
        """``var_poisson + var_rnoise + var_flat``."""
        return self.var_poisson + self.var_rnoise + self.var_flat
