"""The ``pair`` profile kind: two point sources in one slit, blended.

A close pair (a neighbour in the same shutter, two clumps, a lensed pair) is
two images of the one PSF: the same width at each wavelength, a separation
along the slit that does not change with wavelength (both follow the trace),
and a flux share that does (the two have their own spectra). Two Gaussians
of one Legendre width, a constant separation, and a share linear along the
dispersion, about a smooth offset from the trace, fitted to every pixel with
the background (`fit_shape`).

A free spline can take such a source too, but in a short slit its shape
trades with the background's curvature across the slit: 11 to 14 parameters
per window against the background's three, where this has nine. On scorecard
doubles in 22-24-row slits the spline was 1-4 % off (5-18 sigma), this
0.05-0.2 %.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from numpy.polynomial import legendre
from scipy.optimize import least_squares
from scipy.special import erf

from ..trace import _scaled
from .base import Profile, ProfileProblem, less_background, register
from .choice import COMPANION_MIN_SNR, companion_snr
from .gaussian import _gaussian_derivatives, _integrated_gaussian
from .shape import LegendreCentre, fit_shape, legendre_from_values, normalised

__all__ = ["SEPARATION_MIN", "SHARE_LIMITS", "START_SEPARATIONS", "PairProfile", "pair_profile", "pair_starts"]

log = logging.getLogger(__name__)

SHARE_DEGREE = 1
"""Legendre degree along the dispersion of the second source's share of the flux (their colours differ)."""
SHARE_LIMITS = (0.02, 0.98)
"""The second source's share of the flux is kept within these: at either end the pair is one source."""
OFFSET_DEGREE = 2
"""Legendre degree along the dispersion of the pair's offset from the trace: a Gaussian fitted across two sources
wanders between them where their share changes, and the pair follows its own centre."""
SEPARATION_MIN = 0.5
"""Least separation of the two, rows: closer, they are one source of another width."""
START_SEPARATIONS = (0.8, 1.4, 1.9)
"""Separations a pair's fit starts from, in units of the sigma of a Gaussian fitted across it (wider than either
source; at 2 sigma apart an even pair has all of that Gaussian's second moment)."""


def pair_profile(ny: int, center: np.ndarray, sigma: np.ndarray, separation: float, share: np.ndarray) -> np.ndarray:
    """Two pixel-integrated Gaussians of width ``sigma``, the second ``separation`` rows above the first
    (``center``) with ``share`` of their flux, normalised to one over the ``ny`` rows.

    ``center``, ``sigma`` and ``share`` are per column, broadcastable to ``(..., nx)``; returns ``(..., ny, nx)``.
    """
    center, sigma = np.asarray(center, float), np.asarray(sigma, float)
    share = np.asarray(share, float)[..., None, :]
    first, second = (_integrated_gaussian(ny, c, sigma) for c in (center, center + float(separation)))
    return normalised((1.0 - share) * first + share * second)


APART_STARTS = (2.0, 3.0, 4.5, 6.0)
"""Separations (rows) of a pair's starts with one source on the trace: where its Gaussian fitted only that one."""


def pair_starts(sigma: np.ndarray | float) -> list[tuple[float, np.ndarray]]:
    """The separations (`START_SEPARATIONS`) a pair's fit starts from, about a Gaussian of ``sigma`` fitted across
    it (per column, or one number), each with the sources' sigma that gives an even pair that Gaussian's second
    moment (at least 0.35 px)."""
    sigma = np.asarray(sigma, float)
    starts = []
    for factor in START_SEPARATIONS:
        separation = max(factor * float(np.median(sigma)), 2 * SEPARATION_MIN)
        starts.append((separation, np.sqrt(np.maximum(sigma**2 - 0.25 * separation**2, 0.35**2))))
    return starts


def _pair_derivatives(ny, first, sigma, separation, share):
    g1, d1 = _gaussian_derivatives(ny, first, sigma)
    g2, d2 = _gaussian_derivatives(ny, first + separation, sigma)
    g = (1.0 - share) * g1 + share * g2
    return g, {
        "center": (1.0 - share) * d1["center"] + share * d2["center"],
        "separation": share * d2["center"],
        "share": g2 - g1,
        "width": (1.0 - share) * d1["width"] + share * d2["width"],
    }


