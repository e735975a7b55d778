"""Entry point that registers the package's steps with stpipe (``stpipe.steps`` group)."""

from __future__ import annotations

__all__ = ["get_steps"]


def get_steps() -> list[tuple[str, str, bool]]:
    """Steps and pipelines of this package as ``(class path, alias, is_pipeline)``.

    Kept free of imports so that ``strun`` resolves aliases quickly.
    """
    return [
        ("jwst_optextract.steps.OptimalExtractStep", "optx_extract", False),
        ("jwst_optextract.steps.TraceStep", "optx_trace", False),
        ("jwst_optextract.steps.PsfFitStep", "optx_psf", False),
        ("jwst_optextract.steps.BackgroundStep", "optx_background", False),
        ("jwst_optextract.steps.SlitCombineStep", "optx_combine", False),
        ("jwst_optextract.steps.OptimalExtractionPipeline", "optx_spec", True),
        ("jwst_optextract.steps.OptSpec2Pipeline", "optx_spec2", True),
        ("jwst_optextract.steps.OptSpec3Pipeline", "optx_spec3", True),
    ]
