"""BackgroundStep's driver: background subtraction of whole datamodels, joining `io` and `core.background`.

`run` returns a background-subtracted copy of any supported input model
(same type), with the variance of the background estimate added to its
variance arrays, and a summary that holds a model of the same type with the
background itself. Steps call it and do nothing else of substance.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..core import background as bkg
from ..core import masking
from ..core.background import METHODS, background_method
from ..core.fitted import ProfileFit, TraceFit
from ..core.scene import fit_scene
from ..core.scene_parts import SceneParts, negative_images, profile_in_slit
from ..exceptions import InputError, SlitError
from ..io import SlitData, iter_slits
from ..io.dq import DO_NOT_USE, OUTLIER
from ..io.exposures import matching_slits, open_exposure, stack_exposures
from ..io.slits import integration_groups, slit_models, slit_views
from .fit import fit_profile, fit_trace
from .parameters import BackgroundParameters, FitParameters
from .runner import FATAL_ERRORS, process_slits

__all__ = ["METHODS", "BackgroundParameters", "BackgroundSummary", "SourceFit", "estimate_slit", "fit_source", "run",
           "source_flux", "source_region", "subtract_background"]

log = logging.getLogger(__name__)


@dataclass
class BackgroundSummary:
    """What happened to each slit of one input."""

    subtracted: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    pixels_used: int = 0
    pixels_clipped: int = 0
    background: object = None
    """With ``keep_background``: a copy of the input holding the background model (see `run`)."""


def subtract_background(
    model, params: BackgroundParameters, exposures: list | None = None, keep_background: bool = True,
    workers: int = 1, in_place: bool = False, plot: Callable[..., None] | None = None,
):
    """`run`, with the background model returned on its own: ``(result, background, summary)``."""
    result, summary = run(model, params, exposures, keep_background=keep_background, workers=workers,
                          in_place=in_place, plot=plot)
    return result, summary.background, summary


def run(
    model, params: BackgroundParameters, exposures: list | None = None, keep_background: bool = True,
    workers: int = 1, in_place: bool = False, plot: Callable[..., None] | None = None,
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
        Threads over the slits (see `~jwst_optextract.drivers.runner.process_slits`).
    in_place : bool
        Subtract from ``model`` itself instead of a copy of it.
    plot : callable, optional
        ``plot(slit, parts, source_mask)`` is called for every slit done, with
        its `~jwst_optextract.core.scene_parts.SceneParts` (means over the
        integrations: the data, the source light modelled beyond the mask,
        the background estimate and the residual) and the source mask (None
        for the exposure methods). It must be thread safe with ``workers > 1``.

    Returns
    -------
    result : DataModel
        ``model`` (or its copy) with the background subtracted and its variance
        added to VAR_POISSON / VAR_RNOISE / VAR_FLAT (ERR recomputed). Pixels
        where no background could be estimated are NaN and DO_NOT_USE.
    summary : BackgroundSummary
        What happened to each slit, and in ``background`` (None unless
        ``keep_background``) a copy of ``model`` holding the background model
        and its variances; its DQ is DO_NOT_USE on the pixels the estimate did
        not use (bad, source, clipped), plus OUTLIER on the clipped ones.

    Raises
    ------
    SlitError
        When the only slit cannot be done (in a MultiSlitModel, a failing
        slit is skipped with a warning).
    InputError
        For an unsupported input, unreadable exposures, or when no slit of
        several can be done.
    """
    if params.method in METHODS and METHODS[params.method].from_exposures and not exposures:
        raise InputError(f"method {params.method!r} needs exposures: give the background or other nod files")
    others = [open_exposure(item) for item in exposures or []]
    background = model.copy() if keep_background else None
    result = model if in_place else model.copy()
    slits = list(iter_slits(model))
    position = {name: index for index, (name, _) in enumerate(slits)}
    bkg_slits = slit_models(background) if keep_background else [None] * len(slits)
    targets = list(zip(slit_models(result), bkg_slits))

    def subtract(slit: SlitData) -> _SlitCounts:
        matched = matching_slits(others, slit.name, position[slit.name]) if others else None
        return subtract_slit(slit, params, matched, *targets[position[slit.name]], plot=plot)

    slits_run = process_slits(model, subtract, workers=workers)
    for name in slits_run.skipped:
        log.warning("Slit %s: its data are left as they were (no background subtracted)", name)
        if targets[position[name]][1] is not None:
            _mark_skipped(targets[position[name]][1])
    summary = BackgroundSummary(skipped=dict(slits_run.skipped), background=background)
    for name, counts in slits_run.done:
        summary.subtracted.append(name)
        summary.pixels_used += counts.used
        summary.pixels_clipped += counts.clipped
    log.info(
        "Background (%s) subtracted from %d of %d slits, from %d pixels (%d clipped)%s",
        params.method, len(summary.subtracted), len(slits), summary.pixels_used, summary.pixels_clipped,
        f"; skipped: {', '.join(summary.skipped)}" if summary.skipped else "",
    )
    return result, summary


