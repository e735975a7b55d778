"""The fit shared by the parametric profile kinds (Gaussian, Moffat, template): `fit_shape`.

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
from typing import NamedTuple

import numpy as np
from numpy.polynomial import legendre

from ..combine import sharpness
from ..optimal import optimal_extract
from ..pixels import Variances
from ..scene import SceneBackground
from ..trace import _scaled, collapse_integrations

__all__ = ["LegendreCentre", "ShapeFit", "center_start", "constant_series", "fit_shape", "held_chi2_increase",
           "legendre_from_values", "mean_data", "normalised"]

log = logging.getLogger(__name__)


def normalised(g):
    """``g`` divided by its sum over the rows of each column (0 where that is not positive)."""
    total = g.sum(axis=-2, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, g / total, 0.0)




class LegendreCentre:
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




class ShapeFit(NamedTuple):
    """What `fit_shape` returns."""

    coeffs: dict
    """Fitted Legendre coefficients of each parameter."""
    chi2: float
    """Weighted chi-square over the pixels used (without the prior's term)."""
    n_pixels: int
    """Number of pixels used."""
    used: np.ndarray
    """``(ny, nx)``: True for the pixels used (good, not rejected as outliers)."""
    precision: np.ndarray
    """Normal matrix of the coefficients at the last accepted step (the prior's weights included): the inverse of
    their covariance, the coefficients in the order of ``coeffs``, each parameter's series in turn."""
    snr: float
    """Total signal to noise of the fluxes at the last accepted step, with the background held at its fit: an upper
    estimate of the flux's, whose uncertainty the background's adds to."""
    flux: np.ndarray
    """``(nx,)`` flux of every column at the last accepted step (of its profile normalised to one over the rows)."""


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
    prior: dict | None = None,
) -> ShapeFit:
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
        Outliers are rejected against the model from this iteration on (a
        poor starting model, far off at high signal to noise, would reject
        good pixels); before, the pixels sharp along the dispersion (cosmic
        rays, hot pixels: `~jwst_optextract.core.combine.sharpness`) are left
        out, or one far off the trace would pull the first steps toward a wide
        profile that a fitted background takes up.
    background : SceneBackground, optional
        A background fitted with the amplitudes at every step (the scene
        model, `~jwst_optextract.core.scene.fit_scene`), for data that still
        hold theirs; None for background-subtracted data.
    prior : dict, optional
        A Gaussian prior on some parameters' coefficients: ``name -> (mean,
        inverse_variance)``, arrays of the coefficients' size; it adds
        ``sum(inverse_variance * (coeffs - mean)**2)`` to the chi-square
        minimised, so that a faint source's shape shrinks toward it where the
        data do not say (a wide profile trades with the background).

    The steps are Gauss-Newton steps, damped (Levenberg-Marquardt) when one
    makes the fit worse or leaves the limits.

    Returns
    -------
    ShapeFit
        The coefficients, the chi-square and the pixels it is summed over.
    """
    names = list(coeffs)
    nx = image.shape[1]
    t = _scaled(np.arange(nx), nx)
    basis = {name: legendre.legvander(t, coeffs[name].size - 1).T for name in names}  # (deg+1, nx)
    sizes = np.cumsum([coeffs[name].size for name in names])[:-1]
    coeffs = {name: np.array(value, float) for name, value in coeffs.items()}
    prior = {name: value for name, value in (prior or {}).items() if name in coeffs}
    smooth = mask
    if reject_sigma and first_rejection > 0:
        variance = Variances(var_rnoise, var_poisson).total()
        smooth = mask & ~(np.nan_to_num(sharpness(image, mask, variance)) > reject_sigma)

    def penalty(c: dict) -> float:
        return float(sum(np.sum(iv * (c[name] - mean) ** 2) for name, (mean, iv) in prior.items()))

    # The prior's means and weights laid out as the coefficients are in the normal equations.
    prior_mean, prior_weight = (np.concatenate([prior[a][k] if a in prior else np.zeros(coeffs[a].size)
                                                for a in names]) for k in (0, 1))

    damping, accepted, converged, failures, predicted = 0.0, None, False, 0, np.inf
    for iteration in range(max_iterations):
        values = {name: np.clip(legendre.legval(t, c), *limits.get(name, (-np.inf, np.inf)))
                  for name, c in coeffs.items()}
        values["center"] = base + values.get("center", 0.0)
        g, derivatives = model(values)
        # Amplitudes, outliers and weights from the extraction itself; outliers
        # are decided afresh each time.
        rejecting = iteration >= first_rejection
        used = mask if rejecting else smooth
        if background is None or not background.fitted:
            result = optimal_extract(
                image, g, var_rnoise, var_poisson, mask=used, min_coverage=0.0, return_inverse_variance=True,
                reject_sigma=reject_sigma if rejecting else None,
            )
            sky = 0.0
        else:  # the amplitudes and the background fitted together: the wings are not background
            result = background.fit(image, normalised(g), var_rnoise, var_poisson, mask=used, min_coverage=0.0,
                                    return_inverse_variance=True, reject_sigma=reject_sigma if rejecting else None,
                                    with_variance=False)
            sky = result.background
        flux = np.nan_to_num(result.flux) / g.sum(axis=0)
        iv = result.inverse_variance
        resid = np.where(iv > 0, image - flux * g - sky, 0.0)
        chi2 = float(np.sum(iv * resid**2)) + penalty(coeffs)
        # Levenberg-Marquardt: a step that made the fit worse is undone and
        # damped. Worse on the pixels and weights of the last accepted fit:
        # rejecting more pixels must not count as fitting better.
        comparable = accepted is not None and (iteration != first_rejection or not rejecting)
        if comparable and not _improved(accepted, iv, image - flux * g - sky, penalty(coeffs)):
            # Pixels at the rejection threshold that change sides between
            # steps move the comparison by about one: a step predicted to gain
            # less cannot be told from none, and neither can one that keeps failing.
            failures += 1
            if predicted < 1.0 or failures > _MAX_FAILURES:
                break
            coeffs, normal, rhs, chi2, iv = (accepted[k] for k in ("coeffs", "normal", "rhs", "chi2", "iv"))
            damping = max(10.0 * damping, 1e-3)
        else:
            failures = 0
            jacobian = {name: flux * derivatives[name] for name in names}
            jacobian = (background or SceneBackground("none")).project_out(jacobian, iv, profile=g)
            # Normal equations, summed over rows first and then over columns.
            weighted = {a: iv * jacobian[a] for a in names}  # the products' first factor, made once
            normal = np.block([[basis[a] * np.sum(weighted[a] * jacobian[b], axis=0) @ basis[b].T
                                for b in names] for a in names])
            rhs = np.concatenate([basis[a] @ np.sum(weighted[a] * resid, axis=0) for a in names])
            if prior:
                normal = normal + np.diag(prior_weight)
                rhs = rhs + prior_weight * (prior_mean - np.concatenate([coeffs[a] for a in names]))
            accepted = {"coeffs": coeffs, "normal": normal, "rhs": rhs, "chi2": chi2, "iv": iv, "resid": resid,
                        "penalty": penalty(coeffs), "g": g, "flux": flux}
            damping = damping / 10.0 if damping > 1e-6 else 0.0
        for _ in range(_MAX_DAMPINGS):
            damped = normal + damping * np.diag(np.diag(normal))
            step = _solve_free(damped, rhs, np.ones(rhs.size, bool))
            # A constant at a limit that the step pushes beyond is held there (and the others solved without
            # it): clipped, the step would not do what it predicts, and would fail until the damping ran out.
            held = _held_at_limits(coeffs, np.split(step, sizes), limits)
            if held.any():
                step = _solve_free(damped, rhs, ~held)
            trial, change = _stepped(coeffs, np.split(step, sizes), limits)
            if _within(trial, limits, t):
                break
            damping = max(10.0 * damping, 1e-3)
        else:
            break
        coeffs = trial
        predicted = float(step @ rhs)
        log.debug("Profile fit: iteration %d, chi2 %.2f, damping %.0e, predicted decrease %.3f",
                  iteration, chi2, damping, predicted)
        # Converged when the step changes the coefficients by nothing, or the
        # chi-square by less than a tenth: a parameter moves by a third of its error.
        if change < 1e-5 or predicted < _CHI2_TOLERANCE:
            converged = True
            break
    if not converged and accepted is not None:
        coeffs = accepted["coeffs"]
    used = accepted["iv"] > 0
    return ShapeFit(coeffs, accepted["chi2"] - penalty(accepted["coeffs"]), int(np.sum(used)), used,
                    accepted["normal"], _held_background_snr(accepted["g"], accepted["flux"], accepted["iv"]),
                    accepted["flux"] * accepted["g"].sum(axis=0))


def _held_background_snr(g: np.ndarray, flux: np.ndarray, iv: np.ndarray) -> float:
    """Total signal to noise of the model ``flux * g``'s fluxes, the background held (its uncertainty not counted)."""
    column = g.sum(axis=0)
    information = np.sum(iv * g**2, axis=0)
    ok = information > 0
    variance = float(np.sum(column[ok] ** 2 / information[ok]))
    return float(np.sum(flux[ok] * column[ok]) / np.sqrt(variance)) if variance > 0 else 0.0


