"""Pipelines: the chain of this package's steps, and calwebb_spec2/spec3 with our extraction."""

from __future__ import annotations

import logging

from jwst.stpipe.core import JwstPipeline
from stdatamodels.jwst import datamodels

from ..io import geometry_cache, slit_store
from ..io.products import ProfileModel, TraceModel
from .background_step import BackgroundStep
from .base import AtomicSaveMixin, open_model, start_workers
from .extract_step import OptimalExtractStep
from .offline import OfflinePipelineMixin
from .psf_step import PsfFitStep
from .trace_step import TraceStep

__all__ = ["OptimalExtractionPipeline"]

log = logging.getLogger(__name__)


class OptimalExtractionPipeline(AtomicSaveMixin, OfflinePipelineMixin, JwstPipeline):
    """Background → trace → profile → optimal extraction, from a ``_cal`` file to the best x1d.

    Each step's parameters are settable (``--steps.optx_psf.profile_kind=spline``) and
    each step can be skipped (``--steps.optx_background.skip=True``, e.g. for
    data whose background is already subtracted). The trace and the profile
    pass in memory, each slit's wavelengths and WCS source position are
    computed once for all the steps (`~jwst_optextract.io.geometry_cache`), and
    after the background step each slit is read once for the three others
    (`~jwst_optextract.io.slit_store`);
    with ``--steps.optx_trace.save_results=True`` (and the same for the
    others) they are written too. Defaults per exposure type come from
    the ``optxextract`` reference (packaged in ``reference_files/``).
    """

    class_alias = "optx_spec"

    spec = """
    maximum_cores = string(default="none")  # cores for every step whose own maximum_cores is none: none, quarter, half, all or a number (processes or threads, as each step says)
    """  # noqa: E501

    step_defs = {
        "optx_background": BackgroundStep,
        "optx_trace": TraceStep,
        "optx_psf": PsfFitStep,
        "optx_extract": OptimalExtractStep,
    }

    def default_suffix(self):
        return "x1d"

    def process(self, input_data):
        """Run the chain on one exposure; returns a MultiSpecModel or TSOMultiSpecModel."""
        steps = (self.optx_background, self.optx_trace, self.optx_psf, self.optx_extract)
        for step in steps:
            if str(step.maximum_cores).lower() == "none":
                step.maximum_cores = self.maximum_cores
        start_workers(input_data, self.optx_trace.maximum_cores)
        model = open_model(input_data)
        log.info("optx_spec: background %s", "skipped" if self.optx_background.skip else self.optx_background.method)
        with geometry_cache():  # each slit's WCS is evaluated once, not by every step
            # a model the pipeline opened itself is nobody else's: the background is subtracted in place
            model = self.optx_background.run(model, model is not input_data)
            with slit_store():  # the data change no more: each slit is read once for the three steps
                trace = _product(self.optx_trace.run(model), TraceModel)
                psf = _product(self.optx_psf.run(model, trace), ProfileModel)
                result = self.optx_extract.run(model, trace, psf)
        self.suffix = "x1dints" if isinstance(result, datamodels.TSOMultiSpecModel) else "x1d"
        return result


def _product(result, cls):
    """The step's product, or None when the step was skipped (it then returns its input)."""
    return result if isinstance(result, cls) else None
