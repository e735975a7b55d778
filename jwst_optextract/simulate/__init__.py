"""Synthetic JWST slit spectroscopy with known truth (see `jwst_optextract.simulate.exposures`)."""

from .exposures import (
    MJY_PER_DNS,
    MJYSR_PER_DNS,
    SceneConfig,
    SceneTruth,
    add_background,
    cramer_rao_variance,
    make_multislit,
    make_nods,
    make_slit,
    make_tso,
    write_example,
)

__all__ = [
    "SceneTruth",
    "SceneConfig",
    "make_slit",
    "make_multislit",
    "make_tso",
    "make_nods",
    "add_background",
    "write_example",
    "cramer_rao_variance",
    "MJYSR_PER_DNS",
    "MJY_PER_DNS",
]
