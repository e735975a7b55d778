"""calwebb_spec2 and calwebb_spec3 with jwst's ``extract_1d`` replaced by `OptimalExtractStep`.

Their own module: ``jwst.pipeline`` imports every jwst step (about 2 s), which
the package's own steps and ``optx_spec`` need not pay for.
"""

from __future__ import annotations

from jwst.pipeline import Spec2Pipeline, Spec3Pipeline

from .extract_step import OptimalExtractStep
from .offline import OfflinePipelineMixin

__all__ = ["OptSpec2Pipeline", "OptSpec3Pipeline"]


class OptSpec2Pipeline(OfflinePipelineMixin, Spec2Pipeline):
    """calwebb_spec2 with ``extract_1d`` replaced by `OptimalExtractStep`.

    A spec2 parameter file works with one changed ``class:`` line
    (``jwst_optextract.OptSpec2Pipeline``); ``steps.extract_1d`` then takes this
    package's parameters. The jwst steps still need their own reference files:
    from CRDS, or every one of them given with ``override_<reftype>``, or
    skipped. This pipeline itself never asks CRDS for parameters.
    """

    class_alias = "optx_spec2"

    step_defs = {**Spec2Pipeline.step_defs, "extract_1d": OptimalExtractStep}


class OptSpec3Pipeline(OfflinePipelineMixin, Spec3Pipeline):
    """calwebb_spec3 with ``extract_1d`` replaced by `OptimalExtractStep`.

    Level-3 MOS and fixed-slit products are then extracted from the resampled
    (``s2d``) combination of the exposures. To combine exposures without any
    resampling, extracting from the pooled pixels of all exposures, use
    ``optx_combine`` instead.
    """

    class_alias = "optx_spec3"

    step_defs = {**Spec3Pipeline.step_defs, "extract_1d": OptimalExtractStep}