def held_chi2_increase(coeffs: dict, precision: np.ndarray, degrees: dict) -> float:
    """Predicted rise of a fit's chi-square were each series of ``coeffs`` cut to the degree ``degrees`` gives.

    The Wald statistic ``c_R^T (C_RR)^-1 c_R`` of the coefficients ``c_R``
    held at zero, ``C`` the inverse of ``precision`` (`ShapeFit`): what the
    fit of the simpler, nested model would lose to within its quadratic
    approximation, without fitting it. A series not in ``degrees`` is kept.
    """
    held = np.concatenate([np.arange(value.size) > degrees.get(name, value.size) for name, value in coeffs.items()])
    if not held.any():
        return 0.0
    values = np.concatenate([np.asarray(value, float) for value in coeffs.values()])
    try:
        covariance = np.linalg.inv(precision)[np.ix_(held, held)]
        return float(values[held] @ np.linalg.solve(covariance, values[held]))
    except np.linalg.LinAlgError:
        return float("nan")


_MAX_DAMPINGS = 8
_MAX_FAILURES = 3
"""Steps that may fail in a row (each damped ten times more) before the last accepted fit is kept."""


_CHI2_TOLERANCE = 0.1
"""A step predicted to lower the chi-square by less than this ends the fit: the parameters then move by less than
a third of their errors (0.01, a tenth, cost a sixth of the trace fit's time for no change the scorecard sees)."""


