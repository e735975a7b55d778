"""The exposures of a program, grouped by source: associations and lists in, slits of one source out.

A `SourceGroup` holds every exposure's slit of one source in canonical
arrays cut to the detector region they share, and each exposure's nod
position, so that `jwst_optextract.drivers.combine` can stack them pixel for
pixel without resampling.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from stdatamodels.jwst import datamodels

from ..exceptions import InputError, SlitError
from .dq import DO_NOT_USE
from .opening import open_datamodel
from .slits import VERTICAL, SlitData, iter_slits, read_slit
from .spectra import Spectrum, flux_units, make_output_model, to_specmodel

__all__ = ["Program", "SourceGroup", "cluster_positions", "group_sources", "read_program", "rectified_product",
           "source_product"]

log = logging.getLogger(__name__)


@dataclass
class Program:
    """The exposures to combine and the name of the product they make."""

    exposures: list[datamodels.JwstDataModel]
    product_name: str
    opened: list[datamodels.JwstDataModel]
    """The models opened here from files (to be closed by the caller)."""


@dataclass
class SourceGroup:
    """Every exposure's slit of one source, on their common detector grid.

    Attributes
    ----------
    key : str
        What the exposures were grouped by (``"source 933"``, ``"slit S200A1"``).
    source_id : int
        The source identifier (0 when unknown).
    slits : list of SlitData
        One per exposure, cut to the same detector rows and columns.
    parents : list of DataModel
        The exposure each slit belongs to (metadata, units).
    positions : ndarray
        Nod position label of every exposure.
    position_origin : str
        Where the labels came from: ``"shutter_state"``, ``"dither"``, ``"wcs"``
        or ``"none"`` (then the trace fit decides).
    """

    key: str
    source_id: int
    slits: list[SlitData]
    parents: list[datamodels.JwstDataModel]
    positions: np.ndarray
    position_origin: str

    @property
    def name(self) -> str:
        return self.slits[0].name

    @property
    def filenames(self) -> list[str]:
        return [_filename(p) for p in self.parents]

    @property
    def exposure_times(self) -> list[float]:
        """Effective exposure time of every exposure in seconds (else its exposure time, else 1)."""
        return [float(p.meta.exposure.effective_exposure_time or p.meta.exposure.exposure_time or 1.0)
                for p in self.parents]


def read_program(inputs) -> Program:
    """Models to combine from an association file, a ModelContainer, a list of files/models, or one of them.

    An association contributes its ``science`` members (paths relative to it)
    and names the product; otherwise the product is named after the first
    exposure's file.

    Raises
    ------
    InputError
        For an unreadable association or file, or no exposure at all.
    """
    product_name = None
    items = inputs
    if isinstance(inputs, (str, os.PathLike)) and Path(inputs).suffix.lower() == ".json":
        items, product_name = _association(Path(inputs))
    elif isinstance(inputs, (str, os.PathLike, datamodels.JwstDataModel)):
        items = [inputs]
    items = list(items)
    if not items:
        raise InputError("no exposures given: give an association, a list of _cal files or a ModelContainer")
    exposures, opened = [], []
    for item in items:
        if isinstance(item, datamodels.JwstDataModel):
            exposures.append(item)
            continue
        try:
            model = open_datamodel(item)
        except Exception as exc:
            raise InputError(f"cannot open the exposure {item!r} ({type(exc).__name__}: {exc})") from exc
        exposures.append(model)
        opened.append(model)
    if product_name is None:
        product_name = _stem(_filename(exposures[0]))
    return Program(exposures, product_name, opened)


def _association(path: Path) -> tuple[list[str], str]:
    try:
        association = json.loads(path.read_text(encoding="utf-8"))
        product = association["products"][0]
        members = product["members"]
    except (OSError, ValueError, KeyError, IndexError, TypeError) as exc:
        raise InputError(f"cannot read the association {path}: {exc}") from exc
    names = [str(path.parent / m["expname"]) for m in members if str(m.get("exptype", "science")).lower() == "science"]
    if not names:
        raise InputError(f"the association {path} has no science member")
    return names, str(product.get("name") or _stem(names[0]))


def _stem(filename: str) -> str:
    """A file name without directory, extension and pipeline suffix (``_cal``, ``_s2d``, ...)."""
    stem = Path(filename).stem
    for suffix in ("_cal", "_calints", "_s2d", "_bsub", "_phot", "_x1d"):
        if stem.endswith(suffix):
            return stem[: -len(suffix)]
    return stem


def group_sources(exposures: list[datamodels.JwstDataModel]) -> tuple[list[SourceGroup], dict[str, str]]:
    """Group the slits of all exposures by source, each group cut to its common detector grid.

    Slits are grouped by MSA source id (NIRSpec MOS), else by slit name. A
    slit that cannot be read, or a source whose slits share no detector pixel,
    is reported in the second return value (key: why) instead of stopping the others.

    Returns
    -------
    groups : list of SourceGroup
    skipped : dict of str to str
    """
    members: dict[str, list[tuple[SlitData, datamodels.JwstDataModel]]] = {}
    skipped: dict[str, str] = {}
    for exposure in exposures:
        for name, slit_model in iter_slits(exposure):
            key = _source_key(slit_model, exposure, name)
            try:
                slit = read_slit(slit_model, exposure, name)
            except SlitError as error:
                error.in_file(_filename(exposure))
                log.warning("Skipping %s", error)
                skipped[f"{key} in {_filename(exposure)}"] = error.problem
                continue
            members.setdefault(key, []).append((slit, exposure))
    groups = []
    for key, pairs in members.items():
        try:
            groups.append(_make_group(key, pairs))
        except SlitError as error:
            log.warning("Skipping %s (%s)", key, error)
            skipped[key] = error.problem
    return groups, skipped


def _source_key(slit_model, exposure, name: str) -> str:
    source_id = int(getattr(slit_model, "source_id", 0) or 0)
    if exposure.meta.exposure.type == "NRS_MSASPEC" and source_id > 0:
        return f"source {source_id}"
    return f"slit {name}"


def _make_group(key: str, pairs: list[tuple[SlitData, datamodels.JwstDataModel]]) -> SourceGroup:
    slits = _common_grid([slit for slit, _ in pairs], key)
    parents = [parent for _, parent in pairs]
    positions, origin = _nod_positions(slits, parents)
    source_id = int(getattr(slits[0].model, "source_id", 0) or 0)
    return SourceGroup(key, source_id, slits, parents, positions, origin)


def _detector_origin(slit: SlitData) -> tuple[int, int]:
    """Detector ``(row, column)`` of the canonical array's first pixel, in canonical orientation."""
    xstart = int(getattr(slit.model, "xstart", None) or 1) - 1
    ystart = int(getattr(slit.model, "ystart", None) or 1) - 1
    row, col = (ystart, xstart) if slit.dispaxis != VERTICAL else (xstart, ystart)
    return row + slit.origin[0], col + slit.origin[1]


