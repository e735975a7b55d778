"""Parametric cross-dispersion profiles: pixel-integrated Gaussian and Moffat.

The centre ``c(x)`` and width (Gaussian ``sigma(x)``, Moffat ``alpha(x)``) are
Legendre polynomials in the column index, and the Moffat index ``beta`` is one
number per slit. They are fitted jointly to every good pixel of the slit by
Gauss-Newton least squares on the model ``D = f(x) G(y; c(x), width(x), ...)``,
where the amplitudes ``f(x)`` are the optimal-extraction fluxes of the current
profile. Using all pixels at once, instead of fitting columns or bins one at a
time, gives the width to a small fraction of a percent, which matters: a width
error ``e`` biases an optimally extracted flux by about ``e / 2``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.polynomial import legendre
from scipy.special import beta as beta_function
from scipy.special import digamma, erf

from .optimal import optimal_extract
from .scene import SceneBackground
from .trace import _scaled, collapse_integrations

__all__ = [
    "GaussianProfile", "MoffatProfile", "fit_gaussian_profile", "fit_moffat_profile", "fit_shape",
    "gaussian_profile", "moffat_profile",
]

log = logging.getLogger(__name__)

_SQRT2 = np.sqrt(2.0)
_SQRT2PI = np.sqrt(2.0 * np.pi)
# Gauss-Legendre nodes for integrating the Moffat density over a pixel: with
# alpha >= 0.5 px the pixel integral is good to 1e-6 of the peak.
_NODES, _WEIGHTS = legendre.leggauss(8)
_FWHM_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(2.0))


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
    return _normalised(g)


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
    return _normalised(g)


def _normalised(g):
    total = g.sum(axis=-2, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, g / total, 0.0)


def _integrated_gaussian(ny, center, sigma):
    rows = np.arange(ny, dtype=float)[:, None]
    c = center[..., None, :]
    s = sigma[..., None, :] * _SQRT2
    return 0.5 * (erf((rows + 0.5 - c) / s) - erf((rows - 0.5 - c) / s))


def _gaussian_derivatives(ny, center, sigma):
    """G and its derivatives with respect to the centre and to sigma."""
    rows = np.arange(ny, dtype=float)[:, None]
    u_hi = (rows + 0.5 - center) / sigma
    u_lo = (rows - 0.5 - center) / sigma
    phi_hi = np.exp(-0.5 * u_hi**2) / _SQRT2PI
    phi_lo = np.exp(-0.5 * u_lo**2) / _SQRT2PI
    g = 0.5 * (erf(u_hi / _SQRT2) - erf(u_lo / _SQRT2))
    d_center = (phi_lo - phi_hi) / sigma
    d_sigma = (phi_lo * u_lo - phi_hi * u_hi) / sigma
    return g, {"center": d_center, "width": d_sigma}


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
    h = d_alpha = d_beta = 0.0
    for node, weight in zip(_NODES, _WEIGHTS):
        u2 = ((rows + 0.5 * node - c) / a) ** 2
        log_term = np.log1p(u2)
        density = 0.5 * weight * np.exp(-beta * log_term)
        h = h + density
        if derivatives:
            d_alpha = d_alpha + density * u2 / (1.0 + u2)
            d_beta = d_beta - density * log_term
    g = h / norm
    if not derivatives:
        return g, {}

    def edge_density(offset):
        return np.exp(-beta * np.log1p(((rows + offset - c) / a) ** 2)) / norm

    return g, {
        "center": edge_density(-0.5) - edge_density(0.5),
        "width": (2.0 * beta * d_alpha / norm - g) / a,
        "beta": d_beta / norm - g * (digamma(beta - 0.5) - digamma(beta)),
    }


class _LegendreCentre:
    """The centre of a parametric profile: a Legendre series along the dispersion, about ``base`` if given.

    For dataclasses with ``center_coeffs``, ``base`` and ``nx``.
    """

    def _along_dispersion(self, coeffs: np.ndarray) -> np.ndarray:
        return legendre.legval(_scaled(np.arange(self.nx), self.nx), coeffs)

    @property
    def center(self) -> np.ndarray:
        """Centre row per column."""
        offset = self._along_dispersion(self.center_coeffs)
        return offset if self.base is None else self.base + offset


@dataclass
class GaussianProfile(_LegendreCentre):
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
    chi2: float = np.nan
    """Weighted chi-square of the fit, summed over the pixels used."""
    n_pixels: int = 0

    @property
    def sigma(self) -> np.ndarray:
        """Gaussian sigma per column, in pixels."""
        return self._along_dispersion(self.sigma_coeffs)

    def evaluate(self) -> np.ndarray:
        """The normalised profile, shape ``(ny, nx)``."""
        return gaussian_profile(self.ny, self.center, self.sigma)


@dataclass
class MoffatProfile(_LegendreCentre):
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

    def evaluate(self) -> np.ndarray:
        """The normalised profile, shape ``(ny, nx)``."""
        return moffat_profile(self.ny, self.center, self.alpha, self.beta)


def fit_gaussian_profile(
    data: np.ndarray,
    good: np.ndarray,
    var_rnoise: np.ndarray,
    var_poisson: np.ndarray | None,
    trace: np.ndarray,
    sigma_guess: float = 1.0,
    center_degree: int | None = 3,
    sigma_degree: int = 2,
    reject_sigma: float = 5.0,
    max_iterations: int = 15,
    sigma_limits: tuple[float, float] = (0.3, 10.0),
    base: np.ndarray | None = None,
    background: SceneBackground | None = None,
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
    sigma_guess : float
        Starting width (outliers are rejected from the fourth iteration on,
        when the width is no longer far off).
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

    Returns
    -------
    GaussianProfile
    """
    image, mask, vr, vp = _mean_data(data, good, var_rnoise, var_poisson)
    ny, nx = image.shape
    base, about, coeffs = _center_start(trace, base, center_degree, nx)
    coeffs["width"] = _constant(sigma_guess, sigma_degree)
    limits = {"width": sigma_limits}

    def model(values):
        return _gaussian_derivatives(ny, values["center"], values["width"])

    coeffs, chi2, n_pixels = fit_shape(image, mask, vr, vp, model, coeffs, about, limits, reject_sigma,
                                       max_iterations, background=background)
    return GaussianProfile(center_coeffs=coeffs.get("center", np.zeros(1)), sigma_coeffs=coeffs["width"],
                           nx=nx, ny=ny, base=base, chi2=chi2, n_pixels=n_pixels)


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
    alpha_limits: tuple[float, float] = (0.5, 20.0),
    beta_limits: tuple[float, float] = (1.0, 20.0),
    base: np.ndarray | None = None,
    background: SceneBackground | None = None,
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
        The parameters are kept within these limits (``beta`` at the upper
        limit means the data cannot tell the profile from a Gaussian).

    Returns
    -------
    MoffatProfile
    """
    image, mask, vr, vp = _mean_data(data, good, var_rnoise, var_poisson)
    ny, nx = image.shape
    base, about, coeffs = _center_start(trace, base, center_degree, nx)
    t = _scaled(np.arange(nx), nx)
    coeffs["width"] = legendre.legfit(t, np.broadcast_to(np.asarray(alpha_guess, float), (nx,)), alpha_degree)
    coeffs["beta"] = np.array([float(beta_guess)])
    limits = {"width": alpha_limits, "beta": beta_limits}

    def model(values):
        return _moffat_derivatives(ny, values["center"], values["width"], float(values["beta"][0]))

    # started from a fitted Gaussian: outliers can be rejected from the first iteration
    coeffs, chi2, n_pixels = fit_shape(image, mask, vr, vp, model, coeffs, about, limits, reject_sigma,
                                       max_iterations, first_rejection=0, background=background)
    beta = float(np.clip(coeffs["beta"][0], *beta_limits))
    if beta >= beta_limits[1]:
        log.info("Moffat profile fit: beta at its upper limit %.1f (a Gaussian-like profile)", beta)
    return MoffatProfile(center_coeffs=coeffs.get("center", np.zeros(1)), alpha_coeffs=coeffs["width"],
                         beta=beta, nx=nx, ny=ny, base=base, chi2=chi2, n_pixels=n_pixels)


def fit_shape(
    image: np.ndarray,
    mask: np.ndarray,
    var_rnoise: np.ndarray,
    var_poisson: np.ndarray | None,
    model: Callable[[dict], tuple[np.ndarray, dict]],
    coeffs: dict,
    base: np.ndarray,
    limits: dict,
    reject_sigma: float | None = 5.0,
    max_iterations: int = 15,
    first_rejection: int = 3,
    background: SceneBackground | None = None,
) -> tuple[dict, float, int]:
    """Gauss-Newton fit of a profile's shape parameters to all pixels of a 2D image, vectorised over columns.

    The model is ``D = f(x) G(y, x)``; the amplitudes ``f`` are the optimal
    extraction of the current ``G`` (with its outlier rejection), and each
    shape parameter is a Legendre series along the dispersion, so the normal
    equations are sums over rows, then over columns, of the pixel Jacobians.

    Parameters
    ----------
    image, mask : ndarray
        ``(ny, nx)`` data and good-pixel mask.
    var_rnoise, var_poisson : ndarray
        Variances as for `~jwst_optextract.core.optimal.optimal_extract`.
    model : callable
        ``model(values) -> (G, derivatives)``: ``values`` maps each parameter
        name to its ``(nx,)`` value per column (``"center"`` is always there,
        ``base`` plus its series when fitted); ``derivatives`` maps the
        fitted names to ``dG / dparameter``, ``(ny, nx)`` each.
    coeffs : dict
        Starting Legendre coefficients of each fitted parameter; ``"center"``
        may be left out to hold the centre at ``base``.
    base : ndarray
        ``(nx,)`` centre the ``"center"`` series is an offset from.
    limits : dict
        ``(low, high)`` per parameter name: a step that would take the
        per-column values outside is damped instead.
    reject_sigma, max_iterations
        Outlier threshold of the extraction, and iterations at most.
    first_rejection : int
        Outliers are rejected from this iteration on (a poor starting model,
        far off at high signal to noise, would reject good pixels).
    background : SceneBackground, optional
        A background fitted with the amplitudes at every step (the scene
        model, `~jwst_optextract.core.scene.fit_scene`), for data that still
        hold theirs; None for background-subtracted data.

    The steps are Gauss-Newton steps, damped (Levenberg-Marquardt) when one
    makes the fit worse or leaves the limits.

    Returns
    -------
    coeffs : dict
        Fitted coefficients.
    chi2 : float
        Weighted chi-square over the pixels used.
    n_pixels : int
        Pixels used.
    """
    names = list(coeffs)
    nx = image.shape[1]
    t = _scaled(np.arange(nx), nx)
    basis = {name: legendre.legvander(t, coeffs[name].size - 1).T for name in names}  # (deg+1, nx)
    sizes = np.cumsum([coeffs[name].size for name in names])[:-1]
    coeffs = {name: np.array(value, float) for name, value in coeffs.items()}
    damping, accepted, converged = 0.0, None, False
    for iteration in range(max_iterations):
        values = {name: np.clip(legendre.legval(t, c), *limits.get(name, (-np.inf, np.inf)))
                  for name, c in coeffs.items()}
        values["center"] = base + values.get("center", 0.0)
        g, derivatives = model(values)
        # Amplitudes, outliers and weights from the extraction itself; outliers
        # are decided afresh each time.
        rejecting = iteration >= first_rejection
        if background is None or not background.fitted:
            result = optimal_extract(
                image, g, var_rnoise, var_poisson, mask=mask, min_coverage=0.0, return_inverse_variance=True,
                reject_sigma=reject_sigma if rejecting else None,
            )
            sky = 0.0
        else:  # the amplitudes and the background fitted together: the wings are not background
            result = background.fit(image, _normalised(g), var_rnoise, var_poisson, mask=mask, min_coverage=0.0,
                                    return_inverse_variance=True, reject_sigma=reject_sigma if rejecting else None)
            sky = result.background
        flux = np.nan_to_num(result.flux) / g.sum(axis=0)
        iv = result.inverse_variance
        resid = np.where(iv > 0, image - flux * g - sky, 0.0)
        chi2 = float(np.sum(iv * resid**2))
        # Levenberg-Marquardt: a step that made the fit worse is undone and
        # damped. Worse on the pixels and weights of the last accepted fit:
        # rejecting more pixels must not count as fitting better.
        comparable = accepted is not None and (iteration != first_rejection or not rejecting)
        if comparable and not _chi2_on(accepted["iv"], image - flux * g - sky) <= accepted["chi2"]:
            coeffs, normal, rhs, chi2, iv = (accepted[k] for k in ("coeffs", "normal", "rhs", "chi2", "iv"))
            damping = max(10.0 * damping, 1e-3)
        else:
            jacobian = {name: flux * derivatives[name] for name in names}
            if background is not None:
                jacobian = background.project_out(jacobian, iv)
            # Normal equations, summed over rows first and then over columns.
            normal = np.block([[basis[a] * np.sum(iv * jacobian[a] * jacobian[b], axis=0) @ basis[b].T
                                for b in names] for a in names])
            rhs = np.concatenate([basis[a] @ np.sum(iv * jacobian[a] * resid, axis=0) for a in names])
            accepted = {"coeffs": coeffs, "normal": normal, "rhs": rhs, "chi2": chi2, "iv": iv}
            damping = damping / 10.0 if damping > 1e-6 else 0.0
        for _ in range(_MAX_DAMPINGS):
            try:
                step = np.linalg.solve(normal + damping * np.diag(np.diag(normal)), rhs)
            except np.linalg.LinAlgError:
                log.warning("Profile fit: singular normal equations; keeping the current values")
                step = np.zeros_like(rhs)
            trial, change = _stepped(coeffs, np.split(step, sizes), limits)
            if _within(trial, limits, t):
                break
            damping = max(10.0 * damping, 1e-3)
        else:
            break
        coeffs = trial
        if change < 1e-5:
            converged = True
            break
    if not converged and accepted is not None:
        coeffs = accepted["coeffs"]
    return coeffs, accepted["chi2"], int(np.sum(accepted["iv"] > 0))


_MAX_DAMPINGS = 8


def _chi2_on(iv: np.ndarray, resid: np.ndarray) -> float:
    return float(np.sum(np.where(iv > 0, iv * resid**2, 0.0)))


def _within(coeffs: dict, limits: dict, t: np.ndarray) -> bool:
    """Whether every parameter's per-column values lie within its limits."""
    for name, (low, high) in limits.items():
        if name in coeffs:
            values = legendre.legval(t, coeffs[name])
            if not np.all((values >= low) & (values <= high)):
                return False
    return True


