"""The parts of a slit's scene model: source, negative nod images, background and the residual.

`scene_parts` fits the scene (`~jwst_optextract.core.scene.fit_scene`) of one
image for a given profile and returns each part as an image, for diagnostics
(`jwst_optextract.tools.plotting.plot_scene`) and for the light of a source
beyond a mask (`jwst_optextract.drivers.background`). Nod-differenced data
hold negative images of the source at known offsets from its trace; their
fluxes, in units of the source's, are fitted by `negative_image_weights`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize

from .fitted import ProfileFit
from .pixels import Variances
from .scene import SceneBackground

__all__ = ["SceneParts", "negative_image_weights", "negative_images", "profile_in_slit", "refine_offsets",
           "scene_parts"]

log = logging.getLogger(__name__)


def profile_in_slit(profile: ProfileFit, ny: int, center: np.ndarray) -> np.ndarray:
    """``(ny, nx)``: the fraction of the source's flux in every pixel of the slit, for a trace ``center``.

    Unlike ``profile.evaluate``, it is not renormalised to the slit: light
    beyond the slit's edges stays outside, so that an image partly off the
    slit (a negative nod image) keeps its weight relative to the others.
    """
    pad = ny
    return profile.evaluate(ny + 2 * pad, np.asarray(center, float) + pad)[pad:pad + ny]


def negative_image_weights(
    image: np.ndarray, good: np.ndarray, var_rnoise: np.ndarray, var_poisson: np.ndarray | None,
    positive: np.ndarray, negatives: np.ndarray, background: SceneBackground,
) -> np.ndarray:
    """The flux of each negative image in units of the source's (<= 0), fitted to the image.

    The weights minimise the chi-square of the scene ``f(x) (P + sum_k w_k
    N_k) + B``, with the source's flux ``f`` and the background ``B``
    re-solved for every trial (variable projection): fitted with the
    background, not after it, because a polynomial across the slit takes up
    part of images placed symmetrically about the source. Outliers are
    rejected once, by the scene fit without the images.

    Parameters
    ----------
    image, good, var_rnoise, var_poisson : ndarray
        ``(ny, nx)`` image (e.g. the mean of the integrations), its good
        pixels and variances.
    positive : ndarray
        ``(ny, nx)`` source image per unit flux (`profile_in_slit`).
    negatives : ndarray
        ``(k, ny, nx)`` the same profile at each negative image's position.
    background : SceneBackground
        The background fitted with the source.

    Returns
    -------
    ndarray
        ``(k,)`` weights in [-2, 0]; 0 where the data show no negative image.
    """
    if not len(negatives):
        return np.zeros(0)
    variance = Variances(var_rnoise, var_poisson).total()
    first = background.fit(image, positive, var_rnoise, var_poisson, mask=good, min_coverage=0.0)
    if not np.nansum(np.where(first.valid, first.flux, 0.0)) > 0:
        return np.zeros(len(negatives))
    used = good & ~first.rejected & (variance > 0) & np.isfinite(image)
    inverse = np.divide(1.0, variance, out=np.zeros(image.shape), where=used)

    def chi2(weights):
        profile = positive + np.einsum("k,kyx->yx", weights, negatives)
        scene = background.fit(image, profile, var_rnoise, var_poisson, mask=used, min_coverage=0.0,
                               reject_sigma=None, with_variance=False)
        return float(np.sum((np.where(used, image - scene.model(profile), 0.0)) ** 2 * inverse))

    start = np.full(len(negatives), -1.0 / len(negatives))
    best = minimize(chi2, start, method="Powell", bounds=[(-2.0, 0.0)] * len(negatives),
                    options={"xtol": 1e-3, "ftol": 1e-9})
    return np.minimum(np.asarray(best.x, float), 0.0)


def refine_offsets(
    image: np.ndarray, good: np.ndarray, variance: np.ndarray, image_at: Callable[[float], np.ndarray],
    offsets: np.ndarray, reach: float = 1.0, step: float = 0.125,
) -> np.ndarray:
    """Offsets of the negative images from the trace, refined to a fraction of a pixel.

    The trace fit finds them to the nearest pixel; half a pixel off, an
    image's fitted weight is wrong by a fifth. Each offset is moved, within
    ``reach`` pixels, to where a negative image of the profile is detected at
    the highest signal to noise in ``image`` (the data less the source and
    the background), then refined by a parabola through the best step.

    Parameters
    ----------
    image, good, variance : ndarray
        ``(ny, nx)`` data less the fitted source and background, good pixels, variance.
    image_at : callable
        ``image_at(offset)``: ``(ny, nx)`` the profile at ``offset`` rows from the trace.
    offsets : ndarray
        Offsets to the nearest pixel.
    reach, step : float
        Search half width and step, in pixels.
    """
    weights = np.divide(good, variance, out=np.zeros(image.shape), where=good & (variance > 0))
    steps = np.arange(-reach, reach + step / 2, step)
    refined = []
    for offset in np.asarray(offsets, float):
        scores = []
        for delta in steps:
            P = image_at(offset + delta)
            information = np.sum(P * P * weights)
            scores.append(-np.sum(P * image * weights) / np.sqrt(information) if information > 0 else -np.inf)
        scores = np.asarray(scores)
        best = int(np.argmax(scores))
        delta = steps[best]
        if 0 < best < len(steps) - 1:
            left, middle, right = scores[best - 1:best + 2]
            curvature = left - 2 * middle + right
            if curvature < 0:
                delta += 0.5 * step * (left - right) / curvature
        refined.append(offset + delta)
    return np.asarray(refined)


def negative_images(
    image: np.ndarray, good: np.ndarray, var_rnoise: np.ndarray, var_poisson: np.ndarray | None,
    image_at: Callable[[float], np.ndarray], offsets: np.ndarray, background: SceneBackground,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The negative nod images of a source: offsets refined, images per unit flux and weights.

    Parameters
    ----------
    image, good, var_rnoise, var_poisson : ndarray
        ``(ny, nx)`` image, good pixels and variances.
    image_at : callable
        ``image_at(offset)``: ``(ny, nx)`` the source's profile at ``offset``
        rows from its trace (``image_at(0)`` is the source).
    offsets : ndarray
        The negative images' offsets from the trace, to the nearest pixel.
    background : SceneBackground
        The background fitted with the source.

    Returns
    -------
    offsets : ndarray
        ``(k,)`` refined (`refine_offsets`).
    images : ndarray
        ``(k, ny, nx)`` the profile at those offsets.
    weights : ndarray
        ``(k,)`` their fluxes in units of the source's (`negative_image_weights`).
    """
    positive = image_at(0.0)
    offsets = np.array(offsets, dtype=float)
    if not offsets.size:
        return offsets, np.zeros((0,) + positive.shape), np.zeros(0)
    variance = Variances(var_rnoise, var_poisson).total()
    images = np.array([image_at(offset) for offset in offsets])
    weights = negative_image_weights(image, good, var_rnoise, var_poisson, positive, images, background)
    # Each offset is refined on the data less the background and everything else, all fitted together (a
    # background fitted with the source alone takes up part of the images and moves them outwards).
    for _ in range(2):
        scene = background.fit(image, positive + np.einsum("k,kyx->yx", weights, images), var_rnoise, var_poisson,
                               mask=good, min_coverage=0.0)
        flux = np.nan_to_num(scene.flux)
        for k in range(len(offsets)):
            others = positive + np.einsum("k,kyx->yx", np.delete(weights, k), np.delete(images, k, axis=0))
            rest = np.where(good, image - scene.background - flux * others, 0.0)
            offsets[k] = refine_offsets(rest, good, variance, image_at, offsets[k:k + 1])[0]
        images = np.array([image_at(offset) for offset in offsets])
        weights = negative_image_weights(image, good, var_rnoise, var_poisson, positive, images, background)
    return offsets, images, weights