def _common_grid(slits: list[SlitData], key: str) -> list[SlitData]:
    """The slits cut to the detector rows and columns they all cover."""
    origins = np.array([_detector_origin(s) for s in slits])
    ends = origins + np.array([(s.ny, s.nx) for s in slits])
    start, stop = origins.max(axis=0), ends.min(axis=0)
    if np.any(stop - start < 2):
        raise SlitError(key, "its exposures share no detector region (different detectors or slitlets); "
                        "combine them separately")
    if len({s.data.ndim for s in slits}) > 1 or any(s.data.ndim != 2 for s in slits):
        raise SlitError(key, "combination takes single-frame (_cal) exposures; average the integrations first")
    if len({s.dispaxis for s in slits}) > 1:
        raise SlitError(key, "its exposures disagree on the dispersion direction")
    return [_cut(s, *(start - o), *(stop - o)) for s, o in zip(slits, origins)]


def _cut(slit: SlitData, row0: int, col0: int, row1: int, col1: int) -> SlitData:
    if (row0, col0, row1, col1) == (0, 0, slit.ny, slit.nx):
        return slit
    rows, cols = slice(row0, row1), slice(col0, col1)
    arrays = {k: None if getattr(slit, k) is None else np.broadcast_to(getattr(slit, k), slit.data.shape)[rows, cols]
              for k in ("data", "dq", "good", "wavelength", "var_poisson", "var_rnoise", "var_flat")}
    return dataclasses.replace(
        slit, **arrays, origin=(slit.origin[0] + row0, slit.origin[1] + col0),
        source_row=None if slit.source_row is None else slit.source_row - row0,
        source_trace=None if slit.source_trace is None else slit.source_trace[cols] - row0,
    )