def _solve_free(normal: np.ndarray, rhs: np.ndarray, free: np.ndarray) -> np.ndarray:
    """The Gauss-Newton step of the ``free`` coefficients (the others held: zero step)."""
    step = np.zeros_like(rhs)
    try:
        step[free] = np.linalg.solve(normal[np.ix_(free, free)], rhs[free])
    except np.linalg.LinAlgError:
        log.warning("Profile fit: singular normal equations; keeping the current values")
    return step


def _held_at_limits(coeffs: dict, steps: list, limits: dict) -> np.ndarray:
    """True for the coefficients of constant parameters at a limit that their step pushes beyond."""
    held = []
    for (name, value), part in zip(coeffs.items(), steps):
        low, high = limits.get(name, (-np.inf, np.inf))
        at_limit = value.size == 1 and ((value[0] <= low and part[0] < 0) or (value[0] >= high and part[0] > 0))
        held.append(np.full(value.size, at_limit))
    return np.concatenate(held)


def _improved(accepted: dict, iv: np.ndarray, resid: np.ndarray, penalty: float) -> bool:
    """Whether a trial fits better than the last accepted fit, on the pixels both used and with its weights.

    A pixel the trial rejects (or no longer rejects) counts for neither: a
    rejection that changes between steps must not make a step look worse or better.
    """
    both = (accepted["iv"] > 0) & (iv > 0)
    weights = np.where(both, accepted["iv"], 0.0)
    before = float(np.sum(weights * accepted["resid"] ** 2)) + accepted["penalty"]
    return float(np.sum(weights * resid**2)) + penalty <= before


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



def center_start(trace, base, center_degree, nx):
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


def constant_series(value: float, degree: int) -> np.ndarray:
    """Legendre coefficients of degree ``degree`` of the constant ``value``."""
    coef = np.zeros(degree + 1)
    coef[0] = value
    return coef


def mean_data(data, good, var_rnoise, var_poisson):
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


def legendre_from_values(center: np.ndarray, width: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Legendre coefficients of a parametric profile's centre and width from their per-column values
    (as a product entry holds them)."""
    nx = center.size
    scaled = np.linspace(-1, 1, nx)
    degree = min(5, nx - 1)
    return (np.polynomial.legendre.legfit(scaled, center, degree),
            np.polynomial.legendre.legfit(scaled, np.asarray(width, float), degree))
