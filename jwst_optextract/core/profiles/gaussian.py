"""The ``gaussian`` profile kind: a pixel-integrated Gaussian whose centre and width are Legendre series.

It is also the trace fit's profile: every other kind starts from it, and
falls back to it when the data cannot support more.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import numpy as np
from numpy.polynomial import legendre
from scipy.special import erf

from ..combine import sharpness
from ..pixels import Variances
from ..scene import SceneBackground
from ..trace import _scaled
from .base import Profile, ProfileProblem, register
from .shape import (
    LegendreCentre, ShapeFit, center_start, constant_series, fit_shape, held_chi2_increase, legendre_from_values,
    mean_data, normalised,
)

__all__ = ["GaussianProfile", "fit_gaussian_profile", "gaussian_profile"]

_SQRT2 = np.sqrt(2.0)
_SQRT2PI = np.sqrt(2.0 * np.pi)


def gaussian_profile(ny: int, center: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """Pixel-integrated Gaussian, normalised to one over the ``ny`` rows.

    Parameters
    ----------
    ny : int
        Number of rows.
    center, sigma : ndarray
        Centre row and Gaussian sigma per column, broadcastable to ``(..., nx)``.

    Returns
    -------
    ndarray
        Shape ``(..., ny, nx)``.
    """
    g = _integrated_gaussian(ny, np.asarray(center, float), np.asarray(sigma, float))
    return normalised(g)



def _pixel_edges(ny: int) -> np.ndarray:
    """``(ny + 1, 1)`` row edges ``-0.5, 0.5, ..., ny - 0.5``.

    A row's upper edge is the next row's lower edge, the same number: the
    functions of the edges are evaluated once, not twice.
    """
    return np.arange(ny + 1, dtype=float)[:, None] - 0.5


def _integrated_gaussian(ny, center, sigma):
    c = center[..., None, :]
    s = sigma[..., None, :] * _SQRT2
    cumulative = erf((_pixel_edges(ny) - c) / s)
    return 0.5 * (cumulative[..., 1:, :] - cumulative[..., :-1, :])


def _gaussian_derivatives(ny, center, sigma):
    """G and its derivatives with respect to the centre and to sigma."""
    u = (_pixel_edges(ny) - center) / sigma
    phi = np.exp(-0.5 * u**2) / _SQRT2PI
    cumulative = erf(u / _SQRT2)
    u_lo, u_hi, phi_lo, phi_hi = u[:-1], u[1:], phi[:-1], phi[1:]
    g = 0.5 * (cumulative[1:] - cumulative[:-1])
    d_center = (phi_lo - phi_hi) / sigma
    d_sigma = (phi_lo * u_lo - phi_hi * u_hi) / sigma
    return g, {"center": d_center, "width": d_sigma}




@register("gaussian")
@dataclass
class GaussianProfile(LegendreCentre, Profile):
    """Gaussian cross-dispersion profile with Legendre centre and width.

    Attributes
    ----------
    center_coeffs, sigma_coeffs : ndarray
        Legendre coefficients in the column index scaled to [-1, 1].
    nx, ny : int
        Slit size the profile is defined on.
    """

    center_coeffs: np.ndarray
    sigma_coeffs: np.ndarray
    nx: int
    ny: int
    base: np.ndarray | None = None
    """A trace the centre polynomial is an offset from (e.g. the WCS trace), or None."""
    shape_fit: ShapeFit | None = field(default=None, repr=False, compare=False)
    """The fit that made this profile (its chi-square, pixels, normal matrix, fluxes and S/N), or None."""

    @property
    def chi2(self) -> float:
        """Weighted chi-square of the fit, summed over the pixels used (NaN without a fit)."""
        return np.nan if self.shape_fit is None else self.shape_fit.chi2

    @property
    def n_pixels(self) -> int:
        """Number of pixels the fit used (0 without a fit)."""
        return 0 if self.shape_fit is None else self.shape_fit.n_pixels

    @property
    def used(self) -> np.ndarray | None:
        """The pixels of the fit's (mean) image it used: good and not rejected as outliers (None without a fit)."""
        return None if self.shape_fit is None else self.shape_fit.used

    @property
    def sigma(self) -> np.ndarray:
        """Gaussian sigma per column, in pixels."""
        return self._along_dispersion(self.sigma_coeffs)

    derivative_step: ClassVar[float] = 0.1

    def evaluate(self, ny: int, center: np.ndarray) -> np.ndarray:
        """The normalised profile ``(..., ny, nx)`` about ``center`` (e.g. ``self.ny``, ``self.center``)."""
        return gaussian_profile(ny, center, self.sigma)

    @property
    def n_parameters(self) -> float:
        return float(self.center_coeffs.size + self.sigma_coeffs.size)

    def held_chi2_increase(self, center_degree: int | None, sigma_degree: int) -> float:
        """Predicted rise of the fit's chi-square with the centre and width cut to these degrees, without refitting.

        See `~jwst_optextract.core.profiles.shape.held_chi2_increase`; NaN when the fit left no normal matrix.
        """
        if self.shape_fit is None:
            return float("nan")
        degrees = {"width": sigma_degree} if center_degree is None else {"center": center_degree,
                                                                         "width": sigma_degree}
        return held_chi2_increase(self.shape_fit.coeffs, self.shape_fit.precision, degrees)

    def to_entry(self) -> dict[str, Any]:
        return {"sigma": self.sigma, "coefficients": np.asarray(self.sigma_coeffs, float)}

    @classmethod
    def from_entry(cls, entry: Any, center: np.ndarray, ny: int) -> GaussianProfile:
        center_coeffs, sigma_coeffs = legendre_from_values(center, entry.sigma)
        return cls(center_coeffs, sigma_coeffs, center.size, ny)

    @classmethod
    def fit(cls, problem: ProfileProblem) -> GaussianProfile:
        """The Gaussian of the trace fit (``problem.gaussian``): the trace and the Gaussian are fitted together."""
        return problem.gaussian




