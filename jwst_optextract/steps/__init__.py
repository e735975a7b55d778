"""stpipe steps and pipelines of jwst_optextract."""

from .extract_step import OptimalExtractStep

__all__ = ["OptimalExtractStep"]
