"""JWST datamodels to canonical slit arrays, and canonical arrays back into datamodels.

A `SlitData` holds one slit in the layout of `jwst_optextract.core`:
``(..., ny, nx)`` with the dispersion along the last axis (MIRI LRS data,
dispersed along y, are transposed here) and a good-pixel mask. Reading and
writing slits only: the loop over them is `jwst_optextract.drivers.runner`.
"""

from __future__ import annotations

import logging
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any

import numpy as np
from stdatamodels.jwst import datamodels

from ..core.pixels import Variances
from ..exceptions import InputError, SlitError
from .dq import DO_NOT_USE, dq_bits
from .jwst_modules import extract_1d_module
from .wcs_source import NIRSPEC_SLIT_TYPES, nirspec_source_position

__all__ = ["MeanImage", "SlitData", "describe_model", "dq_bits", "geometry_cache", "integration_groups",
           "iter_slits", "read_slit", "scene_models", "slit_count", "slit_models", "slit_store", "slit_views",
           "write_slit"]

log = logging.getLogger(__name__)

HORIZONTAL, VERTICAL = 1, 2
SUPPORTED = (
    datamodels.MultiSlitModel,
    datamodels.SlitModel,
    datamodels.ImageModel,
    datamodels.CubeModel,
)


@dataclass
class SlitData:
    """One slit's arrays in canonical layout, and what is needed to describe them.

    Attributes
    ----------
    name : str
        Slit name, used in messages and in the output spectrum.
    model : DataModel
        The slit (or whole) model the arrays came from; metadata source.
    data, var_poisson, var_rnoise, var_flat : ndarray
        Shape ``(..., ny, nx)``, float32 or float64; missing variances are None.
    dq : ndarray
        DQ flags, same shape as ``data``.
    good : ndarray of bool
        Finite data and DQ without DO_NOT_USE.
    wavelength : ndarray
        ``(ny, nx)`` wavelengths in microns (NaN where undefined).
    dispaxis : int
        Dispersion direction of the *input* (1 along x, 2 along y).
    origin : tuple of int
        ``(row, column)`` offset of the canonical arrays in the input arrays
        (non-zero when a full-frame image is cut down to the WCS bounding box).
    source_row : float or None
        Expected row of the source from the WCS, if the WCS says.
    source_trace : ndarray or None
        Expected row of the source in every column from the WCS, if it says.
    """

    name: str
    model: datamodels.JwstDataModel
    data: np.ndarray
    dq: np.ndarray
    good: np.ndarray
    wavelength: np.ndarray
    var_poisson: np.ndarray | None
    var_rnoise: np.ndarray | None
    var_flat: np.ndarray | None
    dispaxis: int = HORIZONTAL
    origin: tuple[int, int] = (0, 0)
    source_row: float | None = None
    source_trace: np.ndarray | None = None

    @property
    def ny(self) -> int:
        return self.data.shape[-2]

    @property
    def nx(self) -> int:
        return self.data.shape[-1]

    @property
    def n_integrations(self) -> int | None:
        """Number of integrations, or None for a single frame."""
        return self.data.shape[0] if self.data.ndim == 3 else None

    @property
    def read_noise(self) -> np.ndarray:
        """The read-noise variance, or zeros when only a Poisson variance exists."""
        if self.var_rnoise is not None:
            return self.var_rnoise
        return np.zeros(self.data.shape[-2:], dtype=self.data.dtype)

    def detached(self) -> SlitData:
        """The same slit without its datamodel (``model`` None): arrays only, to send to another process."""
        return replace(self, model=None)

    def integrations(self, index: slice) -> SlitData:
        """The same slit restricted to the integrations ``index`` (views, no copies)."""
        if self.data.ndim == 2:
            return self

        def part(a):
            return a[index] if a is not None and a.ndim == 3 else a

        return replace(self, data=self.data[index], dq=self.dq[index], good=self.good[index],
                       **{key: part(getattr(self, key)) for key in ("var_poisson", "var_rnoise", "var_flat")})

    def mean_image(self, mask: np.ndarray | None = None) -> MeanImage:
        """The mean over integrations of the good pixels (also within ``mask``), with the variances of that mean."""
        if self.data.ndim == 2:
            good = self.good if mask is None else self.good & mask
            return MeanImage(np.where(good, self.data, 0.0), good, self.read_noise, self.var_poisson)
        # In groups of integrations: no temporary the size of the cube.
        total = np.zeros(self.data.shape[-2:])
        n = np.zeros(self.data.shape[-2:], np.int64)
        for index in integration_groups(self.data.shape, _MEAN_GROUP_PIXELS):
            good = self.steady[index] if mask is None else self.steady[index] & mask
            total += np.where(good, self.data[index], 0).sum(axis=0, dtype=np.float64)
            n += good.sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            image = np.where(n > 0, total / n, 0.0).astype(self.data.dtype)
        count = self.data.shape[0]
        var_poisson = None if self.var_poisson is None else _mean_frame(self.var_poisson) / count
        return MeanImage(image, n > 0, _mean_frame(self.read_noise) / count, var_poisson)

    @cached_property
    def steady(self) -> np.ndarray:
        """The good pixels of a time series whose value in an integration agrees with the pixel's other ones.

        An unflagged cosmic ray hits one integration; in the mean over the
        integrations it is diluted, not gone, and 0.1 % of the pixels of every
        integration hit make 5 % of the mean image's pixels over 50
        integrations: enough to wreck a spline fitted to it. A pixel's value in
        an integration is left out of the mean when it is more than
        `STEADY_SIGMA` times the larger of its noise and its spread over the
        integrations (a transit, jitter) from its median. The median and the
        spread come from at most `STEADY_SAMPLE` integrations evenly spread
        over the series, so the cost does not grow with their number. A single
        frame, or fewer than 3 integrations, is returned as ``good``.
        """
        if self.data.ndim == 2 or self.data.shape[0] < 3:
            return self.good
        nints = self.data.shape[0]
        sample = np.unique(np.linspace(0, nints - 1, min(nints, STEADY_SAMPLE)).round().astype(int))
        values = np.where(self.good[sample], self.data[sample], np.inf)  # a bad value moves the median by a rank
        median = np.median(values, axis=0)
        with np.errstate(invalid="ignore"):  # inf - inf where a pixel is bad in every integration
            spread = _MAD_TO_SIGMA * np.median(np.abs(values - median), axis=0)
        noise = Variances(_frames(self.read_noise, sample), _frames(self.var_poisson, sample)).total()
        scale = np.fmax(np.sqrt(np.median(noise, axis=0)), spread)
        steady = np.empty(self.good.shape, bool)
        for index in integration_groups(self.data.shape, _MEAN_GROUP_PIXELS):
            with np.errstate(invalid="ignore"):
                steady[index] = self.good[index] & (np.abs(self.data[index] - median) <= STEADY_SIGMA * scale)
        return steady