WIDTH_PRIOR_SCATTER = (1.0, 0.5)
"""Standard deviations, in units of the prior width, of the mean width and of each higher Legendre term."""


def width_prior_terms(width: float, degree: int) -> tuple[np.ndarray, np.ndarray]:
    """The mean and inverse variance of the Legendre coefficients of a width held toward ``width``."""
    scatter = np.full(degree + 1, WIDTH_PRIOR_SCATTER[1] * width)
    scatter[0] = WIDTH_PRIOR_SCATTER[0] * width
    return constant_series(width, degree), 1.0 / scatter**2


def fit_gaussian_profile(
    data: np.ndarray,
    good: np.ndarray,
    var_rnoise: np.ndarray,
    var_poisson: np.ndarray | None,
    trace: np.ndarray,
    sigma_guess: float | np.ndarray = 1.0,
    center_degree: int | None = 3,
    sigma_degree: int = 2,
    reject_sigma: float = 5.0,
    max_iterations: int = 15,
    sigma_limits: tuple[float, float] = (0.3, 10.0),
    base: np.ndarray | None = None,
    background: SceneBackground | None = None,
    width_prior: float | None = None,
    first_rejection: int = 3,
    coarse_columns: int = 0,
) -> GaussianProfile:
    """Fit a Gaussian profile of smoothly varying centre and width to a slit.

    Parameters
    ----------
    data : ndarray
        Background-subtracted data ``(..., ny, nx)``; integrations are averaged.
    good : ndarray of bool
        Good-pixel mask, same shape as ``data``.
    var_rnoise, var_poisson : ndarray
        Variance components (``var_poisson`` may be None), as for
        `~jwst_optextract.core.optimal.optimal_extract`.
    trace : ndarray
        Starting centre per column, ``(nx,)``.
    sigma_guess : float or ndarray
        Starting width: one value, or one per column (e.g. from another fit).
    center_degree : int or None
        Legendre degree of the centre along the dispersion; None holds the
        centre at ``trace``.
    sigma_degree : int
        Legendre degree of the width along the dispersion.
    reject_sigma : float
        Pixels further than this from the model are left out of the fit.
    max_iterations : int
        Gauss-Newton iterations at most.
    sigma_limits : tuple of float
        The width is kept within these limits.
    base : ndarray, optional
        A trace ``(nx,)`` (e.g. from the WCS) whose shape is kept: the centre
        polynomial is then an offset from it.
    background : SceneBackground, optional
        For data that still hold their background: it is fitted with the
        amplitudes at every step (see `fit_shape`).
    width_prior : float, optional
        A prior width (pixels): the mean width is held toward it with a
        standard deviation of the prior itself, its variation along the
        dispersion toward none with half that (`WIDTH_PRIOR_SCATTER`). A
        bright source's width is the data's; a faint one's, or one the
        background could take up, shrinks toward the prior.
    first_rejection : int
        Outliers are rejected against the model from this iteration on, when
        the width is no longer far off (before, only pixels sharp along the
        dispersion are left out); 0 for a start from a fit.
    coarse_columns : int
        With more than one, the fit starts from a fit to the image with this
        many columns averaged (`_coarse_start`), and rejects outliers from its
        first step: the steps from a poor start cost a fraction of their price
        at full resolution.

    Returns
    -------
    GaussianProfile
    """
    image, mask, vr, vp = mean_data(data, good, var_rnoise, var_poisson)
    ny, nx = image.shape
    base, about, coeffs = center_start(trace, base, center_degree, nx)
    guess = np.broadcast_to(np.asarray(sigma_guess, float), (nx,))
    coeffs["width"] = legendre.legfit(_scaled(np.arange(nx), nx), guess, sigma_degree)
    limits = {"width": sigma_limits}

    def model(values):
        return _gaussian_derivatives(ny, values["center"], values["width"])

    prior = None if width_prior is None else {"width": width_prior_terms(width_prior, sigma_degree)}
    if coarse_columns > 1 and nx // coarse_columns >= MIN_COARSE_COLUMNS:
        coeffs = _coarse_start(image, mask, vr, vp, model, coeffs, about, limits, reject_sigma, max_iterations,
                               background, prior, coarse_columns)
        first_rejection = 0
    fitted = fit_shape(image, mask, vr, vp, model, coeffs, about, limits, reject_sigma, max_iterations,
                       first_rejection, background=background, prior=prior)
    return GaussianProfile(center_coeffs=fitted.coeffs.get("center", np.zeros(1)), sigma_coeffs=fitted.coeffs["width"],
                           nx=nx, ny=ny, base=base, shape_fit=fitted)