@dataclass
class _SlitCounts:
    used: int = 0
    clipped: int = 0


_GROUP_PIXELS = 1 << 22
"""Pixels of the integrations estimated and written together: bounds the memory of a long time series."""


def subtract_slit(
    slit: SlitData, params: BackgroundParameters, exposures: list[SlitData] | None, out_slit, bkg_slit=None,
    plot: Callable[..., None] | None = None,
) -> _SlitCounts:
    """Subtract the background of one slit into ``out_slit`` (and the model into ``bkg_slit``), by integrations.

    Every method fits each integration alone, so a time series is estimated
    and written a group of integrations at a time and no array the size of
    the cube is made. A group whose estimate fails is left NaN and DO_NOT_USE
    (with a warning naming its integrations); when every group fails, nothing
    has been written and the error is raised, so the slit is left as it was.
    """
    plan = _plan(slit, params)
    # dtypes of the arrays a target lacks: native byte order (FITS arrays are big-endian)
    written = dict.fromkeys(_WRITTEN, np.dtype(slit.data.dtype.type)) | {"dq": np.uint32}
    out = slit_views(slit, out_slit, written)
    model = None if bkg_slit is None else slit_views(slit, bkg_slit, written)
    counts, failed, done, log_sums = _SlitCounts(), [], 0, np.zeros(4)
    shown = _SceneSums(slit.ny, slit.nx) if plot is not None else None
    # exposures with other integrations than the science are averaged over theirs: they need the whole slit
    whole = exposures and any(e.data.shape != slit.data.shape for e in exposures)
    groups = [slice(None)] if whole else integration_groups(slit.data.shape, _GROUP_PIXELS)
    for index in groups:
        part = slit.integrations(index)
        try:
            estimate = _estimate(part, plan, exposures and [e.integrations(index) for e in exposures], index,
                                 shown)
        except FATAL_ERRORS:
            raise
        except Exception as exc:  # the other integrations are still good
            if not done and len(failed) == len(groups) - 1:  # every group failed: nothing was written
                raise
            failed.append((index, exc))
            continue
        clipped = _clipped(part, estimate, plan.source)
        _write_subtracted(part, estimate, {k: v[index] for k, v in out.items()})
        if model is not None:
            _write_model(estimate, clipped, {k: v[index] for k, v in model.items()})
        done += 1
        counts.used += int(estimate.used.sum())
        counts.clipped += int(clipped.sum())
        log_sums += _log_sums(estimate, plan.source)
    for index, exc in failed:
        log.warning("Slit %s: no background for integrations %d to %d (%s); they are NaN and DO_NOT_USE", slit.name,
                    index.start + 1, index.stop, exc)
        for views in (out, model):
            if views is not None:
                views["data"][index] = np.nan
                views["dq"][index] |= DO_NOT_USE
    _log_estimate(slit, plan, log_sums)
    if shown is not None and done:
        try:
            plot(slit, shown.parts(slit, plan), plan.source)
        except (ImportError, OSError, ValueError) as exc:  # the subtraction is written: a failed plot loses nothing
            log.warning("Slit %s: no scene plot (%s: %s)", slit.name, type(exc).__name__, exc)
    return counts


