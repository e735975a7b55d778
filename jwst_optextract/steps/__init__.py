"""stpipe steps and pipelines of jwst_optextract."""

from .extract_step import OptimalExtractStep
from .psf_step import PsfFitStep
from .trace_step import TraceStep

__all__ = ["OptimalExtractStep", "PsfFitStep", "TraceStep"]
