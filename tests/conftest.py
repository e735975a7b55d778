"""Fixtures shared by the test modules."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture
def scorecard_profile():
    """``fit(seed, name)``: a slit of the scorecard's draw (``benchmarks/scorecard.py``), and its trace and
    profile fitted as ``optx_spec``'s ``optx_psf`` fits them: to replay one of its rows."""
    sys.path.insert(0, str(BENCHMARKS))
    import scorecard
    import scorecard_scenes

    from jwst_optextract.drivers.fit import fit_slit_profile
    from jwst_optextract.io import read_slit
    from jwst_optextract.steps import PsfFitStep

    def fit(seed: int, name: str):
        scene = scorecard.drawn_slit(seed, name)
        model = scorecard_scenes.slit_models([scene])
        params = PsfFitStep(scene_background="smooth").fit_parameters(model)
        trace, profile = fit_slit_profile(read_slit(model.slits[0], model, scene.name), None, params)
        return scene, trace, profile

    return fit


@pytest.fixture
def scorecard_nods():
    """``combine(seed, source_id)``: a nod set of the scorecard's draw, combined as ``optx_combine`` combines it
    (default parameters), and its scorecard row: ``(exposures, row)``."""
    sys.path.insert(0, str(BENCHMARKS))
    import numpy as np
    import scorecard
    import scorecard_scenes

    from jwst_optextract.drivers.combine import CombineParameters, combine_source
    from jwst_optextract.io.sources import group_sources

    def combine(seed: int, source_id: int):
        exposures = scorecard.drawn_nod_set(seed, source_id)
        (group,), _ = group_sources(scorecard_scenes.nod_models([exposures]))
        spectrum = combine_source(group, CombineParameters()).spectrum
        error = np.sqrt(spectrum.var_poisson + spectrum.var_rnoise + spectrum.var_flat)
        return exposures, scorecard.score_nods(spectrum.flux, error, exposures, scorecard.BACKGROUND_DEGREE)

    return combine