@dataclass
class SceneParts:
    """One image's scene model, part by part: ``data = source + negative + background + noise``."""

    data: np.ndarray
    good: np.ndarray
    source: np.ndarray
    """The source's image: flux times the profile."""
    negative: np.ndarray
    """The negative nod images (zero without them)."""
    background: np.ndarray
    residual: np.ndarray
    """``(data - model) / sigma`` on the good pixels (outliers the fit rejected too), NaN elsewhere."""
    flux: np.ndarray
    """``(nx,)`` flux per column (NaN where not fitted)."""
    weights: np.ndarray
    """Fluxes of the negative images in units of the source's."""

    @property
    def model(self) -> np.ndarray:
        """The whole scene model."""
        return self.source + self.negative + self.background

    @classmethod
    def of(cls, image: np.ndarray, good: np.ndarray, variance: np.ndarray, flux: np.ndarray, positive: np.ndarray,
           negative_profile: np.ndarray, background: np.ndarray, weights: np.ndarray) -> SceneParts:
        """The parts of ``image`` for a source of ``flux`` per column, its images per unit flux and a background.

        The residual is shown on every good pixel, the rejected ones too: a
        diagnostic shows what the fit left out.
        """
        source, negative = np.nan_to_num(flux) * positive, np.nan_to_num(flux) * negative_profile
        shown = good & np.isfinite(image) & (variance > 0)
        with np.errstate(invalid="ignore", divide="ignore"):
            residual = np.where(shown, (image - source - negative - background) / np.sqrt(variance), np.nan)
        return cls(np.where(good, image, np.nan), good, source, negative, background, residual, flux, weights)


def scene_parts(
    image: np.ndarray, good: np.ndarray, var_rnoise: np.ndarray, var_poisson: np.ndarray | None,
    positive: np.ndarray, negatives: np.ndarray | None = None, background: SceneBackground | None = None,
    reject_sigma: float | None = 5.0,
) -> SceneParts:
    """Fit the scene of one ``(ny, nx)`` image for a given profile and return its parts.

    Parameters
    ----------
    image, good, var_rnoise, var_poisson : ndarray
        The image (e.g. the mean of the integrations), good pixels, variances.
    positive : ndarray
        ``(ny, nx)`` source image per unit flux.
    negatives : ndarray, optional
        ``(k, ny, nx)`` the profile at the negative nod images' positions;
        their weights are fitted (`negative_image_weights`).
    background : SceneBackground, optional
        The background fitted with the source; none (``none``) by default,
        for background-subtracted data.
    reject_sigma : float or None
        Outlier rejection of the scene fit.
    """
    background = background or SceneBackground("none")
    negatives = np.zeros((0,) + positive.shape) if negatives is None else np.asarray(negatives, float)
    weights = negative_image_weights(image, good, var_rnoise, var_poisson, positive, negatives, background)
    negative_profile = np.einsum("k,kyx->yx", weights, negatives) if len(weights) else np.zeros(positive.shape)
    fit = background.fit(image, positive + negative_profile, var_rnoise, var_poisson, mask=good,
                         reject_sigma=reject_sigma)
    return SceneParts.of(image, good, Variances(var_rnoise, var_poisson).total(), fit.flux, positive,
                         negative_profile, fit.background, weights)
