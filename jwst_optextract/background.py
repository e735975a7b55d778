"""Background subtraction of whole datamodels: the glue between `io` and `core.background`.

`subtract_background` returns a background-subtracted copy of any supported
input model (same type), with the variance of the background estimate added
to its variance arrays, and a model of the same type holding the background
itself. Steps call it and do nothing else of substance.
"""

from __future__ import annotations

import logging
import dataclasses
from dataclasses import dataclass, field

import numpy as np
from stdatamodels.jwst import datamodels
from stdatamodels.jwst.datamodels import dqflags

from .core import background as bkg
from .core import masking
from .core.trace import collapse_integrations, find_trace
from .exceptions import InputError, SlitError
from .io import SlitData, iter_slits, process_slits
from .io.exposures import matching_slits, open_exposure, stack_exposures
from .io.slits import write_slit

__all__ = ["METHODS", "BackgroundParameters", "BackgroundSummary", "estimate_slit", "subtract_background"]

log = logging.getLogger(__name__)

DO_NOT_USE = dqflags.pixel["DO_NOT_USE"]
OUTLIER = dqflags.pixel["OUTLIER"]
METHODS = ("smooth", "poly", "poly_rows", "column", "image2d", "exposures", "nod")
_FROM_EXPOSURES = ("exposures", "nod")


@dataclass
class BackgroundParameters:
    """Everything that controls a background subtraction (see `BackgroundStep` for meanings)."""

    method: str = "smooth"
    source_half_width: float = 5.0
    source_ystart: float | None = None
    source_ystop: float | None = None
    poly_degree: int = 2
    knot_spacing: float = 32.0
    column_statistic: str = "median"
    clip_sigma: float | None = 3.0
    max_clip_iterations: int = 5
    box_size: tuple[int, int] = (8, 64)
    filter_size: tuple[int, int] = (1, 3)
    dq_bits: int = DO_NOT_USE
    hot_pixel_sigma: float | None = None
    mask_cosmic_rays: bool = False
    trace: dict[str, np.ndarray] | None = None
    """Source centre row per column for slits by name (e.g. from a trace product)."""


@dataclass
class BackgroundSummary:
    """What happened to each slit of one input."""

    subtracted: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    pixels_used: int = 0
    pixels_clipped: int = 0


def subtract_background(
    model, params: BackgroundParameters, exposures: list | None = None, keep_background: bool = True,
    workers: int = 1, in_place: bool = False,
):
    """Subtract the background from every slit of ``model``.

    Parameters
    ----------
    model : DataModel
        SlitModel, MultiSlitModel, ImageModel or CubeModel.
    params : BackgroundParameters
    exposures : list of str or DataModel, optional
        Background exposures (``method="exposures"``) or the other nods of the
        same slit (``method="nod"``).
    keep_background : bool
        Also build the background model (a second copy of the input).
    workers : int
        Threads over the slits (see `~jwst_optextract.io.process_slits`).
    in_place : bool
        Subtract from ``model`` itself instead of a copy of it.

    Returns
    -------
    result : DataModel
        ``model`` (or its copy) with the background subtracted and its variance
        added to VAR_POISSON / VAR_RNOISE / VAR_FLAT (ERR recomputed). Pixels
        where no background could be estimated are NaN and DO_NOT_USE.
    background : DataModel or None
        None unless ``keep_background``; else a copy of ``model`` holding the background model and its variances;
        DQ is DO_NOT_USE on the pixels the estimate did not use (bad, source,
        clipped), plus OUTLIER on the clipped ones.
    summary : BackgroundSummary

    Raises
    ------
    SlitError
        When the only slit cannot be done (in a MultiSlitModel, a failing
        slit is skipped with a warning).
    InputError
        For an unsupported input, unreadable exposures, or when no slit of
        several can be done.
    """
    if params.method in _FROM_EXPOSURES and not exposures:
        raise InputError(f"method {params.method!r} needs exposures: give the background or other nod files")
    others = [open_exposure(item) for item in exposures or []]
    background = model.copy() if keep_background else None
    result = model if in_place else model.copy()
    slits = list(iter_slits(model))
    position = {name: index for index, (name, _) in enumerate(slits)}
    bkg_slits = _slit_models(background) if keep_background else [None] * len(slits)
    targets = list(zip(_slit_models(result), bkg_slits))

    def estimate(slit: SlitData):
        matched = matching_slits(others, slit.name, position[slit.name]) if others else None
        return slit, estimate_slit(slit, params, matched)

    run = process_slits(model, estimate, workers=workers)
    summary = BackgroundSummary(skipped=dict(run.skipped))
    for name in run.skipped:
        log.warning("Slit %s: its data are left as they were (no background subtracted)", name)
        if targets[position[name]][1] is not None:
            _mark_skipped(targets[position[name]][1])
    for name, (slit, (fit, source)) in run.done:
        out_slit, bkg_slit = targets[position[name]]
        _write(slit, fit, source, out_slit, bkg_slit)
        summary.subtracted.append(name)
        summary.pixels_used += int(fit.used.sum())
        summary.pixels_clipped += int(_clipped(slit, fit, source).sum())
    log.info(
        "Background (%s) subtracted from %d of %d slits, from %d pixels (%d clipped)%s",
        params.method, len(summary.subtracted), len(slits), summary.pixels_used, summary.pixels_clipped,
        f"; skipped: {', '.join(summary.skipped)}" if summary.skipped else "",
    )
    return result, background, summary


