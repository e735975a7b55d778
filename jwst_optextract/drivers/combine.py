"""Combination of every exposure of a source into one spectrum: the glue between `io.sources` and `core.combine`.

For each source (`~jwst_optextract.io.sources.SourceGroup`): cross-exposure
outliers are flagged, one trace (its shape from the WCS or the fit, an offset
per exposure) and one profile are fitted to all exposures, and the flux of
every column comes from all exposures at once, with no resampling: from each
exposure's scene model (its background fitted with the source), or from the
data with the background removed (nod differences, a smooth model per
exposure, or nothing).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from astropy.table import Table
from scipy import ndimage

from .background import BackgroundParameters, estimate_slit
from ..core import combine
from ..core.combine import (
    ExposureStack, bright_or_extreme, cosmic_rays, pixel_weights, rectified_image, source_model, weighted_wavelength,
)
from ..core.joint import JointShape, joint_shape
from ..core.joint_spline import JointSpline, joint_profile, refit_joint_spline
from ..exceptions import SlitError
from .fit import fit_trace
from ..io import SlitData, Spectrum
from ..io.dq import DO_NOT_USE
from ..io.dq import MSA_FAILED_OPEN as FAILED_OPEN
from ..io.sources import SourceGroup, cluster_positions, group_sources, source_product
from .parameters import CombineParameters
from .runner import SlitRun, map_isolated

__all__ = ["BACKGROUNDS", "WEIGHT_TYPES", "CombineParameters", "SourceResult", "combine_source", "pixel_table", "run"]

log = logging.getLogger(__name__)

BACKGROUNDS = ("auto", "scene", "nod", "model", "none")
FITTED_WITH_SOURCE = ("auto", "scene")
"""The ``background`` values that fit each exposure's background with its source (``auto`` may fall back to nods)."""
WEIGHT_TYPES = ("ivm", "poisson", "exptime", "mask")
PROFILE_KINDS = {"auto": ("gaussian", "moffat", "pair", "spline"), "gaussian": ("gaussian",), "moffat": ("moffat",),
                 "pair": ("pair",), "spline": ("spline",)}
"""The shared profile's kinds a ``profile_kind`` lets the joint fit choose from."""


@dataclass
class SourceResult:
    """The combined spectrum of a source and what it took."""

    spectrum: Spectrum
    flagged: dict[str, int] = field(default_factory=dict)
    """Pixels flagged by each test, summed over exposures."""
    centers: np.ndarray | None = None
    """``(n_exp, nx)`` trace centre of every exposure."""
    profile: np.ndarray | None = None
    """``(n_exp, ny, nx)`` the profile used in every exposure."""
    background: str = "none"
    pixels: Table | None = None
    """The pixel table the spectrum was solved from (see `pixel_table`)."""
    rectified: tuple[np.ndarray, np.ndarray] | None = None
    """With ``keep_rectified``: the image and variance of `rectified_image`."""
    exposure_flux: tuple[np.ndarray, np.ndarray] | None = None
    """``background`` ``auto`` or ``scene``: every exposure's own flux from its scene model and its variance,
    ``(n_exp, nx)`` each (NaN where not fitted): what ``auto`` judged the exposures' agreement on, and, where
    ``background`` is ``scene``, what the spectrum is the inverse-variance mean of."""