MIN_COARSE_COLUMNS = 32
"""A coarse start needs at least this many averaged columns (the knots of a smooth background among them)."""


def _coarse_start(image, mask, vr, vp, model, coeffs, about, limits, reject_sigma, max_iterations, background,
                  prior, factor: int) -> dict:
    """Shape coefficients fitted to ``image`` with every ``factor`` columns averaged, for the full fit to start from.

    The pixels sharp along the dispersion (cosmic rays, hot pixels) are left
    out of the averages; the columns beyond the last whole group are left out
    of the start. Each parameter stays the polynomial of its degree: the
    coefficients are carried between the groups' column index and the slit's,
    exactly. A smooth background keeps its knots, in the groups' columns.
    """
    ny, nx = image.shape
    groups = nx // factor
    n = groups * factor
    if reject_sigma:
        mask = mask & ~(np.nan_to_num(sharpness(image, mask, Variances(vr, vp).total())) > reject_sigma)
    used = mask[:, :n].reshape(ny, groups, factor)
    count = used.sum(axis=-1)
    scale = np.divide(1.0, count, out=np.zeros(count.shape), where=count > 0)

    def summed(values):
        return np.where(used, np.broadcast_to(values, image.shape)[:, :n].reshape(ny, groups, factor), 0.0).sum(-1)

    image_g = summed(image) * scale
    vr_g = summed(vr) * scale**2
    vp_g = None if vp is None else summed(vp) * scale**2
    about_g = np.asarray(about, float)[:n].reshape(groups, factor).mean(axis=-1)
    t = _scaled(np.arange(n).reshape(groups, factor).mean(axis=-1), nx)  # the groups' centres, in the slit's
    t_g = _scaled(np.arange(groups), groups)
    start = {name: legendre.legfit(t_g, legendre.legval(t, c), c.size - 1) for name, c in coeffs.items()}
    if background is not None and background.kind == "smooth":
        background = replace(background, knot_spacing=background.knot_spacing / factor)
    fitted = fit_shape(image_g, count > 0, vr_g, vp_g, model, start, about_g, limits, None, max_iterations,
                       background=background, prior=prior)
    return {name: legendre.legfit(t, legendre.legval(t_g, c), c.size - 1) for name, c in fitted.coeffs.items()}
