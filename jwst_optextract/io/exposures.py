"""Background and nod exposures: files, associations, and the slit that matches a science slit."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
from stdatamodels.jwst import datamodels

from ..exceptions import InputError, SlitError
from .opening import open_datamodel
from .slits import SlitData, iter_slits, read_slit

__all__ = ["expand_exposures", "matching_slits", "stack_exposures"]

log = logging.getLogger(__name__)


def expand_exposures(items) -> list:
    """File names, datamodels or association files (JSON) as a flat list of files and models.

    An association contributes its members of exposure type ``background``
    (jwst's convention for dedicated background exposures), with paths
    relative to the association file.

    Raises
    ------
    InputError
        For an association that cannot be read or has no background member.
    """
    expanded = []
    for item in items or []:
        if isinstance(item, (str, Path)) and str(item).lower().endswith(".json"):
            expanded.extend(_association_backgrounds(Path(item)))
        else:
            expanded.append(item)
    return expanded


def _association_backgrounds(path: Path) -> list[str]:
    try:
        association = json.loads(path.read_text(encoding="utf-8"))
        members = [m for product in association["products"] for m in product["members"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"cannot read the association {path}: {exc}") from exc
    names = [str(path.parent / m["expname"]) for m in members if str(m.get("exptype", "")).lower() == "background"]
    if not names:
        raise InputError(f"the association {path} has no member of exptype 'background'")
    return names


def open_exposure(item) -> datamodels.JwstDataModel:
    """A datamodel for a file name (opened) or a model (as is)."""
    if isinstance(item, datamodels.JwstDataModel):
        return item
    try:
        return open_datamodel(item)
    except Exception as exc:
        raise InputError(f"cannot open the background exposure {item!r}: {exc}") from exc


def matching_slits(exposures: list, name: str, index: int) -> list[SlitData]:
    """The slit called ``name`` (else the ``index``-th slit) of every exposure, read canonically."""
    slits = []
    for exposure in exposures:
        candidates = list(iter_slits(exposure))
        found = [slit for slit_name, slit in candidates if slit_name == name]
        if not found and index < len(candidates):
            found = [candidates[index][1]]
        if not found:
            raise SlitError(name, f"no slit of that name in the exposure {_filename(exposure)}")
        slits.append(read_slit(found[0], exposure, name))
    return slits


def stack_exposures(slits: list[SlitData], science: SlitData) -> dict[str, np.ndarray]:
    """Arrays of the exposures stacked on a new first axis, matched to the science slit's shape.

    Exposures with as many integrations as the science data are combined
    integration by integration; otherwise their integrations are averaged
    first (variances divided by their number) and the result applies to every
    science integration.

    Raises
    ------
    SlitError
        When a frame's shape differs from the science frame's.
    """
    arrays = {key: [] for key in ("data", "mask", "var_poisson", "var_rnoise", "var_flat")}
    for slit in slits:
        if slit.data.shape[-2:] != science.data.shape[-2:]:
            raise SlitError(
                science.name, f"a background exposure has frames of shape {slit.data.shape[-2:]}, "
                f"the science data {science.data.shape[-2:]}",
            )
        values = {
            "data": np.where(slit.good, slit.data, 0.0),
            "mask": slit.good,
            **{k: np.broadcast_to(getattr(slit, k) if getattr(slit, k) is not None else 0.0, slit.data.shape)
               for k in ("var_poisson", "var_rnoise", "var_flat")},
        }
        if slit.data.ndim == 3 and slit.data.shape != science.data.shape:
            values = _mean_over_integrations(values)
        for key, value in values.items():
            arrays[key].append(np.broadcast_to(value, science.data.shape))
    return {key: np.stack(value) for key, value in arrays.items()}


def _mean_over_integrations(values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    mask = values["mask"]
    n = mask.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = {"data": np.where(n > 0, np.sum(values["data"] * mask, axis=0) / n, 0.0), "mask": n > 0}
        for key in ("var_poisson", "var_rnoise", "var_flat"):
            out[key] = np.where(n > 0, np.sum(values[key] * mask, axis=0) / n**2, 0.0)
    return out


def _filename(model) -> str:
    return str(getattr(model.meta, "filename", None) or type(model).__name__)
