"""stpipe steps and pipelines of jwst_optextract.

``OptSpec2Pipeline`` and ``OptSpec3Pipeline`` (`calwebb`) are imported on first
use: they import ``jwst.pipeline``, and with it every jwst step.
"""

from importlib import import_module

from .background_step import BackgroundStep
from .combine_step import SlitCombineStep
from .extract_step import OptimalExtractStep
from .pipelines import OptimalExtractionPipeline
from .psf_step import PsfFitStep
from .trace_step import TraceStep

__all__ = [
    "BackgroundStep",
    "OptSpec2Pipeline",
    "OptSpec3Pipeline",
    "OptimalExtractStep",
    "OptimalExtractionPipeline",
    "PsfFitStep",
    "SlitCombineStep",
    "TraceStep",
]


def __getattr__(name: str):
    if name in ("OptSpec2Pipeline", "OptSpec3Pipeline"):
        value = getattr(import_module(".calwebb", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