def run(exposures: list, params: CombineParameters, product_name: str, workers: int = 1,
        finish: Callable[[SourceGroup, SourceResult, object], None] | None = None) -> tuple[list, SlitRun]:
    """Combine every source of ``exposures`` into one x1d product each (`SlitCombineStep`'s work).

    The sources go through the package's one loop
    (`~jwst_optextract.drivers.runner.map_isolated`): a source that cannot be
    combined is skipped with a warning and the others are kept; with
    ``workers > 1`` they are combined in that many threads, and the products,
    the skipped sources and their warnings come in the order of the sources
    whatever the number of workers. ``finish(group, result, product)``, if
    given, is called here for every combined source, in that order (for what
    a step saves beside the product).

    Returns
    -------
    products : list of MultiSpecModel
        One per combined source, named ``<product_name>_s<source_id>`` (``meta.filename``).
    run : SlitRun
        The sources combined (name and `SourceResult`) and those skipped, and why.
    """
    groups, skipped = group_sources(exposures)
    summary = SlitRun(total=len(groups) + len(skipped), skipped=dict(skipped))
    products = []
    for group, (ok, value) in zip(groups, map_isolated(functools.partial(combine_source, params=params), groups,
                                                       workers)):
        if not ok:
            log.warning("Skipping %s: %s", group.key, value)
            summary.skipped[group.key] = str(value)
            continue
        product = source_product(group, value.spectrum, product_name)
        if finish is not None:
            finish(group, value, product)
        summary.done.append((group.key, value))
        products.append(product)
    return products, summary


