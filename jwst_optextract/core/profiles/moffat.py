"""The ``moffat`` profile kind: a pixel-integrated Moffat with Legendre centre and width and one index ``beta``."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from numpy.polynomial import legendre
from scipy.special import beta as beta_function
from scipy.special import digamma

from ..scene import SceneBackground
from ..trace import _scaled
from .base import Profile, ProfileProblem, less_background, register
from .shape import LegendreCentre, center_start, fit_shape, legendre_from_values, mean_data, normalised

__all__ = ["MoffatProfile", "alpha_for_sigma", "fit_moffat_profile", "moffat_profile", "sigma_for_alpha"]

log = logging.getLogger(__name__)

# Gauss-Legendre nodes for integrating the Moffat density over a pixel: with
# alpha >= 0.5 px the pixel integral is good to 1e-6 of the peak, at the least
# half width (alpha 0.35 px at beta 1 to 1.5) to 3e-5.
_NODES, _WEIGHTS = legendre.leggauss(8)
_FWHM_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(2.0))
START_BETA = 2.5
"""The Moffat index fits start from."""
BETA_LIMITS = (1.0, 20.0)
"""The Moffat index's range in every fit (toward 0.5 the profile's integral diverges, and its wings take up
whatever is left in the slit)."""
HALF_WIDTH_MIN = 0.35
"""Least half width at half maximum of a Moffat fit, pixels: the Gaussian fit's least sigma (0.3 px) has it.
NIRSpec's PSF is undersampled in the blue (FWHM about 1 px at 1 um); a limit at 0.5 px held such profiles at the
limit, where the fit stalled with a chi-square per pixel of 3 (against 1.0 for the truth)."""


def alpha_for_sigma(sigma: np.ndarray, beta: float) -> np.ndarray:
    """The Moffat width ``alpha`` whose FWHM, at index ``beta``, is that of a Gaussian of ``sigma``."""
    return np.asarray(sigma, float) * _FWHM_PER_SIGMA / (2.0 * _half_width_per_alpha(beta))


def sigma_for_alpha(alpha: np.ndarray, beta: float) -> np.ndarray:
    """The Gaussian sigma whose FWHM is that of a Moffat of width ``alpha`` and index ``beta`` (`alpha_for_sigma`'s
    inverse)."""
    return np.asarray(alpha, float) * 2.0 * _half_width_per_alpha(beta) / _FWHM_PER_SIGMA


def moffat_profile(ny: int, center: np.ndarray, alpha: np.ndarray, beta: float) -> np.ndarray:
    """Pixel-integrated Moffat ``(1 + (t / alpha)**2) ** -beta``, normalised to one over the ``ny`` rows.

    Parameters
    ----------
    ny : int
        Number of rows.
    center, alpha : ndarray
        Centre row and Moffat width per column, broadcastable to ``(..., nx)``.
    beta : float
        Moffat index (> 0.5); large values approach a Gaussian of sigma
        ``alpha / sqrt(2 beta)``.

    Returns
    -------
    ndarray
        Shape ``(..., ny, nx)``.
    """
    g, _ = _moffat_derivatives(ny, np.asarray(center, float), np.asarray(alpha, float), float(beta),
                               derivatives=False)
    return normalised(g)




def _half_width_per_alpha(beta: float) -> float:
    """The Moffat's half width at half maximum in units of ``alpha``: ``sqrt(2**(1/beta) - 1)``."""
    return float(np.sqrt(2.0 ** (1.0 / beta) - 1.0))


def _half_width_derivatives(ny, center, half_width, inverse_beta):
    """`_moffat_derivatives` in the fitted parameters: half width at half maximum and ``1 / beta``."""
    beta = 1.0 / inverse_beta
    k = _half_width_per_alpha(beta)
    alpha = half_width / k
    g, d = _moffat_derivatives(ny, center, alpha, beta)
    dk = 2.0**inverse_beta * np.log(2.0) / (2.0 * k)  # dk / d(1/beta)
    d_alpha = d.pop("width")
    d["width"] = d_alpha / k
    d["inverse_beta"] = -d_alpha * (alpha / k * dk)[..., None, :] - d.pop("beta") * beta**2
    return g, d