@dataclass
class MeanImage:
    """A slit averaged over integrations: ``(ny, nx)`` image, good mask and variances of the mean."""

    image: np.ndarray
    good: np.ndarray
    var_rnoise: np.ndarray
    var_poisson: np.ndarray | None

    @property
    def variances(self) -> Variances:
        """The read-noise and Poisson variances of the mean (it carries no flat-field variance)."""
        return Variances(self.var_rnoise, self.var_poisson)


_MEAN_GROUP_PIXELS = 1 << 22

STEADY_SIGMA = 5.0
"""How far (in the larger of noise and spread) from its median over integrations a pixel's value counts as an
outlier of its integration (`SlitData.steady`)."""
STEADY_SAMPLE = 25
"""Integrations (at most) whose median and spread `SlitData.steady` compares every integration with."""
_MAD_TO_SIGMA = 1.4826


def _frames(var: np.ndarray | None, sample: np.ndarray) -> np.ndarray | None:
    """A variance array's frames of the integrations ``sample`` (a single frame as it is)."""
    if var is None:
        return None
    var = np.asarray(var)
    return var[sample] if var.ndim == 3 else var


def integration_groups(shape: tuple[int, ...], pixels: int, multiple: int = 1) -> list[slice]:
    """Slices of consecutive integrations of a ``(nints, ny, nx)`` array, each of about ``pixels`` pixels.

    Every group but the last holds a multiple of ``multiple`` integrations
    (at least one multiple). A 2D shape gives one group, ``slice(None)``.
    """
    if len(shape) < 3:
        return [slice(None)]
    frame = shape[-2] * shape[-1]
    size = multiple * max(1, pixels // (frame * multiple))
    return [slice(start, min(start + size, shape[0])) for start in range(0, shape[0], size)]


def _mean_frame(var: np.ndarray) -> np.ndarray:
    """Mean variance frame over integrations (NaN-aware only when there are NaNs)."""
    var = np.asarray(var)
    if var.ndim == 2:
        return var.astype(float)
    mean = var.mean(axis=0, dtype=np.float64)
    return mean if np.isfinite(mean).all() else np.nanmean(var, axis=0)


def iter_slits(model: datamodels.JwstDataModel) -> Iterator[tuple[str, datamodels.JwstDataModel]]:
    """Yield ``(name, slit_model)`` for every slit in an input model.

    Raises
    ------
    InputError
        For an unsupported model type or a MultiSlitModel without slits.
    """
    if not isinstance(model, SUPPORTED):
        raise InputError(
            f"{describe_model(model)} is not a supported input; give a SlitModel, MultiSlitModel, "
            "ImageModel or CubeModel (a calwebb_spec2 _cal, _calints or _s2d product)"
        )
    if isinstance(model, datamodels.MultiSlitModel):
        if len(model.slits) == 0:
            raise InputError(f"{describe_model(model)} has no slits: nothing to extract")
        for index, slit in enumerate(model.slits):
            yield slit_name(slit, index), slit
    else:
        yield slit_name(model, 0), model


def slit_count(model: datamodels.JwstDataModel) -> int:
    """Number of slits in ``model``: those of a MultiSlitModel, else 1."""
    return len(model.slits) if isinstance(model, datamodels.MultiSlitModel) else 1


def slit_models(model: datamodels.JwstDataModel) -> list[datamodels.JwstDataModel]:
    """The slit datamodels of ``model`` in the order of `iter_slits`: a MultiSlitModel's slits, else ``model``."""
    return list(model.slits) if isinstance(model, datamodels.MultiSlitModel) else [model]


def slit_name(slit: datamodels.JwstDataModel, index: int) -> str:
    """A name for messages and output: the slit name, else its position."""
    name = getattr(slit, "name", None)
    return str(name) if name else f"#{index}"


def read_slit(
    slit: datamodels.JwstDataModel, parent: datamodels.JwstDataModel, name: str
) -> SlitData:
    """Read one slit into canonical arrays.

    Parameters
    ----------
    slit : DataModel
        A SlitModel (possibly one slit of a MultiSlitModel), ImageModel or
        CubeModel.
    parent : DataModel
        The model that holds the exposure-level metadata (the slit itself, or
        the MultiSlitModel it belongs to).
    name : str
        Slit name used in messages.

    Raises
    ------
    SlitError
        When the slit cannot be extracted: no data, no dispersion direction,
        no wavelengths, shape mismatches, or no usable pixel.
    """
    read = _STORE.values(slit, parent)
    if read is None:
        return _read_slit(slit, parent, name)
    if name not in read:
        read[name] = _read_slit(slit, parent, name)
    return read[name]


def _read_slit(slit, parent, name: str) -> SlitData:
    data = _array(slit, "data")
    if data is None or data.size == 0 or data.ndim not in (2, 3):
        shape = None if data is None else data.shape
        raise SlitError(name, f"has no 2D or 3D data array (shape {shape}); give a calwebb_spec2 product with a "
                        "SCI array")
    dispaxis = _dispersion_axis(slit, parent, name)
    frame = data.shape[-2:]
    dq = _array(slit, "dq")
    if dq is None or dq.size == 0:
        dq = np.zeros(data.shape, dtype=np.uint32)
    variances = {key: _array(slit, key) for key in ("var_poisson", "var_rnoise", "var_flat")}
    for key, value in [("dq", dq), *variances.items()]:
        if value is not None and value.size and value.shape != data.shape:
            if value.shape == frame and key != "dq":
                continue
            raise SlitError(
                name, f"{key.upper()} has shape {value.shape} but SCI has shape {data.shape}; "
                "the arrays of a slit must come from the same product",
            )
    variances = {k: (None if v is None or v.size == 0 or not np.any(v) else v) for k, v in variances.items()}
    if variances["var_rnoise"] is None and variances["var_poisson"] is None:
        err = _array(slit, "err")
        if err is None or err.size == 0 or not np.any(np.isfinite(err) & (err > 0)):
            raise SlitError(
                name, "has no variance arrays (VAR_RNOISE, VAR_POISSON) and no ERR; "
                "optimal extraction needs the pixel variances",
            )
        log.warning("Slit %s: no VAR_* arrays; using ERR**2 as the read-noise variance", name)
        variances["var_rnoise"] = np.square(err, dtype=np.result_type(err.dtype, np.float32))
    frame_wavelength = _remembered(slit, parent, ("wavelength",), lambda: _wavelength(slit, parent, name, frame))
    bbox = _bounding_box(slit, frame) if isinstance(slit, (datamodels.ImageModel, datamodels.CubeModel)) else None

    def canonical(a):
        if a is None:
            return None
        if bbox is not None:
            a = a[..., bbox[0], bbox[1]]
        return np.swapaxes(a, -1, -2) if dispaxis == VERTICAL else a

    data = canonical(data)
    dq = canonical(dq)
    wavelength = canonical(frame_wavelength)
    good = _good_pixels(name, data, dq, [canonical(v) for v in variances.values() if v is not None])
    origin = (0, 0) if bbox is None else (bbox[0].start, bbox[1].start)
    if dispaxis == VERTICAL:
        origin = origin[::-1]
    nx = data.shape[-1]
    source = _remembered(slit, parent, ("source", origin, nx),
                         lambda: _source_position(slit, parent, frame_wavelength, dispaxis, origin, nx))
    return SlitData(
        name=name,
        model=slit,
        data=data,
        dq=dq,
        good=good,
        wavelength=wavelength,
        dispaxis=dispaxis,
        origin=origin,
        **dict(zip(("source_row", "source_trace"), source)),
        **{k: canonical(v) for k, v in variances.items()},
    )


class _SlitCache:
    """Values kept per slit (its and its exposure's metadata nodes, by identity) while any block holds it open.

    `open` blocks may nest and be open in several threads: the values live
    until the last one closes.
    """

    def __init__(self):
        self._entries: dict[tuple[int, int], tuple[Any, Any, dict]] | None = None
        self._users = 0
        self._lock = threading.Lock()

    @contextmanager
    def open(self):
        with self._lock:
            self._users += 1
            if self._entries is None:
                self._entries = {}
        try:
            yield
        finally:
            with self._lock:
                self._users -= 1
                if self._users == 0:
                    self._entries = None

    def values(self, slit, parent) -> dict | None:
        """The slit's dictionary of kept values, or None when no block is open."""
        entries = self._entries
        if entries is None:
            return None
        nodes = getattr(slit, "_instance", slit), getattr(parent, "_instance", parent)
        ident = (id(nodes[0]), id(nodes[1]))
        entry = entries.get(ident)
        if entry is None or entry[0] is not nodes[0] or entry[1] is not nodes[1]:  # held: their ids are not reused
            entry = entries[ident] = (*nodes, {})
        return entry[2]


_STORE = _SlitCache()
"""The slits `read_slit` read (by name), while a `slit_store` is open."""
_GEOMETRY = _SlitCache()
"""What `read_slit` computed from each slit's WCS, while a `geometry_cache` is open."""


@contextmanager
def slit_store():
    """Within this block `read_slit` reads each slit once: every later read of it gets the same `SlitData`.

    What is derived from a slit's arrays and kept with them (a time series'
    `SlitData.steady` pixels, its mean image's inputs) is then computed once
    for all the steps of a pipeline, not by every step. The `SlitData` is
    shared, so no reader may change it (`process_slits` asks that of its work
    anyway), and the block must not be open while a slit's data, DQ or
    variances change (a background subtraction). Blocks may nest and be open
    in several threads.
    """
    with _STORE.open():
        yield


@contextmanager
def geometry_cache():
    """Within this block `read_slit` evaluates each slit's WCS once, however many times the slit is read.

    The wavelengths and the WCS source position of a slit are the most costly
    part of reading it (the source position of a real NIRSpec slitlet: some
    6 ms, see `nirspec_source_position`), and every step of a pipeline reads every slit again, after the
    background step changed its data but not its WCS. Inside the block they
    are kept per slit (the slit's and its exposure's metadata nodes, by
    identity) and handed out as copies, so the slits read are those read
    without it. A pipeline opens it around its steps; it must not be open
    while a slit's WCS or WAVELENGTH array is changed. Blocks may nest and be
    open in several threads.
    """
    with _GEOMETRY.open():
        yield


def _remembered(slit, parent, key: tuple, compute: Callable[[], Any]) -> Any:
    """``compute()``, or within a `geometry_cache` what it gave before for this slit, exposure and ``key``.

    Arrays are returned as copies, so that no reader can change another's.
    """
    kept = _GEOMETRY.values(slit, parent)
    if kept is None:
        return compute()
    if key not in kept:
        kept[key] = compute()
    return _copied(kept[key])


def _copied(value):
    if isinstance(value, np.ndarray):
        return value.copy()
    if isinstance(value, tuple):
        return tuple(_copied(v) for v in value)
    return value


def _good_pixels(name: str, data: np.ndarray, dq: np.ndarray, variances: list[np.ndarray]) -> np.ndarray:
    """Pixels with finite data, no DO_NOT_USE, and finite non-negative variances.

    As jwst's ``match_nans_and_flags``, a pixel bad in any array is bad. A
    negative or infinite variance would give a wrong (or NaN) error, so such
    pixels are not used, with a warning.

    Raises
    ------
    SlitError
        When no pixel is usable, saying why.
    """
    good = np.empty(data.shape, bool)
    counts = np.zeros(3, np.int64)  # not finite, flagged, bad variance only
    # In groups of integrations: no temporary the size of the cube.
    for index in integration_groups(data.shape, _MEAN_GROUP_PIXELS):
        finite = np.isfinite(data[index])
        unflagged = (dq[index] & DO_NOT_USE) == 0
        variance_ok = np.ones(finite.shape, bool)
        for value in variances:
            part = value[index] if value.ndim == data.ndim else value
            with np.errstate(invalid="ignore"):
                variance_ok &= np.isfinite(part) & (part >= 0)
        np.logical_and(finite & unflagged, variance_ok, out=good[index])
        counts += [(~finite).sum(), (~unflagged).sum(), (finite & unflagged & ~variance_ok).sum()]
    not_finite, flagged, bad_variance = (int(c) for c in counts)
    if not good.any():
        raise SlitError(
            name, f"has no usable pixel (of {data.size}: {not_finite} NaN or infinite in SCI, "
            f"{flagged} flagged DO_NOT_USE, {bad_variance} more with a negative or "
            "non-finite VAR_*); check the SCI, DQ and variance arrays of the input",
        )
    if bad_variance:
        log.warning("Slit %s: %d pixels with a negative or non-finite variance (VAR_POISSON, VAR_RNOISE, "
                    "VAR_FLAT or ERR) are not used", name, bad_variance)
    return good


def describe_model(model) -> str:
    name = getattr(getattr(model, "meta", None), "filename", None)
    kind = type(model).__name__
    return f"{kind} {name!r}" if name else kind


def _array(model, key: str) -> np.ndarray | None:
    value = getattr(model, key, None)
    return None if value is None else np.asarray(value)


def _dispersion_axis(slit, parent, name: str) -> int:
    for source in (slit, parent):
        value = getattr(getattr(source.meta, "wcsinfo", None), "dispersion_direction", None)
        if value in (HORIZONTAL, VERTICAL):
            return int(value)
    raise SlitError(
        name, "meta.wcsinfo.dispersion_direction is not set (1 = along x, 2 = along y); "
        "set it, as assign_wcs does",
    )


def _wavelength(slit, parent, name: str, frame: tuple[int, int]) -> np.ndarray:
    from jwst.lib.wcs_utils import get_wavelengths

    exp_type = parent.meta.exposure.type or ""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            wavelength = get_wavelengths(slit, exp_type)
    except Exception as exc:  # the WCS can fail in many ways; say which slit
        raise SlitError(name, f"its WCS could not give wavelengths ({exc})") from exc
    if wavelength is None:
        raise SlitError(name, "has neither a WAVELENGTH array nor a WCS (meta.wcs); run assign_wcs first")
    wavelength = np.asarray(wavelength, dtype=np.float64)
    if wavelength.shape != frame:
        raise SlitError(name, f"WAVELENGTH has shape {wavelength.shape} but a frame of SCI is {frame}; "
                        "run assign_wcs again, or remove the WAVELENGTH array to use the WCS")
    if not np.isfinite(wavelength).any():
        raise SlitError(name, "has no finite wavelength anywhere; check its WAVELENGTH array or WCS (assign_wcs)")
    return wavelength


def _bounding_box(model, frame) -> tuple[slice, slice] | None:
    """Pixel slices of the WCS bounding box of a full-frame image, if it has one."""
    wcs = getattr(model.meta, "wcs", None)
    bbox = getattr(wcs, "bounding_box", None) if wcs is not None else None
    if bbox is None:
        return None
    (x0, x1), (y0, y1) = (tuple(b) for b in bbox.bounding_box(order="F"))
    ys = slice(max(int(np.ceil(y0)), 0), min(int(np.floor(y1)) + 1, frame[0]))
    xs = slice(max(int(np.ceil(x0)), 0), min(int(np.floor(x1)) + 1, frame[1]))
    return (ys, xs) if ys.stop > ys.start and xs.stop > xs.start else None


def _source_position(slit, parent, wavelength: np.ndarray, dispaxis: int, origin: tuple[int, int],
                     nx: int) -> tuple[float | None, np.ndarray | None]:
    """Cross-dispersion row of the source, and its trace per column, predicted by the WCS (if it can be).

    ``wavelength`` is the whole frame's, in the input's layout. NIRSpec's are
    projected from the slit position here (`nirspec_source_position`), the
    others' found by jwst's ``location_from_wcs``.
    """
    node = slit if slit is not parent else parent
    found = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if parent.meta.exposure.type in NIRSPEC_SLIT_TYPES and dispaxis == HORIZONTAL:
                found = nirspec_source_position(node, wavelength)
            if found is None:
                location_from_wcs = extract_1d_module("source_location").location_from_wcs
                with _quiet_in_this_thread(location_from_wcs.__module__):
                    found = location_from_wcs(parent, None if slit is parent else slit, make_trace=True)[2:]
    except Exception:  # noqa: BLE001 -- a synthetic or partial WCS: no prediction
        return None, None
    location, trace = found
    if location is None or not np.isfinite(location):
        return None, None
    if trace is not None:
        trace = np.asarray(trace, dtype=float)[origin[1]:origin[1] + nx] - origin[0]
        if trace.shape != (nx,) or np.isfinite(trace).sum() < max(2, nx // 4):
            trace = None
        else:  # fill the columns the WCS does not cover, smoothly
            ok = np.isfinite(trace)
            trace = np.interp(np.arange(nx), np.flatnonzero(ok), trace[ok])
    return float(location) - origin[0], trace


class _QuietFilter(logging.Filter):
    """Drops records up to INFO logged by threads inside `_quiet_in_this_thread`."""

    state = threading.local()

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno > logging.INFO or not getattr(self.state, "quiet", False)


_QUIET = _QuietFilter()


@contextmanager
def _quiet_in_this_thread(name: str):
    """Silence the INFO messages of logger ``name`` from this thread only (``logging.disable`` would silence all)."""
    logger = logging.getLogger(name)
    if _QUIET not in logger.filters:
        logger.addFilter(_QUIET)
    _QUIET.state.quiet = True
    try:
        yield
    finally:
        _QUIET.state.quiet = False


def write_slit(slit: SlitData, target, **arrays: np.ndarray) -> None:
    """Write canonical arrays back into ``target`` in the input's layout.

    ``target`` is the slit (or model) the arrays belong in, typically a copy of
    ``slit.model``; each keyword names a model array (``data``, ``dq``,
    ``var_rnoise``, ...) and gives its canonical ``(..., ny, nx)`` value.
    """
    views = slit_views(slit, target, {key: value.dtype for key, value in arrays.items()})
    for key, value in arrays.items():
        views[key][...] = value


def scene_models(model: datamodels.JwstDataModel, scenes: list[tuple[SlitData, np.ndarray]]):
    """Copies of ``model`` holding, for each ``(slit, values)``, the scene model and the residual (data - model).

    The residual is NaN on the slit's bad pixels; slits not in ``scenes`` keep
    the input's data.

    Returns
    -------
    scene, residual : DataModel
        Two copies of ``model``.
    """
    scene, residual = model.copy(), model.copy()
    slots = {name: index for index, (name, _) in enumerate(iter_slits(model))}
    nodes = slit_models(scene), slit_models(residual)
    for slit, values in scenes:
        index = slots[slit.name]
        for target, array in zip(nodes, (values, np.where(slit.good, slit.data - values, np.nan))):
            write_slit(slit, target[index], data=np.asarray(array, dtype=np.float32))
    return scene, residual


def slit_views(slit: SlitData, target, arrays: dict[str, np.dtype]) -> dict[str, np.ndarray]:
    """Writable canonical views of arrays of ``target``, which has the layout of ``slit.model``.

    Writing into a view writes into ``target``: the view is transposed back
    for dispersion along y and placed at ``slit.origin`` (inside the WCS
    bounding box of a full-frame image). Where ``target`` has no such array,
    or one of another shape (a variance given per frame), a full-size array of
    the given dtype is attached first, holding the old values (or zeros).
    """
    full_shape = np.shape(slit.model.data)
    frame = (slit.ny, slit.nx) if slit.dispaxis != VERTICAL else (slit.nx, slit.ny)
    row0, col0 = slit.origin if slit.dispaxis != VERTICAL else slit.origin[::-1]
    views = {}
    for key, dtype in arrays.items():
        current = getattr(target, key, None)
        writable = isinstance(current, np.ndarray) and current.flags.writeable
        if not writable or current.shape != full_shape:
            full = np.zeros(full_shape, dtype=dtype)
            if current is not None and np.shape(current) in (full_shape, full_shape[-2:]):  # a frame per integration
                full[...] = current
            setattr(target, key, full)
            current = getattr(target, key)
        view = current[..., row0:row0 + frame[0], col0:col0 + frame[1]]
        views[key] = np.swapaxes(view, -1, -2) if slit.dispaxis == VERTICAL else view
    return views
