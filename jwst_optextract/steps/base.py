"""Offline behaviour shared by every step and pipeline of the package.

stpipe asks CRDS for ``pars-<class>`` parameter references before a step runs
and for the context when it finishes; with no CRDS server and no cache that
ends the process. Our steps need neither: their parameters live in their
``spec`` and parameter files, and their own reference files ship with the
package (``jwst_optextract/reference_files``), overridable with
``override_<reftype>``. CRDS is still asked for any jwst reference type, so the
steps behave inside a jwst pipeline that uses CRDS.
"""

from __future__ import annotations

import json
import logging
from importlib import resources

from jwst.stpipe.core import JwstStep
from stdatamodels.jwst import datamodels
from stpipe import crds_client

from ..exceptions import InputError

__all__ = ["OfflineMixin", "OptxStep", "PACKAGED_REFERENCES", "load_reference", "open_model", "open_product",
           "packaged_reference", "reference_defaults"]

log = logging.getLogger(__name__)

PACKAGED_REFERENCES = {"optxextract": "optx_extract_defaults.json"}
"""Reference types of this package and their packaged default files."""

LOGGER_NAME = "jwst_optextract"


def packaged_reference(reftype: str) -> str:
    """Path of the packaged default file of one of the package's reference types."""
    return str(resources.files("jwst_optextract.reference_files") / PACKAGED_REFERENCES[reftype])


def load_reference(path: str) -> dict:
    """Read one of the package's (JSON) reference files."""
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def open_model(input_data):
    """The input as a datamodel (opened if it is a path), or a clear `InputError`."""
    if isinstance(input_data, datamodels.JwstDataModel):
        return input_data
    try:
        return datamodels.open(input_data)
    except Exception as exc:
        raise InputError(f"cannot open {input_data!r} as a JWST datamodel: {exc}") from exc


def open_product(value, cls):
    """A product given as a model or a file name (None stays None), or a clear `InputError`."""
    if value is None or isinstance(value, cls):
        return value
    try:
        return cls(value)
    except Exception as exc:
        raise InputError(f"cannot open {value!r} as a {cls.__name__}: {exc}") from exc


def reference_defaults(step, model) -> dict:
    """The optxextract reference values for the model's exposure type."""
    reference = load_reference(step.get_reference_file(model, "optxextract"))
    exp_type = model.meta.exposure.type
    return {**reference.get("default", {}), **reference.get("exp_type", {}).get(exp_type, {})}


class OfflineMixin:
    """Put before ``JwstStep`` / ``JwstPipeline`` in the bases."""

    @classmethod
    def get_config_from_reference(cls, dataset, disable=None, crds_observatory=None):
        # No pars-* references in CRDS for our classes: parameters come from
        # the spec, parameter files and the command line.
        return cls._empty_config()

    @classmethod
    def _get_config_from_parameters(cls, crds_parameters, crds_observatory):
        # The same when a jwst pipeline asks for the parameters of a sub-step.
        return cls._empty_config()

    @staticmethod
    def get_stpipe_loggers():
        return (*JwstStep.get_stpipe_loggers(), LOGGER_NAME)

    def get_reference_file(self, input_file, reference_file_type):
        """User override if given, else the packaged default; CRDS only for jwst reftypes."""
        if reference_file_type in PACKAGED_REFERENCES and self.get_ref_override(reference_file_type) is None:
            path = packaged_reference(reference_file_type)
            self._reference_files_used.append((reference_file_type, path))
            return crds_client.check_reference_open(path)
        return super().get_reference_file(input_file, reference_file_type)

    def finalize_result(self, result, reference_files_used):
        # JwstStep.finalize_result asks CRDS for the context whenever any
        # reference was used; only do that when CRDS actually gave one.
        from_crds = any(isinstance(f, str) and f.startswith("crds://") for _, f in reference_files_used)
        super().finalize_result(result, reference_files_used if from_crds else [])


class OptxStep(OfflineMixin, JwstStep):
    """Base class of the package's steps."""

    # Our reference types are not in CRDS: never prefetch them.
    prefetch_references = False


class PlottingMixin:
    """``save_plots``: one diagnostic PNG per slit, named after the output."""

    def save_plot(self, slit, trace, profile=None):
        from ..plotting import save_slit_plot

        name = "".join(c if c.isalnum() or c in "-." else "-" for c in slit.name)
        path = self.make_output_path(suffix=f"{name}_{self.default_suffix()}", ext="png")
        save_slit_plot(path, slit, trace, profile)