def _slit_models(model):
    return list(model.slits) if isinstance(model, datamodels.MultiSlitModel) else [model]


def estimate_slit(
    slit: SlitData, params: BackgroundParameters, exposures: list[SlitData] | None = None
) -> tuple[bkg.BackgroundEstimate, np.ndarray | None]:
    """Background of one slit and the source region masked for it (None for exposure methods)."""
    if params.method in _FROM_EXPOSURES:
        stack = stack_exposures(exposures, slit)
        statistic = "mean" if params.method == "nod" else "median"
        estimate = bkg.combine_exposures(stack["data"], stack["mask"], stack["var_rnoise"], stack["var_poisson"],
                                         stack["var_flat"], statistic=statistic)
        log.info("Slit %s: %s of %d exposure(s) subtracted", slit.name, statistic, len(exposures))
        return estimate, None
    good = _good_pixels(slit, params)
    source = source_region(slit, params, good)
    mask = good & ~source
    most = int(mask.sum(axis=-2).max())
    if most == 0:
        raise SlitError(slit.name, "no background pixel is left outside the source; reduce source_half_width "
                        "or give source_ystart/source_ystop")
    if most <= params.poly_degree and params.method in ("smooth", "poly"):
        log.warning("Slit %s: only %d background rows per column outside the source: fitting degree %d across "
                    "the slit instead of %d", slit.name, most, most - 1, params.poly_degree)
        params = dataclasses.replace(params, poly_degree=most - 1)
    variances = (slit.var_rnoise, slit.var_poisson, slit.var_flat)
    estimate = _run_method(slit.data, mask, variances, params)
    log.info(
        "Slit %s: %s background, mean %.4g, rms error of the model %.3g under the source",
        slit.name, params.method, np.nanmean(estimate.background),
        np.sqrt(np.nanmean(np.where(np.broadcast_to(source, estimate.background.shape), estimate.var_total, np.nan))),
    )
    return estimate, source


def _run_method(data, mask, variances, params: BackgroundParameters) -> bkg.BackgroundEstimate:
    clip = {"clip_sigma": params.clip_sigma, "max_iterations": params.max_clip_iterations}
    if params.method == "smooth":
        return bkg.smooth_background(data, mask, *variances, degree=params.poly_degree,
                                     knot_spacing=params.knot_spacing, **clip)
    if params.method == "poly":
        return bkg.poly_background(data, mask, *variances, degree=params.poly_degree, **clip)
    if params.method == "poly_rows":
        return bkg.poly_rows_background(data, mask, *variances, degree=params.poly_degree, **clip)
    if params.method == "column":
        return bkg.column_background(data, mask, *variances, statistic=params.column_statistic, **clip)
    if params.method == "image2d":
        return bkg.image2d_background(data, mask, *variances, box_size=tuple(params.box_size),
                                      filter_size=tuple(params.filter_size), clip_sigma=params.clip_sigma or 3.0)
    raise ValueError(f"unknown background method {params.method!r}; use one of {METHODS}")


def _good_pixels(slit: SlitData, params: BackgroundParameters) -> np.ndarray:
    good = slit.good & masking.dq_mask(slit.dq, params.dq_bits | DO_NOT_USE)
    if params.hot_pixel_sigma is not None:
        good &= masking.hot_pixel_mask(slit.data, good, sigma=params.hot_pixel_sigma)
    if params.mask_cosmic_rays:
        variance = sum(v for v in (slit.var_rnoise, slit.var_poisson, slit.var_flat) if v is not None)
        good &= masking.cosmic_ray_mask(slit.data, variance, good)
    return good