class _SceneSums:
    """Sums over the integrations of the modelled source light and the background, for the scene plot."""

    def __init__(self, ny: int, nx: int):
        self.flux = np.zeros(nx)
        self.background = np.zeros((ny, nx))
        self.frames = np.zeros((ny, nx))

    def add(self, flux: np.ndarray | None, background: np.ndarray) -> None:
        finite = np.isfinite(background)
        self.background += np.where(finite, background, 0.0).reshape((-1,) + self.background.shape).sum(axis=0)
        self.frames += finite.reshape((-1,) + self.frames.shape).sum(axis=0)
        if flux is not None:
            self.flux += np.nan_to_num(flux).reshape((-1, self.flux.size)).sum(axis=0)

    def parts(self, slit: SlitData, plan: _Plan) -> SceneParts:
        mean = slit.mean_image()
        frames = np.maximum(self.frames, 1)
        background = np.where(self.frames > 0, self.background / frames, np.nan)
        flux = self.flux / (slit.n_integrations or 1)
        positive = plan.positive if plan.light is not None else np.zeros(background.shape)
        light = plan.light if plan.light is not None else np.zeros(background.shape)
        weights = np.zeros(0) if plan.weights is None else plan.weights
        return SceneParts.of(mean.image, mean.good, mean.variances.total(), flux, positive, light - positive,
                             background, weights)


_WRITTEN = ("data", "var_poisson", "var_rnoise", "var_flat", "err")


def estimate_slit(
    slit: SlitData, params: BackgroundParameters, exposures: list[SlitData] | None = None
) -> tuple[bkg.BackgroundEstimate, np.ndarray | None]:
    """Background of one whole slit and the source region masked for it (None for exposure methods)."""
    plan = _plan(slit, params)
    estimate = _estimate(slit, plan, exposures)
    _log_estimate(slit, plan, _log_sums(estimate, plan.source))
    return estimate, plan.source


@dataclass
class _Plan:
    """What is decided once for a whole slit: its usable pixels, its source rows, the parameters that fit it."""

    params: BackgroundParameters
    good: np.ndarray | None = None
    source: np.ndarray | None = None
    light: np.ndarray | None = None
    """``(ny, nx)`` image of the source per unit flux (with its negative images) whose light outside ``source``
    is fitted and removed before the background fit; None where the mask is the user's (rows, a half width)."""
    positive: np.ndarray | None = None
    """``light`` without the negative images."""
    weights: np.ndarray | None = None
    """The negative images' fluxes in units of the source's."""


def _plan(slit: SlitData, params: BackgroundParameters) -> _Plan:
    method = background_method(params.method)
    if method.from_exposures:
        return _Plan(params)
    if slit.ny < 2:
        raise SlitError(slit.name, f"has a single row ({slit.ny} x {slit.nx} pixels): no background pixel is left "
                        "beside the source; use a method that takes background exposures (exposures, nod)")
    good = _good_pixels(slit, params)
    source, found = source_region(slit, params, good)
    light = None if found is None else found.image
    rows = (good & ~source).reshape((-1,) + source.shape).any(axis=0).sum(axis=-2)  # per column, any integration
    if rows.max() == 0:
        raise SlitError(slit.name, "no background pixel is left outside the source; "
                        + ("raise source_threshold or give source_half_width" if light is not None else
                           "reduce source_half_width or give source_ystart/source_ystop"))
    needed = params.poly_degree + 1 if method.degree_across_slit else 1
    if light is not None and np.median(rows[rows > 0]) < needed:
        raise SlitError(slit.name, f"only {np.median(rows[rows > 0]):.0f} rows per column are left outside the "
                        f"source mask sized from the fitted profile ({slit.ny} rows, source_threshold "
                        f"{params.source_threshold:g}): too few for a {params.method} background of degree "
                        f"{params.poly_degree} across the slit; raise source_threshold, lower poly_degree, give "
                        "source_half_width, or fit the background with the source (optx_spec's scene model)")
    most = int(rows.max())
    if most <= params.poly_degree and method.degree_across_slit:
        log.warning("Slit %s: only %d background rows per column outside the source: fitting degree %d across "
                    "the slit instead of %d", slit.name, most, most - 1, params.poly_degree)
        params = dataclasses.replace(params, poly_degree=most - 1)
    return _Plan(params, good, source, light, *((found.positive, found.weights) if found else (None, None)))