def _moffat_derivatives(ny, center, alpha, beta, derivatives=True):
    """The Moffat's pixel integrals G (fraction of the total flux) and their derivatives.

    The density is integrated over each pixel by Gauss-Legendre quadrature
    (one loop over the nodes, vectorised over pixels); the derivatives with
    respect to ``alpha`` and ``beta`` include that of the normalisation
    ``alpha B(1/2, beta - 1/2)``.
    """
    rows = np.arange(ny, dtype=float)[:, None]
    c = center[..., None, :]
    a = alpha[..., None, :]
    norm = a * beta_function(0.5, beta - 0.5)
    shape = np.broadcast_shapes(rows.shape, c.shape, a.shape)
    # The sums start from zero arrays, and each term is computed in place into the same few buffers: the
    # numbers of the plain expressions, without a fresh temporary for every operation and node.
    h, d_alpha, d_beta = np.zeros(shape), np.zeros(shape), np.zeros(shape)
    u2, log_term, density, work = np.empty(shape), np.empty(shape), np.empty(shape), np.empty(shape)
    for node, weight in zip(_NODES, _WEIGHTS):
        np.subtract(rows + 0.5 * node, c, out=u2)
        np.divide(u2, a, out=u2)
        np.square(u2, out=u2)
        np.log1p(u2, out=log_term)
        np.multiply(-beta, log_term, out=density)
        np.exp(density, out=density)
        np.multiply(0.5 * weight, density, out=density)
        h += density
        if derivatives:
            np.multiply(density, u2, out=work)
            np.add(1.0, u2, out=u2)
            np.divide(work, u2, out=work)
            d_alpha += work
            np.multiply(density, log_term, out=work)
            d_beta -= work
    g = h / norm
    if not derivatives:
        return g, {}

    # the density at the row edges (a row's upper edge is the next row's lower edge: evaluated once)
    edges = np.arange(ny + 1, dtype=float)[:, None] - 0.5
    edge_density = np.exp(-beta * np.log1p(((edges - c) / a) ** 2)) / norm
    return g, {
        "center": edge_density[..., :-1, :] - edge_density[..., 1:, :],
        "width": (2.0 * beta * d_alpha / norm - g) / a,
        "beta": d_beta / norm - g * (digamma(beta - 0.5) - digamma(beta)),
    }