def source_region(slit: SlitData, params: BackgroundParameters, good: np.ndarray) -> np.ndarray:
    """``(ny, nx)`` True on the rows kept out of the background fit.

    From ``source_ystart``/``source_ystop`` (input pixel coordinates, inclusive)
    if given; else a half-width about the trace given in ``params.trace``; else
    about a trace found in the data, starting from the WCS source position.
    """
    if params.source_ystart is not None or params.source_ystop is not None:
        start = 0.0 if params.source_ystart is None else params.source_ystart - slit.origin[0]
        stop = slit.ny - 1.0 if params.source_ystop is None else params.source_ystop - slit.origin[0]
        if stop < start:
            raise SlitError(slit.name, f"the source rows are empty (source_ystart {start} > source_ystop {stop})")
        rows = np.arange(slit.ny)[:, None]
        return np.broadcast_to((rows >= np.floor(start)) & (rows <= np.ceil(stop)), (slit.ny, slit.nx))
    center = (params.trace or {}).get(slit.name)
    if center is None:
        center = _find_source(slit, params, good)
    elif np.shape(center) != (slit.nx,):
        raise SlitError(slit.name, f"the given trace has shape {np.shape(center)}, the slit {slit.nx} columns")
    return masking.source_mask(slit.ny, center, params.source_half_width)


def _find_source(slit: SlitData, params: BackgroundParameters, good: np.ndarray) -> np.ndarray:
    """Trace of the source in the data after a first, source-blind smooth background fit."""
    image, image_good = collapse_integrations(slit.data, good)
    rough = bkg.smooth_background(image, image_good, np.ones_like(image), degree=min(params.poly_degree, 2),
                                  knot_spacing=max(params.knot_spacing, 64.0), clip_sigma=2.5)
    residual = np.where(np.isfinite(rough.background), image - rough.background, 0.0)
    guess = slit.source_row if slit.source_row is not None and 0 <= slit.source_row < slit.ny else None
    center = find_trace(residual, image_good, guess=guess)
    log.info("Slit %s: source masked within %.1f rows of a trace at row %.2f (%.2f to %.2f)",
             slit.name, params.source_half_width, np.mean(center), center.min(), center.max())
    return center


def _clipped(slit: SlitData, estimate: bkg.BackgroundEstimate, source: np.ndarray | None) -> np.ndarray:
    """Good background pixels that the fit rejected (none for the exposure methods)."""
    if source is None:
        return np.zeros(slit.data.shape, dtype=bool)
    return slit.good & ~source & ~estimate.used


def _write(slit: SlitData, estimate: bkg.BackgroundEstimate, source, out_slit, bkg_slit) -> None:
    """Put the subtracted data (and, if ``bkg_slit`` is given, the background model) into copied models."""
    missing = ~np.isfinite(estimate.background)
    dtype = np.dtype(slit.data.dtype.type)  # native byte order (FITS arrays are big-endian)
    # In the data's type and in place: each temporary of a long time series is the size of the cube.
    # NaN where the background is: no estimate there.
    arrays = {"data": np.subtract(slit.data, estimate.background, dtype=dtype)}
    total = np.zeros(slit.data.shape, dtype=dtype)
    for key in ("var_poisson", "var_rnoise", "var_flat"):
        own = getattr(slit, key)
        value = np.nan_to_num(np.array(getattr(estimate, key), dtype=dtype), copy=False)  # the estimate stays
        if own is not None:
            value = value + own if value.shape != slit.data.shape else np.add(value, own, out=value)
        arrays[key] = np.broadcast_to(value, slit.data.shape)
        total += arrays[key]
    arrays["err"] = np.sqrt(total, out=total)
    arrays["dq"] = slit.dq.astype(np.uint32) | np.where(missing, DO_NOT_USE, 0).astype(np.uint32)
    write_slit(slit, out_slit, **arrays)
    if bkg_slit is None:
        return
    clipped = _clipped(slit, estimate, source)
    bkg_dq = np.where(estimate.used, 0, DO_NOT_USE) | np.where(clipped, OUTLIER, 0)
    write_slit(
        slit, bkg_slit,
        data=estimate.background.astype(dtype),
        var_poisson=estimate.var_poisson.astype(dtype),
        var_rnoise=estimate.var_rnoise.astype(dtype),
        var_flat=estimate.var_flat.astype(dtype),
        err=np.sqrt(estimate.var_total).astype(dtype),
        dq=bkg_dq.astype(np.uint32),
    )


def _mark_skipped(bkg_slit) -> None:
    bkg_slit.data = np.full(np.shape(bkg_slit.data), np.nan, dtype=np.float32)
    bkg_slit.dq = np.full(np.shape(bkg_slit.data), DO_NOT_USE, dtype=np.uint32)