def _nod_positions(slits: list[SlitData], parents: list) -> tuple[np.ndarray, str]:
    """Nod position labels from the shutter states, the WCS source rows or the dither positions."""
    states = [str(getattr(s.model, "shutter_state", "") or "") for s in slits]
    if all("x" in state for state in states) and len(set(states)) > 1:
        return np.array([state.index("x") for state in states]), "shutter_state"
    rows = [s.source_row for s in slits]
    if all(r is not None for r in rows) and np.ptp(rows) >= NOD_SEPARATION:
        return cluster_positions(np.asarray(rows, float)), "wcs"
    dithers = [getattr(p.meta.dither, "position_number", None) for p in parents]
    if all(d is not None for d in dithers) and len(set(dithers)) > 1:
        return np.array(dithers, int), "dither"
    return np.zeros(len(slits), int), "none"


NOD_SEPARATION = 1.5
"""Pixels between two source positions for them to count as different nod positions."""


def cluster_positions(rows: np.ndarray, separation: float = NOD_SEPARATION) -> np.ndarray:
    """Labels ``0, 1, ...`` of source rows, a new label wherever sorted rows jump by ``separation`` or more."""
    order = np.argsort(rows)
    labels = np.empty(rows.size, int)
    labels[order] = np.concatenate([[0], np.cumsum(np.diff(rows[order]) >= separation)])
    return labels


def source_product(group: SourceGroup, spectrum: Spectrum, product_name: str) -> datamodels.MultiSpecModel:
    """The x1d product of a combined source, named as jwst spec3 names it (``<product>_s<source_id>``).

    Exposure-level metadata come from the first exposure; its integration
    times, which describe no combination, are left out.
    """
    parent, slit = group.parents[0], group.slits[0]
    output = make_output_model(parent, integrations=False)
    if getattr(output, "int_times", None) is not None:
        del output.int_times
    output.spec.append(to_specmodel(slit, parent, spectrum, flux_units(parent, slit.model)))
    source = f"s{group.source_id:05d}" if group.source_id > 0 else group.name.lower()
    stem = product_name.replace("{source_id}", source) if "{source_id}" in product_name else f"{product_name}_{source}"
    output.meta.filename = f"{stem}_x1d.fits"
    return output


def rectified_product(group: SourceGroup, image: np.ndarray, variance: np.ndarray,
                      wavelength: np.ndarray) -> datamodels.SlitModel:
    """A SlitModel holding a combined, rectified 2D spectrum (for display; no WCS)."""
    product = datamodels.SlitModel(data=image.astype(np.float32))
    product.update(group.parents[0], only="PRIMARY")
    product.err = np.sqrt(variance).astype(np.float32)
    product.dq = np.where(np.isfinite(image), 0, DO_NOT_USE).astype(np.uint32)
    product.wavelength = np.broadcast_to(wavelength, image.shape).astype(np.float32)
    product.name, product.source_id = group.name, group.source_id
    return product


def _filename(model) -> str:
    return str(getattr(model.meta, "filename", None) or type(model).__name__)
