"""The fitted trace and profile of one slit: what the trace and profile fits give, and what extraction uses.

Plain arrays and a `~jwst_optextract.core.profiles.Profile`, in the slit's
canonical pixels (dispersion along x): they belong with the algorithms that
make and use them, not with the drivers, so that the products
(`jwst_optextract.io.products`) can (de)serialise them without importing the
layer above.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .profiles import GaussianProfile, Profile
from .trace import shifted_profiles

__all__ = ["ProfileFit", "TraceFit", "central_differences"]


@dataclass
class TraceFit:
    """The trace of one slit, in its canonical (dispersion along x) pixels."""

    name: str
    center: np.ndarray
    shifts: np.ndarray = field(default_factory=lambda: np.zeros(0))
    negative_offsets: np.ndarray = field(default_factory=lambda: np.zeros(0))
    detected: bool = True
    method: str = "gaussian"
    gaussian: GaussianProfile | None = None

    def centers(self) -> np.ndarray:
        """``(nx,)``, or ``(nints, nx)`` with the per-integration shifts."""
        if self.shifts.size:
            return self.center[None, :] + self.shifts[:, None]
        return self.center


@dataclass
class ProfileFit:
    """The cross-dispersion profile of one slit."""

    name: str
    kind: str
    center: np.ndarray
    model: Profile
    chi2_per_pixel: float = np.nan
    exposure_inverse_beta: float | None = None
    """What a bright slit's data say of the Moffat ``1 / beta``, for its exposure's prior
    (`~jwst_optextract.core.psf_prior.exposure_prior`); None for a faint slit."""

    def evaluate(self, ny: int, center: np.ndarray | None = None) -> np.ndarray:
        """The normalised profile ``(ny, nx)`` about ``center`` (default: the fitted trace)."""
        return self.model.evaluate(ny, self.center if center is None else center)

    @property
    def n_parameters(self) -> float:
        """Number of (effective) free parameters of the shape, for Akaike's criterion."""
        return self.model.n_parameters

    def for_trace(self, ny: int, trace: TraceFit) -> np.ndarray:
        """``(ny, nx)``, or ``(nints, ny, nx)`` following the trace's per-integration shifts."""
        if not trace.shifts.size:
            return self.evaluate(ny, trace.center)
        return shifted_profiles(*self._expansion(ny, trace), trace.shifts).astype(np.float32)

    def mean_for_trace(self, ny: int, trace: TraceFit) -> np.ndarray:
        """The mean over the integrations of `for_trace`, ``(ny, nx)``, without making the cube.

        The per-integration profiles are a second-order expansion in the shift
        ``d`` (`shifted_profiles`), so their mean is the expansion's with the
        mean of ``d`` and of ``d**2``.
        """
        if not trace.shifts.size:
            return self.evaluate(ny, trace.center)
        P0, dP, d2P = self._expansion(ny, trace)
        shifts = np.asarray(trace.shifts, float)
        return P0 + shifts.mean() * dP + 0.5 * np.mean(shifts**2) * d2P

    def _expansion(self, ny: int, trace: TraceFit) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The profile about the trace and its first and second derivatives in the trace's shift."""
        reference = None if trace.gaussian is None else ProfileFit(self.name, "gaussian", self.center, trace.gaussian)
        return (self.evaluate(ny, trace.center), *self.derivatives(ny, trace.center, reference))

    def derivatives(self, ny: int, center: np.ndarray, reference: ProfileFit | None = None):
        """First and second derivatives ``(ny, nx)`` of the profile with respect to the trace centre."""
        step = self.model.derivative_step
        if step < 1.0:
            return central_differences(lambda s: self.evaluate(ny, center + s), step, 1)
        # A spline or template learnt from the data is known where the data sample it: on a trace that hardly
        # moves in sub-pixel phase, at whole-pixel offsets only (between them it is whatever the smoothing left,
        # and a sub-pixel difference made the white light follow the jitter). So its slope comes from whole-pixel
        # shifts, by a high-order stencil, and only for what it adds to an analytic reference: the stencil's
        # error on a narrow core (5 % at sigma 1.1 px) is then an error on the small difference.
        if reference is None:
            return central_differences(lambda s: self.evaluate(ny, center + s), 1.0, 3)
        dG, d2G = reference.derivatives(ny, center)
        dR, d2R = central_differences(lambda s: self.evaluate(ny, center + s) - reference.evaluate(ny, center + s),
                                       1.0, 2)
        return dG + dR, d2G + d2R


def central_differences(values, step: float, half_width: int) -> tuple[np.ndarray, np.ndarray]:
    """First and second derivatives at 0 of ``values(offset)`` from a central stencil of ``2 half_width + 1`` points.

    The weights are exact for polynomials of degree ``2 half_width`` (one point each side: the usual
    ``(f(h) - f(-h)) / 2h`` and ``(f(h) - 2 f(0) + f(-h)) / h**2``).
    """
    offsets = np.arange(-half_width, half_width + 1)
    moments = np.vander(offsets.astype(float), increasing=True).T  # moments[k, j] = offsets[j] ** k
    first, second = (np.linalg.solve(moments, np.eye(offsets.size)[order]) * factor
                     for order, factor in ((1, 1.0), (2, 2.0)))
    samples = [values(k * step) for k in offsets]
    return (sum(w * f for w, f in zip(first, samples, strict=True)) / step,
            sum(w * f for w, f in zip(second, samples, strict=True)) / step**2)