@register("pair")
@dataclass
class PairProfile(LegendreCentre, Profile):
    """Two point sources blended in one slit: two Gaussians of one width law, a fixed separation and a flux share.

    Attributes
    ----------
    center_coeffs, sigma_coeffs, share_coeffs : ndarray
        Legendre coefficients (column index scaled to [-1, 1]) of the first
        source's offset from the trace, of the sources' Gaussian sigma, and
        of the second source's share of the flux.
    separation : float
        Rows from the first source to the second (positive).
    nx, ny : int
        Slit size the profile is defined on.
    """

    center_coeffs: np.ndarray
    sigma_coeffs: np.ndarray
    separation: float
    share_coeffs: np.ndarray
    nx: int
    ny: int
    base: np.ndarray | None = None
    """The trace the pair was fitted about (``center`` is then the first source's)."""
    chi2: float = np.nan
    """Weighted chi-square of the fit, summed over the pixels used."""
    n_pixels: int = 0

    derivative_step: ClassVar[float] = 0.1

    @property
    def sigma(self) -> np.ndarray:
        """Gaussian sigma of each source per column, in pixels."""
        return self._along_dispersion(self.sigma_coeffs)

    @property
    def offset(self) -> np.ndarray:
        """Rows from the trace to the first source, per column."""
        return self._along_dispersion(self.center_coeffs)

    @property
    def share(self) -> np.ndarray:
        """The second source's share of the flux per column."""
        return np.clip(self._along_dispersion(self.share_coeffs), *SHARE_LIMITS)

    def evaluate(self, ny: int, center: np.ndarray) -> np.ndarray:
        """The normalised profile ``(..., ny, nx)`` about the trace ``center``."""
        return pair_profile(ny, np.asarray(center, float) + self.offset, self.sigma, self.separation, self.share)

    @property
    def n_parameters(self) -> float:
        return float(self.center_coeffs.size + self.sigma_coeffs.size + 1 + self.share_coeffs.size)

    @property
    def note(self) -> str:
        return f"separation {self.separation:.2f} px, share {float(np.median(self.share)):.2f}"

    def to_entry(self) -> dict[str, Any]:
        """The product entry's fields: ``sigma``, ``offset`` (of the first source) and ``share`` per column, and
        ``separation``."""
        return {"sigma": self.sigma, "coefficients": np.asarray(self.sigma_coeffs, float), "offset": self.offset,
                "share": self.share, "separation": float(self.separation)}

    @classmethod
    def from_entry(cls, entry: Any, center: np.ndarray, ny: int) -> PairProfile:
        t = np.linspace(-1, 1, center.size)
        _, sigma_coeffs = legendre_from_values(center, entry.sigma)
        offset_coeffs = legendre.legfit(t, np.asarray(entry.offset, float), OFFSET_DEGREE)
        share_coeffs = legendre.legfit(t, np.asarray(entry.share, float), SHARE_DEGREE)
        return cls(offset_coeffs, sigma_coeffs, float(entry.separation), share_coeffs, center.size, ny)

    @classmethod
    def fit(cls, problem: ProfileProblem) -> PairProfile | None:
        """A pair about the trace, started from a fit to the slit's mean cross-dispersion profile.

        The width varies along the dispersion with the degree of the trace's
        Gaussian or ``problem.width_degree``, the higher: a Gaussian fitted
        across two sources can prefer a constant width that they do not have.
        None (with a log line) when no two sources fit that profile.
        """
        start = _start(problem)
        if start is None:
            log.info("Slit %s: no pair of sources fits the mean profile", problem.name)
            return None
        ny, nx = problem.image.shape
        t = _scaled(np.arange(nx), nx)
        offset, separation, share, sigma = start
        degree = max(problem.gaussian.sigma_coeffs.size - 1, problem.width_degree)
        coeffs = {"center": np.r_[offset, np.zeros(OFFSET_DEGREE)],
                  "width": legendre.legfit(t, np.full(nx, sigma), degree),
                  "separation": np.array([separation]), "share": np.r_[share, np.zeros(SHARE_DEGREE)]}
        limits = {"width": (0.3, 10.0), "separation": (SEPARATION_MIN, ny / 2.0), "share": SHARE_LIMITS}

        def model(values):  # "center" is the first source's: the trace plus the offset series
            return _pair_derivatives(ny, values["center"], values["width"], float(values["separation"][0]),
                                     values["share"])

        fitted = fit_shape(problem.image, problem.good, problem.var_rnoise, problem.var_poisson, model, coeffs,
                           problem.center, limits, problem.reject_sigma, max_iterations=30, first_rejection=0,
                           background=problem.background if problem.background.fitted else None)
        c = fitted.coeffs
        pair = cls(c["center"], c["width"], float(c["separation"][0]), c["share"], nx, ny,
                   base=np.asarray(problem.center, float), chi2=fitted.chi2, n_pixels=fitted.n_pixels)
        log.info("Slit %s: pair of sources %.2f px apart, sigma %.2f to %.2f px, second source's share %.2f to %.2f",
                 problem.name, pair.separation, pair.sigma.min(), pair.sigma.max(), pair.share.min(),
                 pair.share.max())
        _, scene = problem.scene(pair)
        fainter = companion_snr(scene.flux, scene.var_total, pair.share)
        if fainter < COMPANION_MIN_SNR:
            log.info("Slit %s: the pair's fainter source has S/N %.1f by itself (below %g): no pair", problem.name,
                     fainter, COMPANION_MIN_SNR)
            return None
        return pair