def _estimate(
    slit: SlitData, plan: _Plan, exposures: list[SlitData] | None, index: slice = slice(None),
    shown: _SceneSums | None = None,
) -> bkg.BackgroundEstimate:
    """The background of ``slit``: a whole slit, or the integrations ``index`` of the slit ``plan`` was made for.

    ``shown``, if given, adds up the source light and the background for the scene plot.
    """
    params = plan.params
    if METHODS[params.method].from_exposures:
        stack = stack_exposures(exposures, slit)
        log.debug("Slit %s: %s background from %d exposure(s)", slit.name, params.method, len(exposures))
        variances = (stack["var_rnoise"], stack["var_poisson"], stack["var_flat"])
        estimate = _run_method(stack["data"], stack["mask"], variances, params)
        if shown is not None:
            shown.add(None, estimate.background)
        return estimate
    variances = (slit.var_rnoise, slit.var_poisson, slit.var_flat)
    good = plan.good[index]
    data, flux = slit.data, None
    if plan.light is not None:  # in the data's type, as the methods expect (float32 halves a cube's memory)
        flux = source_flux(slit, plan.light, good, params)
        data = (data - flux[..., None, :] * plan.light).astype(data.dtype, copy=False)
    estimate = _run_method(data, good & ~plan.source, variances, params)
    if shown is not None:
        shown.add(flux, estimate.background)
    return estimate


def source_flux(slit: SlitData, light: np.ndarray, good: np.ndarray, params: BackgroundParameters) -> np.ndarray:
    """The source's flux in every column (``(..., nx)``, 0 where it cannot be fitted), for the image ``light``.

    ``flux * light`` is the source's light in every pixel.

    The flux of every column (and integration) is fitted to all the good
    pixels together with a polynomial of ``poly_degree`` (at most 2) across
    the slit (the scene model, `~jwst_optextract.core.scene.fit_scene`), so
    that the wings that the source mask leaves are taken out of the
    background pixels, not fitted as background. Columns that cannot be
    fitted get no source light.
    """
    # No outlier rejection here: its passes are shared by the integrations fitted together, which would make
    # each one's flux depend on the others'; the background fit clips its own pixels.
    scene = fit_scene(slit.data, light, slit.var_rnoise if slit.var_rnoise is not None else slit.read_noise,
                      slit.var_poisson, slit.var_flat, mask=good, background="column",
                      degree=min(params.poly_degree, 2), reject_sigma=None, min_coverage=0.0)
    return np.nan_to_num(scene.flux)


def _run_method(data, mask, variances, params: BackgroundParameters) -> bkg.BackgroundEstimate:
    return METHODS[params.method].estimate(data, mask, variances, params)


def _good_pixels(slit: SlitData, params: BackgroundParameters) -> np.ndarray:
    good = slit.good & masking.dq_mask(slit.dq, params.dq_bits | DO_NOT_USE)
    if params.hot_pixel_sigma is not None:
        good &= masking.hot_pixel_mask(slit.data, good, sigma=params.hot_pixel_sigma)
    if params.mask_cosmic_rays:
        variance = sum(v for v in (slit.var_rnoise, slit.var_poisson, slit.var_flat) if v is not None)
        good &= masking.cosmic_ray_mask(slit.data, variance, good)
    return good


