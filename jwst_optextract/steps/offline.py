"""Offline behaviour of every step and pipeline of the package: all of it, in one place.

stpipe asks CRDS for ``pars-<class>`` parameter references before a step runs
and for the context when it finishes; with no CRDS server and no cache that
ends the process. Our steps need neither: their parameters live in their
``spec`` and parameter files, and their own reference files ship with the
package (``jwst_optextract/reference_files``), overridable with
``override_<reftype>``. CRDS is still asked for any jwst reference type, so the
steps behave inside a jwst pipeline that uses CRDS.

This means overriding some stpipe and jwst methods, several of them private.
`STPIPE_HOOKS` lists every one we override or rely on, with the parameters we
rely on; ``tests/test_offline.py`` checks them against the installed stpipe
and jwst, so that a change there fails with a message naming the method and
the versions instead of a CRDS error at run time.
"""

from __future__ import annotations

import logging

import numpy as np
from jwst.stpipe.core import JwstPipeline, JwstStep
from stpipe import Pipeline, Step, config_parser, crds_client

from ..exceptions import InputError
from ..reference_files import PACKAGED_REFERENCES, packaged_parameters_file, packaged_reference

__all__ = ["LOGGER_NAME", "STPIPE_HOOKS", "OfflineMixin", "OfflinePipelineMixin", "packaged_parameters"]

log = logging.getLogger(__name__)

LOGGER_NAME = "jwst_optextract"
"""The package's logger, added to the loggers stpipe attaches its handlers to."""

STPIPE_HOOKS: tuple[tuple[type, str, tuple[str, ...]], ...] = (
    (Step, "build_config", ("input",)),
    (Step, "get_config_from_reference", ("dataset", "disable", "crds_observatory")),
    (Step, "_get_config_from_parameters", ("crds_parameters", "crds_observatory")),
    (Step, "_empty_config", ()),
    (Pipeline, "_empty_config", ()),
    (config_parser, "load_config_file", ("config_file",)),
    (config_parser, "merge_config", ("into", "new")),
    (Step, "get_stpipe_loggers", ()),
    (JwstStep, "get_stpipe_loggers", ()),
    (Step, "get_reference_file", ("self", "input_file", "reference_file_type")),
    (Step, "get_ref_override", ("self", "reference_file_type")),
    (JwstStep, "finalize_result", ("self", "result", "reference_files_used")),
    (JwstPipeline, "finalize_result", ("self", "result", "_reference_files_used")),
)
"""``(class, method, leading parameter names)`` of every stpipe/jwst method overridden or called here.

Besides these, the instance attributes ``_reference_files_used`` (a list of
``(reftype, path)``, appended to) and ``_log_records`` (the step's log, for
``cal_logs``) of `stpipe.Step`.
"""


def packaged_parameters(cls) -> config_parser.ConfigObj:
    """The packaged parameter defaults of a step or pipeline class: what CRDS's ``pars-<class>`` would hold.

    Empty for most classes; see `~jwst_optextract.reference_files.PACKAGED_PARAMETERS`.
    """
    path = packaged_parameters_file(cls.__name__)
    return cls._empty_config() if path is None else config_parser.load_config_file(path)


def _from_crds(reference_files_used) -> bool:
    """Whether any of the references used came from CRDS (then the CRDS context means something)."""
    return any(isinstance(f, str) and f.startswith("crds://") for _, f in reference_files_used)


class OfflineMixin:
    """Put before ``JwstStep`` / ``JwstPipeline`` in the bases."""

    @classmethod
    def build_config(cls, input, **kwargs):  # noqa: A002 -- stpipe's name
        # stpipe opens the input here only to look up CRDS pars-* references,
        # which our classes do not have; a bad file would then fail inside
        # astropy (or a numpy array on its truth value) before the step could
        # say what is wrong with it. The step opens and checks it itself.
        if isinstance(input, np.ndarray):
            raise InputError("a numpy array is not a JWST datamodel; give a file name or a SlitModel, "
                             "MultiSlitModel, ImageModel or CubeModel")
        config, config_file = super().build_config(None, **kwargs)
        defaults = packaged_parameters(cls)  # in place of CRDS's pars-* reference, under everything else
        config_parser.merge_config(defaults, config)
        return defaults, config_file

    @classmethod
    def get_config_from_reference(cls, dataset, disable=None, crds_observatory=None):
        # No pars-* references in CRDS for our classes: parameters come from
        # the packaged defaults, the spec, parameter files and the command line.
        return packaged_parameters(cls)

    @classmethod
    def _get_config_from_parameters(cls, crds_parameters, crds_observatory):
        # The same when a jwst pipeline asks for the parameters of a sub-step.
        return packaged_parameters(cls)

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
        super().finalize_result(result, reference_files_used if _from_crds(reference_files_used) else [])


class OfflinePipelineMixin(OfflineMixin):
    """Offline behaviour for pipelines: JwstPipeline.finalize_result always asks CRDS for the context."""

    def finalize_result(self, result, reference_files_used):
        if _from_crds(reference_files_used):
            super(OfflineMixin, self).finalize_result(result, reference_files_used)
        elif self.class_alias and hasattr(result, "cal_logs"):
            setattr(result.cal_logs, self.class_alias, self._log_records)