@register("moffat")
@dataclass
class MoffatProfile(LegendreCentre, Profile):
    """Moffat cross-dispersion profile with Legendre centre and width and one index ``beta``.

    Attributes
    ----------
    center_coeffs, alpha_coeffs : ndarray
        Legendre coefficients in the column index scaled to [-1, 1].
    beta : float
        Moffat index.
    nx, ny : int
        Slit size the profile is defined on.
    """

    center_coeffs: np.ndarray
    alpha_coeffs: np.ndarray
    beta: float
    nx: int
    ny: int
    base: np.ndarray | None = None
    """A trace the centre polynomial is an offset from, or None."""
    chi2: float = np.nan
    """Weighted chi-square of the fit, summed over the pixels used."""
    n_pixels: int = 0

    @property
    def alpha(self) -> np.ndarray:
        """Moffat width per column, in pixels."""
        return self._along_dispersion(self.alpha_coeffs)

    derivative_step: ClassVar[float] = 0.1

    @property
    def offset(self) -> np.ndarray | float:
        """The Moffat's centre less the trace it was fitted about, per column (0 where the centre was held)."""
        return 0.0 if self.base is None else self._along_dispersion(self.center_coeffs)

    def evaluate(self, ny: int, center: np.ndarray) -> np.ndarray:
        """The normalised profile ``(..., ny, nx)`` about the trace ``center``, at the fitted `offset` from it."""
        return moffat_profile(ny, center + self.offset, self.alpha, self.beta)

    @property
    def n_parameters(self) -> float:
        return float(self.center_coeffs.size + self.alpha_coeffs.size + 1)

    @property
    def note(self) -> str:
        return f"beta {self.beta:.2f}"

    def to_entry(self) -> dict[str, Any]:
        """The product entry's Moffat fields: ``alpha`` per column, its Legendre ``coefficients``, ``beta`` and the
        centre's ``offset`` from the trace per column."""
        return {"alpha": self.alpha, "coefficients": np.asarray(self.alpha_coeffs, float), "beta": float(self.beta),
                "offset": np.broadcast_to(self.offset, (self.nx,)).astype(float)}

    @classmethod
    def from_entry(cls, entry: Any, center: np.ndarray, ny: int) -> MoffatProfile:
        """The profile of a product entry; ``alpha`` was stored as ``sigma`` by earlier versions, which is read too,
        and its centre was the trace (no ``offset``)."""
        alpha = getattr(entry, "alpha", None)
        offset = getattr(entry, "offset", None)
        offset = np.zeros(center.size) if offset is None else np.asarray(offset, float)
        offset_coeffs, alpha_coeffs = legendre_from_values(offset, entry.sigma if alpha is None else alpha)
        return cls(offset_coeffs, alpha_coeffs, float(entry.beta), center.size, ny, base=np.asarray(center, float))

    @classmethod
    def fit(cls, problem: ProfileProblem) -> MoffatProfile:
        """A Moffat profile about the trace, started from the Gaussian of the same half width.

        With the instrument's PSF prior (``problem.psf_prior``), the index
        starts from the prior's and is held toward it as far as the data
        leave it free.

        Its centre is a constant `offset` from the trace, fitted: the trace is
        the Gaussian's, whose centre a winged profile cut by the slit's edge
        pulls away from the Moffat's (0.014 px on a bright source 6 rows from
        the edge of a 22-row slit: the Moffat held at that trace widened to
        fit and took 0.3 % too little flux, and a spline that follows any
        centre won by 145 in Akaike's criterion, +1.5 %).

        Its width varies along the dispersion with the degree the Gaussian fit
        chose, and, where that is lower, also with ``problem.width_degree``; the
        lower Akaike criterion wins. A Gaussian that is the wrong shape can prefer
        a constant width that the Moffat does not.
        """
        gaussian = problem.gaussian
        prior = problem.psf_prior
        beta = START_BETA if prior is None else prior.beta
        alpha = alpha_for_sigma(gaussian.sigma, beta)
        # With the background in the data, a joint fit started far off can trade the wings against the
        # background and settle on a broad, Gaussian-like minimum: first fit the data less the
        # Gaussian scene's background, then refine jointly from there. A second width degree starts
        # from the first's joint fit, which is as close.
        joint = (problem.image, problem.background if problem.background.fitted else None)
        first_stages = [(less_background(problem, gaussian).image, None)] + ([joint] if joint[1] else [])
        fits = []
        for degree in sorted({gaussian.sigma_coeffs.size - 1, problem.width_degree}):
            moffat = fits[-1] if fits else None
            for image, background in ([joint] if fits else first_stages):
                moffat = fit_moffat_profile(
                    image, problem.good, problem.var_rnoise, problem.var_poisson,
                    problem.center if moffat is None else moffat.center, center_degree=0, base=problem.center,
                    alpha_guess=alpha if moffat is None else moffat.alpha,
                    beta_guess=beta if moffat is None else moffat.beta, alpha_degree=degree,
                    reject_sigma=problem.reject_sigma, background=background,
                    inverse_beta_prior=None if prior is None else (prior.inverse_beta, prior.inverse_beta_sd),
                )
            fits.append(moffat)
        n = fits[0].n_pixels

        def aic(fit):
            return fit.chi2 / max(fit.n_pixels, 1) * n + 2 * (fit.alpha_coeffs.size + 1)

        moffat = min(fits, key=aic)
        log.info("Slit %s: Moffat profile, alpha %.2f to %.2f px, beta %.2f%s", problem.name, moffat.alpha.min(),
                 moffat.alpha.max(), moffat.beta, "" if prior is None else
                 f" (prior {prior.beta:.2f}, 1/beta {prior.inverse_beta:.2f} +- {prior.inverse_beta_sd:.2f}, "
                 f"{prior.source})")
        return moffat