def source_region(
    slit: SlitData, params: BackgroundParameters, good: np.ndarray
) -> tuple[np.ndarray, SourceFit | None]:
    """The rows kept out of the background fit, and the source image whose light outside them is modelled.

    From ``source_ystart``/``source_ystop`` (input pixel coordinates,
    inclusive) if given. Else the source is found in the data (`fit_source`:
    the package's trace fit, seeded by the WCS position, or the trace given in
    ``params.trace``) and, with ``source_half_width`` given, the rows within
    it of the trace are masked; by default the mask is sized from the profile
    fitted to the source (``auto``: a Gaussian, Moffat or spline): the pixels where the profile (and any
    negative nod image) exceeds ``source_threshold`` of its peak in the
    column. The light of the fitted profile beyond that mask is then fitted
    and removed before the background fit (`source_flux`).

    Returns
    -------
    source : ndarray of bool
        ``(ny, nx)``: True on the pixels kept out of the background fit.
    found : SourceFit or None
        The source found, whose ``image`` (per unit flux) is modelled beyond
        the mask; None where the mask is the user's (rows or a half width),
        no source was detected, or the data hold negative nod images (the
        profile fit does not model them, so its wings are not trusted).
    """
    if params.source_ystart is not None or params.source_ystop is not None:
        start = 0.0 if params.source_ystart is None else params.source_ystart - slit.origin[0]
        stop = slit.ny - 1.0 if params.source_ystop is None else params.source_ystop - slit.origin[0]
        if stop < start:
            raise SlitError(slit.name, f"the source rows are empty (source_ystart {start} > source_ystop {stop})")
        rows = np.arange(slit.ny)[:, None]
        return np.broadcast_to((rows >= np.floor(start)) & (rows <= np.ceil(stop)), (slit.ny, slit.nx)), None
    given = (params.trace or {}).get(slit.name)
    if given is not None and np.shape(given) != (slit.nx,):
        raise SlitError(slit.name, f"the given trace has shape {np.shape(given)}, the slit {slit.nx} columns")
    if params.source_half_width is not None:
        center = np.asarray(given, float) if given is not None else fit_source(slit, params, good, False).center
        log.info("Slit %s: source masked within %.1f rows (source_half_width) of the trace at row %.2f "
                 "(%.2f to %.2f)", slit.name, params.source_half_width, np.mean(center), center.min(), center.max())
        return masking.source_mask(slit.ny, center, params.source_half_width), None
    source = fit_source(slit, params, good, True, given)
    mask = masking.profile_mask(source.image, params.source_threshold, peak=source.positive.max(axis=-2))
    half = mask.sum(axis=-2) / 2
    if not source.detected:
        log.warning("Slit %s: no source detected; masking where a Gaussian of the prior width %.2f px about the "
                    "%s trace at row %.2f exceeds %g of its peak (%.1f to %.1f rows), with no source light modelled",
                    slit.name, source.profile.model.sigma.mean(), "WCS" if slit.source_trace is not None
                    else "estimated", np.mean(source.center), params.source_threshold, 2 * half.min(),
                    2 * half.max())
        return mask, None
    if source.weights.size:
        # The profile fit does not model the negative images (it masks them to the nearest pixel), so its
        # wings are not the source's: on a simulated nod difference the light modelled from them took 7 % of
        # the background away, where the mask alone (the images' wings partly cancelling) left 1 %.
        log.info("Slit %s: source and negative images (weights %s) masked where the %s profile exceeds %g of the "
                 "source's peak: %.1f to %.1f rows; no light is modelled beyond the mask (the profile fit does "
                 "not model the negative images' wings)", slit.name,
                 ", ".join(f"{w:.2f}" for w in source.weights), source.profile.kind, params.source_threshold,
                 2 * half.min(), 2 * half.max())
        return mask, None
    log.info("Slit %s: source masked where its %s profile (%s) exceeds %g of its peak: %.1f to %.1f rows about "
             "the trace at row %.2f; its light beyond the mask is modelled", slit.name, source.profile.kind,
             source.profile.model.note or "fitted", params.source_threshold, 2 * half.min(), 2 * half.max(),
             np.mean(source.center))
    return mask, source


@dataclass
class SourceFit:
    """The source of a slit as `fit_source` finds it in the data."""

    center: np.ndarray
    """``(nx,)`` trace."""
    detected: bool
    profile: ProfileFit | None = None
    """The fitted profile (a Gaussian of the prior width when no source is detected); None for a trace alone."""
    positive: np.ndarray | None = None
    """``(ny, nx)`` the source image per unit flux: the fraction of the flux in every pixel of the slit."""
    image: np.ndarray | None = None
    """``positive`` plus the negative nod images with their ``weights``."""
    offsets: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0))
    weights: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0))
    """Rows of the negative images from the trace, and their fluxes in units of the source's."""


