"""The profile shared by all exposures of a source, fitted to all of them at once (`optx_combine`).

One trace shift and one smooth width (a Gaussian, a Moffat with its index, or
a pair of blended sources with their separation and share) for the pooled
exposures of an `~jwst_optextract.core.combine.ExposureStack`,
with the negative images of nod differences in the model; ``auto`` keeps the
kind with the lower Akaike criterion, as `optx_psf` does.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from .combine import ExposureStack, source_model
from .profiles import gaussian_profile, moffat_profile, pair_profile
from .profiles.choice import MOFFAT_MIN_SNR, SHAPES_MIN_SNR, akaike, parsimonious, wing_prior_cost
from .profiles.moffat import BETA_LIMITS, START_BETA, alpha_for_sigma, sigma_for_alpha
from .profiles.pair import APART_STARTS, SEPARATION_MIN, SHARE_LIMITS, pair_starts
from .psf_prior import PsfPrior

__all__ = ["JointShape", "joint_shape", "refine_jointly"]

log = logging.getLogger(__name__)


@dataclass
class JointShape:
    """The profile shared by all exposures of a source: a Gaussian of width ``width``, a Moffat, or a pair.

    For the Moffat, ``width`` is ``alpha`` per column and ``beta`` its index.
    For the pair (`~jwst_optextract.core.profiles.pair`), ``width`` is each
    source's sigma, the first source lies ``offset`` rows from the trace, the
    second ``separation`` rows beyond it with ``share`` (per column) of the flux.
    """

    kind: str
    width: np.ndarray
    beta: float | None = None
    inverse_beta_prior: tuple[float, float] | None = None
    """Moffat: mean and standard deviation of the instrument's prior on ``1 / beta`` (`~jwst_optextract.core.psf_prior`)
    that its fits hold the index toward; None: none."""
    separation: float | None = None
    share: np.ndarray | None = None
    offset: float = 0.0

    def profile(self, ny: int, centers: np.ndarray) -> np.ndarray:
        """``(n_exposures, ny, nx)`` normalised profiles about each exposure's trace."""
        if self.kind == "moffat":
            return moffat_profile(ny, centers, self.width[None, :], self.beta)
        if self.kind == "pair":
            return pair_profile(ny, centers + self.offset, self.width[None, :], self.separation, self.share[None, :])
        return gaussian_profile(ny, centers, self.width[None, :])

    @property
    def n_parameters(self) -> int:
        """The numbers beyond the trace shift and the width law: the Moffat's index; the pair's separation and
        share (constant and slope)."""
        return {"moffat": 1, "pair": 3}.get(self.kind, 0)

    def describe(self) -> str:
        text = f"{self.kind} width {self.width.min():.2f} to {self.width.max():.2f} px"
        if self.kind == "pair":
            text += f", separation {self.separation:.2f} px, share {self.share.min():.2f} to {self.share.max():.2f}"
        return text + (f", beta {self.beta:.2f}" if self.beta is not None else "")

    @property
    def sigma(self) -> np.ndarray:
        """The Gaussian sigma of the same FWHM (a pair: of the same second moment), per column."""
        if self.kind == "moffat":
            return sigma_for_alpha(self.width, self.beta)
        if self.kind == "pair":
            return np.sqrt(self.width**2 + self.share * (1.0 - self.share) * self.separation**2)
        return self.width


INVERSE_BETA_LIMITS = (1.0 / BETA_LIMITS[1], 1.0 / BETA_LIMITS[0])
"""``1 / beta`` of `~jwst_optextract.core.profiles.moffat.BETA_LIMITS`, as in `optx_psf`'s Moffat."""


