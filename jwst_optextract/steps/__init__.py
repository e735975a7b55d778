"""stpipe steps and pipelines of jwst_optextract."""

from .background_step import BackgroundStep
from .combine_step import SlitCombineStep
from .extract_step import OptimalExtractStep
from .pipelines import OptimalExtractionPipeline, OptSpec2Pipeline, OptSpec3Pipeline
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