def fit_source(
    slit: SlitData, params: BackgroundParameters, good: np.ndarray, with_profile: bool = True,
    center: np.ndarray | None = None,
) -> SourceFit:
    """Find the source of a slit in its data and fit its profile, with the background in the data.

    The trace is the package's trace fit (`~jwst_optextract.drivers.fit.fit_trace`:
    a joint fit of a Gaussian and the smooth background, about the WCS trace
    where there is one, which seeds but does not decide the position), unless
    ``center`` is given; the profile (``auto``: a Gaussian, Moffat or spline,
    whose wings are the light a mask misses) is fitted jointly with the
    background about that trace, and any
    negative images of nod-differenced data found by the trace fit get
    weights fitted to the data.

    Parameters
    ----------
    slit : SlitData
    params : BackgroundParameters
    good : ndarray of bool
        The pixels that may be used (``slit``'s shape).
    with_profile : bool
        Also fit the profile (else the trace alone).
    center : ndarray, optional
        ``(nx,)`` trace to use instead of fitting one.
    """
    fit_params = FitParameters(profile_kind="auto", fit_jitter=False, scene_background="smooth",
                               scene_degree=min(params.poly_degree, 2), scene_knot_spacing=params.knot_spacing)
    view = dataclasses.replace(slit, good=slit.good & good)
    if center is None:
        trace = fit_trace(view, fit_params)
    else:
        trace = TraceFit(slit.name, np.asarray(center, float), detected=True, method="given")
    found = SourceFit(trace.center, trace.detected, offsets=np.asarray(trace.negative_offsets, float))
    if not with_profile:
        return found
    if trace.detected:
        found.profile = fit_profile(view, trace, fit_params)
    else:  # the trace fit's Gaussian of the prior width about the WCS (or estimated) trace
        found.profile = ProfileFit(slit.name, "gaussian", trace.center, trace.gaussian)
    found.positive = profile_in_slit(found.profile, slit.ny, trace.center)
    found.image = found.positive
    if found.offsets.size and trace.detected:
        mean = view.mean_image()
        found.offsets, images, found.weights = negative_images(
            mean.image, mean.good, mean.var_rnoise, mean.var_poisson,
            lambda offset: profile_in_slit(found.profile, slit.ny, trace.center + offset), found.offsets,
            fit_params.background)
        found.image = found.positive + np.einsum("k,kyx->yx", found.weights, images)
    return found


def _clipped(slit: SlitData, estimate: bkg.BackgroundEstimate, source: np.ndarray | None) -> np.ndarray:
    """Good background pixels that the fit rejected (none for the exposure methods)."""
    if source is None:
        return np.zeros(slit.data.shape, dtype=bool)
    return slit.good & ~source & ~estimate.used


def _write_subtracted(slit: SlitData, estimate: bkg.BackgroundEstimate, out: dict[str, np.ndarray]) -> None:
    """Data minus background, NaN and DO_NOT_USE where there is no estimate; the estimate's variance added."""
    np.subtract(slit.data, estimate.background, out=out["data"])
    out["err"][...] = 0.0
    for key in ("var_poisson", "var_rnoise", "var_flat"):
        own = getattr(slit, key)
        if own is None:
            out[key][...] = 0.0
        elif not np.may_share_memory(own, out[key]):  # not in place, or a variance given per frame
            out[key][...] = own
        out[key] += np.nan_to_num(getattr(estimate, key))
        out["err"] += out[key]
    np.sqrt(out["err"], out=out["err"])
    out["dq"][...] = slit.dq
    out["dq"][~np.isfinite(estimate.background)] |= DO_NOT_USE


def _write_model(estimate: bkg.BackgroundEstimate, clipped: np.ndarray, out: dict[str, np.ndarray]) -> None:
    """The background model and its variances; DQ DO_NOT_USE where the fit did not use a pixel, OUTLIER if clipped."""
    out["data"][...] = estimate.background
    for key in ("var_poisson", "var_rnoise", "var_flat"):
        out[key][...] = getattr(estimate, key)
    out["err"][...] = np.sqrt(estimate.var_total)
    out["dq"][...] = np.where(estimate.used, 0, DO_NOT_USE) | np.where(clipped, OUTLIER, 0)


def _log_sums(estimate: bkg.BackgroundEstimate, source: np.ndarray | None) -> np.ndarray:
    """Sum and count of the finite background, and of its variance under the source (everywhere without one)."""
    finite = np.isfinite(estimate.background)
    under = finite if source is None else finite & source
    return np.array([estimate.background[finite].sum(dtype=float), finite.sum(),
                     np.broadcast_to(estimate.var_total, finite.shape)[under].sum(dtype=float), under.sum()])


def _log_estimate(slit: SlitData, plan: _Plan, sums: np.ndarray) -> None:
    where = "" if plan.source is None else " under the source"
    log.info("Slit %s: %s background, mean %.4g, rms error of the model %.3g%s", slit.name, plan.params.method,
             sums[0] / max(sums[1], 1), np.sqrt(sums[2] / max(sums[3], 1)), where)


def _mark_skipped(bkg_slit) -> None:
    bkg_slit.data = np.full(np.shape(bkg_slit.data), np.nan, dtype=np.float32)
    bkg_slit.dq = np.full(np.shape(bkg_slit.data), DO_NOT_USE, dtype=np.uint32)