def joint_shape(work: ExposureStack, centers: np.ndarray, gaussian: JointShape, degree: int, kinds: tuple[str, ...],
                 detection_snr: float = 5.0, psf_prior: PsfPrior | None = None) -> tuple[np.ndarray, JointShape]:
    """The trace shift and shape fitted to all exposures, of the best of ``kinds`` (gaussian, moffat, pair).

    The Gaussian is fitted first, from ``gaussian``; the Moffat starts from its
    trace and FWHM, and its index from the instrument's ``psf_prior``
    (`~jwst_optextract.core.psf_prior.PsfPrior`; else 2.5), and is held toward
    the prior's as `optx_psf`'s Moffat is. The pair starts from a few
    separations about the Gaussian's trace, each with the sources' width that
    gives the Gaussian's second moment, and the best fit is kept. Of all, the
    one with the lower Akaike criterion, ``chi2 + 2 n_parameters``, is kept.
    A Moffat's wings and a pair's second source are modelled in the negative
    images too, so no flux goes with the nod differences.
    """
    fits = [refine_jointly(work, centers, gaussian, degree, detection_snr)]
    fitted_centers, fitted, cost, column_snr = fits[0]
    # As optx_psf's auto: the Moffat's index is one more number to learn from the wings, which a faint
    # source does not show (at S/N ~1.5 per column the Moffat took background residuals for wings, +15 %).
    if "moffat" in kinds and cost is not None and (kinds == ("moffat",) or column_snr >= SHAPES_MIN_SNR):
        beta = START_BETA if psf_prior is None else psf_prior.beta
        start = JointShape("moffat", alpha_for_sigma(fitted.width, beta), beta,
                           None if psf_prior is None else (psf_prior.inverse_beta, psf_prior.inverse_beta_sd))
        moffat = refine_jointly(work, fitted_centers, start, degree, detection_snr)
        fits = [moffat] if kinds == ("moffat",) else [*fits, moffat]
    # As optx_psf's auto, the pair from a median S/N of 1 per column: a faint double's Gaussian was 10 % high.
    if "pair" in kinds and cost is not None and (kinds == ("pair",) or column_snr >= MOFFAT_MIN_SNR):
        pairs = [refine_jointly(work, fitted_centers, start, degree, detection_snr)
                 for start in _pair_starts(work, fitted_centers, fitted)]
        pairs = [fit for fit in pairs if fit[2] is not None]
        if pairs:
            pair = min(pairs, key=lambda fit: fit[2])
            fits = [pair] if kinds == ("pair",) else [*fits, pair]
        else:
            log.info("Joint profile: no pair of sources fits the exposures (with profile_kind pair the Gaussian "
                     "is kept)")
    detected = [fit for fit in fits if fit[2] is not None]
    if not detected:
        return centers, gaussian
    best_centers, best, *_ = parsimonious(detected, lambda fit: _criterion(fit[1], fit[2], psf_prior),
                                          lambda fit: fit[1].n_parameters)
    if len(detected) > 1:
        log.info("Joint profile of all exposures: %s (chi2 %s)", best.kind,
                 ", ".join(f"{fit[1].kind} {fit[2]:.1f}" for fit in detected))
    return best_centers, best


def _criterion(shape: JointShape, chi2: float, psf_prior: PsfPrior | None) -> float:
    """Akaike's criterion of a joint shape, with the prior's term for a Moffat whose index it held
    (`~jwst_optextract.core.profiles.choice.wing_prior_cost`, as `optx_psf` chooses)."""
    moffat = shape.kind == "moffat"
    return akaike(chi2, shape.n_parameters) + wing_prior_cost(1.0 / shape.beta if moffat else None, psf_prior,
                                                              held=moffat)


def _pair_starts(work: ExposureStack, centers: np.ndarray, gaussian: JointShape) -> list[JointShape]:
    """The pairs a joint pair fit starts from, as `optx_psf`'s pair's.

    An even pair about the trace at a few separations in units of the
    Gaussian's width (`pair_starts`), and one source on the trace with the
    other above or below it (`APART_STARTS`): a Gaussian fitted across two
    sources 4 px apart takes the brighter one, and no multiple of its width
    reaches the other (a nod set's pair stalled at 1.1 to 2.0 px apart, its
    spline then -0.8 %, -7.9 sigma). Of the latter only the one whose start
    fits the exposures best (its chi-square with the fluxes solved, one
    evaluation) is fitted: at a low S/N the starts' chi-squares are close,
    and choosing among all of them by it dropped an even start that a faint
    double needed (+10.8 % with the Moffat that was then chosen).
    """
    ny, nx = work.data.shape[1:]
    even = np.full(nx, 0.5)
    about = [JointShape("pair", sigma, separation=separation, share=even, offset=-separation / 2.0)
             for separation, sigma in pair_starts(gaussian.sigma)]
    apart = [JointShape("pair", gaussian.sigma, separation=separation, share=even, offset=offset)
             for separation in APART_STARTS if separation < ny / 2.0 for offset in (0.0, -separation)]
    if not apart:
        return about
    root_weight, target = _weighted(work)
    costs = [float(np.sum(_residual(work, start.profile(ny, centers), root_weight, target)[0] ** 2))
             for start in apart]
    return [*about, apart[int(np.argmin(costs))]]


def _weighted(work: ExposureStack) -> tuple[np.ndarray, np.ndarray]:
    """The exposures' square-root weights (zero on bad pixels) and their data times them."""
    variance = work.total_variance
    usable = work.good & (variance > 0)
    root_weight = np.where(usable, 1.0 / np.sqrt(np.where(usable, variance, 1.0)), 0.0)
    return root_weight, np.where(work.good, work.data, 0.0) * root_weight


