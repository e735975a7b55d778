"""The ``image2d`` background method: photutils ``Background2D`` on a grid of boxes.

Median filtered and interpolated. For large images with a sparse source (slitless data, wide slits).
"""

from __future__ import annotations

import warnings
from typing import Any, ClassVar

import numpy as np

from .base import BackgroundEstimate, BackgroundMethod, register
from .solvers import prepare


def image2d_background(
    data: np.ndarray,
    mask: np.ndarray,
    var_rnoise: np.ndarray | None,
    var_poisson: np.ndarray | None = None,
    var_flat: np.ndarray | None = None,
    box_size: tuple[int, int] = (8, 64),
    filter_size: tuple[int, int] = (1, 3),
    clip_sigma: float = 3.0,
    exclude_fraction: float = 0.9,
) -> BackgroundEstimate:
    """photutils ``Background2D``: sigma-clipped medians in boxes, median filtered and interpolated.

    Parameters
    ----------
    box_size : tuple of int
        ``(rows, columns)`` of each box.
    filter_size : tuple of int
        Median filter over boxes ``(rows, columns)``.
    clip_sigma : float
        Sigma clipping threshold inside each box.
    exclude_fraction : float
        Boxes with more than this fraction of unusable (source or bad) pixels
        are replaced by interpolation from their neighbours.

    The variance of each pixel's model is taken as ``pi / 2`` times the
    box's clipped variance over its number of pixels (the median of a box),
    split among the components as the pixels' variances are; the median
    filter's further averaging is not counted, so it is an upper bound.
    Frames of a cube are done one after the other (photutils is 2D).
    """
    from astropy.stats import SigmaClip
    from photutils.background import Background2D, MedianBackground

    data, mask, noise = prepare(data, mask, var_rnoise, var_poisson, var_flat)
    frames = data.reshape(-1, *data.shape[-2:])
    masks = mask.reshape(frames.shape)
    background = np.empty_like(frames)
    variance = np.empty_like(frames)
    for index, (frame, good) in enumerate(zip(frames, masks)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # photutils warns about masked boxes
            fit = Background2D(
                frame, box_size, mask=~good, filter_size=filter_size, sigma_clip=SigmaClip(sigma=clip_sigma),
                bkg_estimator=MedianBackground(), exclude_percentile=100.0 * exclude_fraction,
            )
        background[index] = fit.background
        with np.errstate(invalid="ignore", divide="ignore"):
            variance[index] = np.pi / 2 * fit.background_rms**2 / np.maximum(fit.n_pixels_map, 1)
    background = background.reshape(data.shape)
    variance = variance.reshape(data.shape)
    components = [np.broadcast_to(c, data.shape) for c in noise.components(background)]
    total = sum(components)
    with np.errstate(invalid="ignore", divide="ignore"):
        shares = [np.where(total > 0, c / total, 1.0 / 3.0) for c in components]
    return BackgroundEstimate(background, *(variance * s for s in shares), mask)



@register("image2d")
class Image2dBackground(BackgroundMethod):
    """`image2d_background` with the step's ``box_size``, ``filter_size`` and ``clip_sigma`` (default 3)."""

    summary: ClassVar[str] = "photutils Background2D"

    @classmethod
    def estimate(cls, data: np.ndarray, mask: np.ndarray, variances: tuple, params: Any) -> BackgroundEstimate:
        return image2d_background(data, mask, *variances, box_size=tuple(params.box_size),
                                  filter_size=tuple(params.filter_size), clip_sigma=params.clip_sigma or 3.0)