def _start(problem: ProfileProblem) -> tuple[float, float, float, float] | None:
    """Offset, separation, share and sigma of the pair that best fits the slit's mean profile about the trace.

    The profile is each offset bin's (half a row) least-squares ratio of the
    data less the trace Gaussian's background to that Gaussian's amplitudes;
    a pair integrated over a row, plus a quadratic in the offset for what
    that background left (a bowl where the Gaussian misfits), is fitted to it
    from a few separations about the trace (`pair_starts`), and from a few
    more with one source on the trace (`APART_STARTS`).
    """
    source = less_background(problem, problem.gaussian)
    _, scene = problem.scene(problem.gaussian)
    flux = np.nan_to_num(scene.flux)
    variance = problem.variances.total()
    ny, nx = problem.image.shape
    offset = np.arange(ny)[:, None] - np.asarray(problem.center, float)[None, :]
    use = problem.good & ~scene.rejected & (variance > 0) & (flux[None, :] > 0)
    if use.sum() < 10 * ny:
        return None
    bins = np.floor(offset[use] * 2.0).astype(int)
    bins -= bins.min()
    amplitude = np.broadcast_to(flux, (ny, nx))[use]
    weight = amplitude**2 / variance[use]
    top = np.bincount(bins, weight * source.image[use] / amplitude)
    bottom = np.bincount(bins, weight)
    filled = bottom > 0
    u = (np.arange(bottom.size) + 0.5) / 2.0 + np.floor(offset[use].min() * 2.0) / 2.0
    u, profile, error = u[filled], top[filled] / bottom[filled], 1.0 / np.sqrt(bottom[filled])
    if u.size < 12:
        return None

    def model(p):
        first, separation, share, sigma, scale, level, slope, curvature = p
        s = np.sqrt(2.0) * sigma

        def row(c):
            return 0.5 * (erf((u + 0.5 - c) / s) - erf((u - 0.5 - c) / s))

        baseline = level + u * (slope + curvature * u)
        return scale * ((1 - share) * row(first) + share * row(first + separation)) + baseline

    best = None
    low = [-ny / 2.0, SEPARATION_MIN, SHARE_LIMITS[0], 0.3, 0.0, -np.inf, -np.inf, -np.inf]
    high = [ny / 2.0, ny / 2.0, SHARE_LIMITS[1], 10.0, np.inf, np.inf, np.inf, np.inf]
    sigma_g = float(np.median(problem.gaussian.sigma))
    starts = [(-separation / 2.0, separation, float(sigma)) for separation, sigma in pair_starts(sigma_g)]
    # The trace's Gaussian may have fitted one of two sources apart (seed 4242017 S063: 4 px apart, the Gaussian's
    # sigma 0.64 px): the other one above or below it, at separations no multiple of that sigma reaches.
    starts += [(first, separation, sigma_g) for separation in APART_STARTS if separation < ny / 2.0
               for first in (0.0, -separation)]
    for first, separation, sigma in starts:
        start = [first, separation, 0.5, sigma, 1.0, 0.0, 0.0, 0.0]
        try:
            result = least_squares(lambda p: (model(p) - profile) / error, start, bounds=(low, high), x_scale="jac")
        except ValueError:
            continue
        if best is None or result.cost < best.cost:
            best = result
    if best is None or not best.success:
        return None
    first, separation, share, sigma = best.x[:4]
    return float(first), float(separation), float(share), float(sigma)