def _residual(work: ExposureStack, profile: np.ndarray, root_weight: np.ndarray, target: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The weighted residual of the exposures about ``f(x)`` times ``profile`` and its negative images, ``f``
    solved in every column; and ``f`` and its information."""
    model = source_model(work, profile) * root_weight
    information = np.maximum(np.sum(model * model, axis=(0, 1)), 1e-300)
    flux = np.sum(model * target, axis=(0, 1)) / information
    return target - flux * model, flux, information


def _plausible_width(width: np.ndarray) -> bool:
    """Whether a width (a Gaussian sigma) along the dispersion is one a profile can have: above 0.3 px, varying
    by less than 3 times."""
    return bool(np.all(np.isfinite(width)) and width.min() > 0.3 and width.max() < 3 * width.min())


def refine_jointly(work: ExposureStack, centers: np.ndarray, shape: JointShape, degree: int,
                    detection_snr: float = 5.0, iterations: int = 8
                    ) -> tuple[np.ndarray, JointShape, float | None, float]:
    """One shift of all traces and a smooth correction of the width (and the Moffat index), fitted to all exposures.

    The model includes the negative images of nod differences, which a fit
    of one exposure alone must mask and which then pull its width. The width
    is multiplied by ``exp`` of a Legendre series of degree ``degree`` along
    the dispersion, a Moffat's ``1 / beta`` moves by one more parameter
    (within `INVERSE_BETA_LIMITS`, and held toward ``shape.inverse_beta_prior``
    by a term of the cost); the flux of each column is solved for at every
    step (damped Gauss-Newton with numerical derivatives, variable
    projection). A source the pooled data do not detect at
    ``detection_snr`` keeps the starting trace and shape, and its chi-square
    is None; so does a shape whose width is implausible even when constant
    along the dispersion. Returns the traces, the shape, the chi-square
    (without the prior's term) and the median S/N per column of the pooled
    exposures.
    """
    root_weight, target = _weighted(work)
    ny, nx = work.data.shape[1:]
    along = np.linspace(-1, 1, nx)
    basis = np.polynomial.legendre.legvander(along, degree).T  # (degree + 1, nx)
    n_width = degree + 1

    prior = shape.inverse_beta_prior if shape.kind == "moffat" else None

    def shaped(theta) -> JointShape:
        width = shape.width * np.exp(theta[1:1 + n_width] @ basis)
        if shape.kind == "moffat":
            inverse_beta = float(np.clip(1.0 / shape.beta + theta[-1], *INVERSE_BETA_LIMITS))
            return JointShape("moffat", width, 1.0 / inverse_beta, prior)
        if shape.kind == "pair":
            separation, share, slope = theta[1 + n_width:]
            return JointShape("pair", width, separation=max(shape.separation + separation, SEPARATION_MIN),
                              share=np.clip(shape.share + share + slope * along, *SHARE_LIMITS),
                              offset=shape.offset)
        return JointShape(shape.kind, width)

    def solve(theta):
        fitted = shaped(theta)
        residual, flux, information = _residual(work, fitted.profile(ny, centers + theta[0]), root_weight, target)
        residual = residual.ravel()
        if prior is not None:
            residual = np.append(residual, (1.0 / fitted.beta - prior[0]) / prior[1])
        return residual, flux, information

    theta = np.zeros(1 + n_width + shape.n_parameters)
    residual, flux, information = solve(theta)
    seen = information > 1e-300  # columns with pixels
    snr = float(np.sum(flux[seen]) / np.sqrt(np.sum(1.0 / information[seen]))) if seen.any() else 0.0
    if not snr >= detection_snr:
        log.warning("The exposures together detect the source at S/N %.1f only: keeping the starting trace and "
                    "width", snr)
        return centers, shape, None, 0.0
    cost, step = float(residual @ residual), 1e-3
    for _ in range(iterations):
        jacobian = np.stack([(solve(theta + step * unit)[0] - residual) / step for unit in np.eye(theta.size)],
                            axis=1)
        delta = np.clip(np.linalg.lstsq(jacobian, -residual, rcond=None)[0], -0.5, 0.5)
        for _ in range(6):  # halve the step until the chi-square drops
            trial = solve(theta + delta)[0]
            if trial @ trial < cost:
                break
            delta = delta / 2
        else:
            break
        theta, residual, cost = theta + delta, trial, float(trial @ trial)
        if np.max(np.abs(delta)) < 1e-4:
            break
    fitted = shaped(theta)
    if not _plausible_width(fitted.sigma):
        if degree == 0:
            log.info("Joint fit of all exposures: a %s of constant width %.2f px is implausible; not kept",
                     fitted.kind, fitted.width[0])
            return centers, shape, None, 0.0
        # As the trace fit of one slit: a width law the data cannot carry (a faint source's ran from 0.09 to
        # 5.8 px and lost half its flux) gives way to a width constant along the dispersion.
        log.info("Joint fit of all exposures: a width of %.2f to %.2f px is implausible; a constant width instead",
                 fitted.width.min(), fitted.width.max())
        return refine_jointly(work, centers, shape, 0, detection_snr, iterations)
    if prior is not None:
        cost -= float(residual[-1] ** 2)
    log.info("Joint fit of all exposures (S/N %.0f): traces shifted by %+.3f px, %s (from %s)", snr, theta[0],
             fitted.describe(), shape.describe())
    column_snr = float(np.median(flux[seen] * np.sqrt(information[seen])))
    return centers + theta[0], fitted, cost, column_snr