def fit_moffat_profile(
    data: np.ndarray,
    good: np.ndarray,
    var_rnoise: np.ndarray,
    var_poisson: np.ndarray | None,
    trace: np.ndarray,
    alpha_guess: float | np.ndarray = 1.5,
    beta_guess: float = 2.5,
    center_degree: int | None = None,
    alpha_degree: int = 2,
    reject_sigma: float = 5.0,
    max_iterations: int = 20,
    alpha_limits: tuple[float, float] = (HALF_WIDTH_MIN, 20.0),
    beta_limits: tuple[float, float] = BETA_LIMITS,
    base: np.ndarray | None = None,
    background: SceneBackground | None = None,
    inverse_beta_prior: tuple[float, float] | None = None,
) -> MoffatProfile:
    """Fit a Moffat profile of smoothly varying centre and width, and one ``beta``, to a slit.

    Parameters
    ----------
    data, good, var_rnoise, var_poisson, trace, base, background
        As for `fit_gaussian_profile`.
    alpha_guess : float or ndarray
        Starting width: one value, or one per column (e.g. from a Gaussian fit).
    beta_guess : float
        Starting Moffat index.
    center_degree : int or None
        Legendre degree of the centre along the dispersion; None (default)
        holds the centre at ``trace``.
    alpha_degree : int
        Legendre degree of ``alpha`` along the dispersion.
    reject_sigma, max_iterations
        As for `fit_gaussian_profile`.
    alpha_limits, beta_limits : tuple of float
        The half width at half maximum is kept between ``alpha_limits[0]``
        and the half width of ``alpha_limits[1]`` at the lowest ``beta`` (the
        fit's parameters are the half width and ``1 / beta``, which trade far
        less than ``alpha`` and ``beta``), and ``beta`` within its limits (at
        the upper one the data cannot tell the profile from a Gaussian).
    inverse_beta_prior : (float, float), optional
        Mean and standard deviation of a Gaussian prior on ``1 / beta`` (the
        instrument's, `~jwst_optextract.core.psf_prior.PsfPrior`): where the
        data do not say (a faint source's wings trade with the background),
        the index shrinks toward it. None: no prior.

    Returns
    -------
    MoffatProfile
    """
    image, mask, vr, vp = mean_data(data, good, var_rnoise, var_poisson)
    ny, nx = image.shape
    base, about, coeffs = center_start(trace, base, center_degree, nx)
    t = _scaled(np.arange(nx), nx)
    # Fitted as the half width at half maximum and 1/beta: alpha and beta trade along a curved valley
    # (the same FWHM at many beta), where Gauss-Newton crawls; the half width is nearly independent of
    # the wings' shape, and 1/beta reaches the Gaussian limit at a finite value.
    guess = np.broadcast_to(np.asarray(alpha_guess, float), (nx,)) * _half_width_per_alpha(beta_guess)
    coeffs["width"] = legendre.legfit(t, guess, alpha_degree)
    coeffs["inverse_beta"] = np.array([1.0 / float(beta_guess)])
    limits = {"width": (alpha_limits[0], alpha_limits[1] * _half_width_per_alpha(beta_limits[0])),
              "inverse_beta": (1.0 / beta_limits[1], 1.0 / beta_limits[0])}

    def model(values):
        return _half_width_derivatives(ny, values["center"], values["width"], float(values["inverse_beta"][0]))

    # started from a fitted Gaussian: outliers can be rejected from the first iteration
    prior = None
    if inverse_beta_prior is not None:
        mean, sd = inverse_beta_prior
        prior = {"inverse_beta": (np.array([float(mean)]), np.array([1.0 / float(sd) ** 2]))}
    coeffs, chi2, n_pixels = fit_shape(image, mask, vr, vp, model, coeffs, about, limits, reject_sigma,
                                       max_iterations, first_rejection=0, background=background, prior=prior)[:3]
    coeffs["beta"] = 1.0 / coeffs["inverse_beta"]
    coeffs["width"] = coeffs["width"] / _half_width_per_alpha(float(coeffs["beta"][0]))
    beta = float(np.clip(coeffs["beta"][0], *beta_limits))
    if beta >= beta_limits[1]:
        log.info("Moffat profile fit: beta at its upper limit %.1f (a Gaussian-like profile)", beta)
    return MoffatProfile(center_coeffs=coeffs.get("center", np.zeros(1)), alpha_coeffs=coeffs["width"],
                         beta=beta, nx=nx, ny=ny, base=base, chi2=chi2, n_pixels=n_pixels)