def _stepped(coeffs: dict, steps: list, limits: dict) -> tuple[dict, float]:
    """Coefficients after a step (a constant held within its limits), and the largest change."""
    new, change = {}, 0.0
    for (name, value), part in zip(coeffs.items(), steps):
        new[name] = value + part
        if new[name].size == 1 and name in limits:
            new[name] = np.clip(new[name], *limits[name])
        change = max(change, float(np.max(np.abs(new[name] - value))))
    return new, change



def _center_start(trace, base, center_degree, nx):
    """The profile's base trace, the centre the fitted series is an offset from, and its start coefficients.

    With ``center_degree`` None the centre is held (no coefficients) at
    ``base``, or at ``trace`` when there is no base.
    """
    if center_degree is None:
        held = np.asarray(trace if base is None else base, float)
        return held, held, {}
    about = np.zeros(nx) if base is None else np.asarray(base, float)
    coef = legendre.legfit(_scaled(np.arange(nx), nx), np.asarray(trace, float) - about, center_degree)
    return base, about, {"center": coef}


def _constant(value: float, degree: int) -> np.ndarray:
    coef = np.zeros(degree + 1)
    coef[0] = value
    return coef


def _mean_data(data, good, var_rnoise, var_poisson):
    """The mean image over integrations, its mask, and the variances of that mean."""
    image, mask = collapse_integrations(data, good)
    n_int = max(1, int(np.prod(data.shape[:-2])))
    vr = _mean_frame(var_rnoise, data.shape) / n_int
    vp = None if var_poisson is None else _mean_frame(var_poisson, data.shape) / n_int
    return image, mask, vr, vp


def _mean_frame(var, shape):
    """Mean variance frame of an array broadcastable to ``shape``."""
    var = np.broadcast_to(np.asarray(var, dtype=float), shape)
    if var.ndim == 2:
        return var
    return np.nanmean(var, axis=tuple(range(var.ndim - 2)))
