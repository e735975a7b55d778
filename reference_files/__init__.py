"""Packaged default reference files of jwst_optextract (installed as ``jwst_optextract.reference_files``).

The package's own reference types, their packaged files, and how a reference's
values for one exposure type are read. Plain JSON: no stpipe, no datamodels, so
that the parameter dataclasses of the middle layer can take their defaults
from here too.
"""

from __future__ import annotations

import json
from importlib import resources

__all__ = ["PACKAGED_PARAMETERS", "PACKAGED_REFERENCES", "exp_type_values", "load_reference", "packaged_defaults",
           "packaged_parameters_file", "packaged_reference"]

PACKAGED_REFERENCES = {"optxextract": "optx_extract_defaults.json", "optxpsf": "optx_psf_prior.json"}
"""Reference types of this package and their packaged default files (``optxpsf``: the cross-dispersion PSF prior,
read with `jwst_optextract.core.psf_prior.psf_prior_for`)."""

PACKAGED_PARAMETERS = {"OptimalExtractionPipeline": "optx_spec_parameters.cfg"}
"""Classes whose parameter defaults differ from their steps' own, and the packaged parameter file that holds
them (what a CRDS ``pars-<class>`` reference would)."""


def packaged_parameters_file(class_name: str) -> str | None:
    """Path of the packaged parameter file of a step or pipeline class, or None when it has none."""
    name = PACKAGED_PARAMETERS.get(class_name)
    return None if name is None else str(resources.files(__name__) / name)


def packaged_reference(reftype: str) -> str:
    """Path of the packaged default file of one of the package's reference types."""
    return str(resources.files(__name__) / PACKAGED_REFERENCES[reftype])


def load_reference(path: str) -> dict:
    """Read one of the package's (JSON) reference files."""
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def exp_type_values(reference: dict, exp_type: str | None) -> dict:
    """A reference's values for one exposure type: its ``default`` section updated by the exposure type's."""
    return {**reference.get("default", {}), **reference.get("exp_type", {}).get(exp_type, {})}


def packaged_defaults(reftype: str = "optxextract") -> dict:
    """The ``default`` section of a packaged reference: the values used when no exposure type is known."""
    return dict(load_reference(packaged_reference(reftype)).get("default", {}))