def combine_source(group: SourceGroup, params: CombineParameters) -> SourceResult:
    """Combine every exposure of one source into one spectrum.

    The traces are fitted on each exposure with its background, the shared
    profile on the nod differences (where there are nods), and the cosmic
    rays on each exposure minus a smooth background model (a cosmic ray is
    flagged in the exposure it hit, before nod differences could turn it
    into a negative spike in the others). The flux then comes from each
    exposure's scene model (``auto``, ``scene``; ``auto`` falls back to the
    nod differences where the exposures' fluxes disagree) or from the data
    with the background removed as asked (``nod``, ``model``, ``none``).

    Raises
    ------
    SlitError
        When the source cannot be combined (no usable pixels, unknown options).
    """
    if params.background not in BACKGROUNDS:
        raise SlitError(group.name, f"unknown background {params.background!r}; use one of {BACKGROUNDS}")
    if params.weight_type not in WEIGHT_TYPES:
        raise SlitError(group.name, f"unknown weight_type {params.weight_type!r}; use one of {WEIGHT_TYPES}")
    if params.background == "scene" and params.weight_type != "ivm":
        raise SlitError(group.name, f"weight_type {params.weight_type!r} needs background nod, model or none; the "
                        "scene model weights pixels by their inverse variances (ivm)")
    if params.profile_kind not in PROFILE_KINDS:
        raise SlitError(group.name, f"unknown profile_kind {params.profile_kind!r}; use one of {tuple(PROFILE_KINDS)}")
    stack = _stack(group)
    flagged = {}
    stack.good, flagged["failed_open"] = _mask_failed_open(group, stack.good, params.dilate_failed_open)
    positions = _positions(group, params)
    if params.repeat_sigma:
        repeated = combine.repeated_outliers(stack.data, stack.good, stack.total_variance, positions,
                                             params.repeat_sigma)
        flagged["repeated"] = int((repeated & stack.good).sum())
        stack.good = stack.good & ~repeated
    background = params.background
    several = np.unique(positions).size >= 2
    if background == "auto" and params.weight_type != "ivm":
        log.info("Source %s: weights %s are those of nod differences (the scene model's are inverse variances)",
                 group.key, params.weight_type)
        background = "nod"
    if background == "nod" and not several:
        log.warning("Source %s: all %d exposures are at one nod position; subtracting a smooth background "
                    "model from each instead of nod differences", group.key, len(group.slits))
        background = "model"
    # The profile is learnt from nod differences wherever there are nods: a pedestal under the source cancels
    # there, so the shape is not traded against the background; the scene model then fits each exposure's own.
    shaping = ("nod" if several else "model") if background in FITTED_WITH_SOURCE else background
    first = _background_removed(group, stack, positions, shaping, params)
    # Each exposure's own trace is fitted with its background (the scene model), not on a nod difference,
    # whose negative images the trace fit would have to find first and could mistake for more of them.
    centers, sigma = _initial_trace(group, stack if first.nods is not None else first, params,
                                    with_background=first.nods is not None)
    kinds = PROFILE_KINDS[params.profile_kind]
    centers, shape = joint_profile(first, centers, JointShape("gaussian", sigma), params.width_degree, kinds,
                                   params.reject_sigma, params.psf_prior)
    # Outliers are looked for in each exposure alone: in a nod difference the
    # other exposures' cosmic rays are negative spikes that pull the fit.
    alone = first if shaping != "nod" else _subtract_model(group, stack, params)
    profile = shape.profile(stack.data.shape[1], centers)
    outliers, counts = cosmic_rays(alone, profile, params.reject_sigma)
    flagged.update(counts)
    stack.good &= ~outliers
    final = _background_removed(group, stack, positions, shaping, params) if shaping == "nod" else first
    final.good &= ~outliers
    centers, shape = _refine(final, centers, shape, params)
    profile = shape.profile(stack.data.shape[1], centers)
    exposure_flux = None
    if background in FITTED_WITH_SOURCE:
        scene_result, scene_final, scene_weights, exposure_flux = _scene_extract(stack, alone, outliers, profile,
                                                                                 params, flagged)
        chi2, dof = combine.exposure_disagreement(*exposure_flux)
        if background == "auto" and several and chi2 > params.max_disagreement:
            log.warning("Source %s: the exposures' fluxes from their own background fits disagree (chi2 %.1f per "
                        "degree of freedom in %d, blocks of %d columns): their background is not a smooth "
                        "polynomial across the slit (bar shadows, other sources in the slitlet?); using nod "
                        "differences instead", group.key, chi2, dof, combine.DISAGREEMENT_BLOCK)
            background = "nod"
        else:
            log.info("Source %s: the exposures' fluxes from their own background fits agree to chi2 %.2f per "
                     "degree of freedom (%d)", group.key, chi2, dof)
            background = "scene"
            result, final, model, weights = scene_result, scene_final, profile, scene_weights
    if background != "scene":
        model = source_model(final, profile)
        extra, counts = bright_or_extreme(final, profile, model, params.outside_factor, params.clip_percentiles)
        flagged.update(counts)
        final.good &= ~extra
        weights = pixel_weights(params.weight_type, final, profile)
        result = combine.pooled_extract(final.data, profile, weights, (stack if final.nods else final).variances,
                                         model=model, nods=final.nods, min_coverage=params.min_coverage)
    if not result.valid.any():
        raise SlitError(group.name, "no column could be combined (too little of the profile on good pixels in "
                        "every exposure); check the inputs' DQ and the trace")
    log.info("Source %s: %d exposures at %d nod positions (%s), background %s, weights %s; pixels flagged: %s",
             group.key, len(group.slits), np.unique(positions).size, group.position_origin, background,
             params.weight_type, ", ".join(f"{k} {v}" for k, v in flagged.items()))
    spectrum = Spectrum(
        wavelength=weighted_wavelength(stack.wavelength, np.where(weights > 0, profile, 0.0)),
        flux=result.flux, var_poisson=result.var_poisson, var_rnoise=result.var_rnoise,
        var_flat=result.var_flat, npixels=result.npixels,
        dq=np.where(result.valid, 0, DO_NOT_USE).astype(np.uint32), extraction_type="optimal",
        aperture=(float(np.min(centers)), float(np.max(centers))),
    )
    pixels = pixel_table(final, profile, model, weights, centers, group.filenames)
    rectified = None
    if params.keep_rectified:
        rectified = rectified_image(final, centers, final.data.shape[1] // 2)
    return SourceResult(spectrum, flagged, centers, profile, background, pixels, rectified, exposure_flux)


def _scene_extract(stack: ExposureStack, alone: ExposureStack, outliers: np.ndarray, profile: np.ndarray,
                   params: CombineParameters, flagged: dict[str, int]):
    """The flux from each exposure's scene model (`~jwst_optextract.core.combine.scene_extract`).

    Pixels away from the traces brighter than them are flagged first, on
    each exposure minus a smooth background model (``alone``). Returns the
    combined result, the exposures less their fitted backgrounds (for the
    pixel table and the rectified image), the final pixel weights, and every
    exposure's own flux and variance.
    """
    alone.good &= ~outliers
    extra, counts = bright_or_extreme(alone, profile, profile, params.outside_factor, params.clip_percentiles)
    flagged.update(counts)
    stack.good &= ~extra
    result, scenes = combine.scene_extract(stack, profile, params.scene_model, params.reject_sigma,
                                           params.min_coverage)
    flagged["scene"] = int(scenes.n_rejected.sum())
    final = ExposureStack(stack.data - scenes.background, stack.good & ~scenes.rejected, stack.variances,
                          stack.wavelength, stack.exptime)
    return result, final, np.where(final.good, scenes.inverse_variance, 0.0), (scenes.flux, scenes.var_total)


def _refine(final: ExposureStack, centers: np.ndarray, shape: JointShape | JointSpline,
            params: CombineParameters) -> tuple[np.ndarray, JointShape | JointSpline]:
    """The traces and the shared profile fitted again to the data without their outliers, from ``shape``.

    A parametric profile is chosen again too (its kind among ``profile_kind``'s, from the Gaussian of
    ``shape``'s FWHM, as `joint_shape` starts): before the cosmic rays were flagged, a Moffat could take
    them for wings (a faint source's index ran to 0.5 and its flux 92 % high).
    """
    if isinstance(shape, JointSpline):
        try:
            return refit_joint_spline(final, centers, shape, params.width_degree, params.reject_sigma)
        except ValueError as error:  # the spline of the first pass stands
            log.warning("The joint spline could not be fitted again (%s); keeping the first", error)
            return centers, shape
    parametric = tuple(k for k in PROFILE_KINDS[params.profile_kind] if k != "spline") or (shape.kind,)
    return joint_shape(final, centers, JointShape("gaussian", shape.sigma), params.width_degree, parametric,
                       psf_prior=params.psf_prior)


def pixel_table(final: ExposureStack, profile, model, weights, centers, filenames: list[str]) -> Table:
    """Every pixel of every exposure with a wavelength: where it is, its data and what the solution made of it.

    Columns: ``exposure`` (index into the ``EXPOSURES`` list in the table's
    metadata), ``row``, ``column``, ``wavelength``, ``offset`` (rows from the
    trace), ``data`` (background removed), ``variance``, ``profile``,
    ``model`` (per unit flux, with any negative nod images), ``weight`` (0 for
    pixels not used).
    """
    keep = np.isfinite(final.wavelength)
    exposure, row, column = np.nonzero(keep)
    table = Table({
        "exposure": exposure.astype(np.int16), "row": row.astype(np.int16), "column": column.astype(np.int16),
        "wavelength": final.wavelength[keep].astype(np.float32),
        "offset": (row - centers[exposure, column]).astype(np.float32),
        "data": final.data[keep].astype(np.float32), "variance": final.total_variance[keep].astype(np.float32),
        "profile": profile[keep].astype(np.float32), "model": model[keep].astype(np.float32),
        "weight": weights[keep].astype(np.float32),
    })
    table["wavelength"].unit = "um"
    table.meta["EXPOSURES"] = list(filenames)
    return table


def _stack(group: SourceGroup) -> ExposureStack:
    """The exposures of a source as one stack of ``(n_exp, ny, nx)`` arrays."""
    slits = group.slits

    def stacked(key):
        return np.stack([np.zeros(s.data.shape) if getattr(s, key) is None
                         else np.broadcast_to(getattr(s, key), s.data.shape).astype(float) for s in slits])

    return ExposureStack(data=stacked("data"), good=np.stack([s.good for s in slits]),
                         variances={key: stacked(key) for key in combine.VARIANCES},
                         wavelength=stacked("wavelength"), exptime=np.asarray(group.exposure_times))


def _as_slits(group: SourceGroup, stack: ExposureStack) -> list[SlitData]:
    """Each exposure's slit holding the stack's arrays (for the single-slit fitters)."""
    return [dataclasses.replace(s, data=stack.data[e], good=stack.good[e],
                                **{k: v[e] for k, v in stack.variances.items()})
            for e, s in enumerate(group.slits)]


def _positions(group: SourceGroup, params: CombineParameters) -> np.ndarray:
    """Nod positions from the metadata, else from where a trace fit finds the source in each exposure."""
    if group.position_origin != "none" or len(group.slits) < 2:
        return group.positions
    rows = np.array([float(np.mean(fit_trace(s, params.fit_parameters()).center)) for s in group.slits])
    positions = cluster_positions(rows)
    log.info("Source %s: the metadata do not give nod positions; the measured source rows %s make %d",
             group.key, ", ".join(f"{r:.1f}" for r in rows), np.unique(positions).size)
    return positions


def _mask_failed_open(group: SourceGroup, good: np.ndarray, dilate: int) -> tuple[np.ndarray, int]:
    """Pixels flagged MSA_FAILED_OPEN, grown by ``dilate`` pixels, masked in their exposure."""
    if dilate <= 0:
        return good, 0
    failed = np.stack([(s.dq & FAILED_OPEN) > 0 for s in group.slits])
    grown = ndimage.binary_dilation(failed, structure=np.ones((1, 3, 3), bool), iterations=dilate)
    return good & ~grown, int((good & grown).sum())


def _background_removed(group: SourceGroup, stack: ExposureStack, positions, background: str,
                        params: CombineParameters) -> ExposureStack:
    """The exposures with the background removed as asked (nod differences, a smooth model, or as they are)."""
    if background == "none":
        return dataclasses.replace(stack, good=stack.good.copy())
    if background == "nod":
        nods = combine.difference_nods(stack.data, stack.good, stack.variances, positions)
        return ExposureStack(nods.data, nods.good, nods.variances, stack.wavelength, stack.exptime, nods)
    return _subtract_model(group, stack, params)


def _subtract_model(group: SourceGroup, stack: ExposureStack, params: CombineParameters) -> ExposureStack:
    """Each exposure minus a smooth background model, the model's variance added to its pixels'."""
    data, variances = stack.data.copy(), {k: v.copy() for k, v in stack.variances.items()}
    good = stack.good.copy()
    bkg_params = BackgroundParameters(method=params.background_method)
    for e, slit in enumerate(group.slits):  # a handful of exposures, each vectorised
        estimate, _ = estimate_slit(dataclasses.replace(slit, good=stack.good[e]), bkg_params)
        data[e] -= estimate.background
        good[e] &= np.isfinite(estimate.background)
        for key in combine.VARIANCES:
            variances[key][e] += getattr(estimate, key)
    return ExposureStack(np.where(good, data, np.nan), good, variances, stack.wavelength, stack.exptime)


def _initial_trace(group: SourceGroup, first: ExposureStack, params: CombineParameters,
                   with_background: bool = False):
    """Trace centre of every exposure and a Gaussian width to start the joint fit from.

    WCS traces carry the nod geometry: the joint fit then only shifts them
    all together, from the prior width. Without them each exposure's own
    fit gives its offset about one shared shape (and the mean width); with
    ``with_background`` the fit models each exposure's background with the
    source (``first`` then holds the exposures as they are).
    """
    slits = _as_slits(group, first)
    if all(s.source_trace is not None for s in slits):
        return np.stack([s.source_trace for s in slits]), np.full(first.data.shape[-1], params.psf_sigma)
    fit = params.fit_parameters()
    if with_background:
        fit = dataclasses.replace(fit, scene_background="smooth")
    fits = [fit_trace(s, fit) for s in slits]
    detected = np.array([f.detected for f in fits])
    if not detected.any():
        log.warning("Source %s: no exposure shows the source on its own and there is no WCS trace; using "
                    "the rows the trace fits fell back to", group.key)
        detected[:] = True
    centers = np.stack([f.center for f in fits])
    offsets = centers.mean(axis=1, keepdims=True)
    shape = np.mean(centers[detected] - offsets[detected], axis=0)
    sigma = np.mean([f.gaussian.sigma for f, d in zip(fits, detected) if d], axis=0)
    log.info("Source %s: trace rows %s from each exposure's fit", group.key,
             ", ".join(f"{o:.2f}" for o in offsets[:, 0]))
    return offsets + shape[None, :], sigma


