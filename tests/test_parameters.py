"""Step parameters reach the middle layer through one mechanism (``*Parameters.from_step``), one set of defaults."""

from __future__ import annotations

import dataclasses
import json

import pytest

from jwst_optextract import (
    BackgroundStep,
    OptimalExtractStep,
    PsfFitStep,
    SlitCombineStep,
    TraceStep,
    simulate,
)
from jwst_optextract.drivers import extract as extraction
from jwst_optextract.drivers.parameters import (
    BackgroundParameters,
    CombineParameters,
    ExtractionParameters,
    FitParameters,
)
from jwst_optextract.reference_files import packaged_defaults

PAIRS = [
    (ExtractionParameters, OptimalExtractStep),
    (FitParameters, TraceStep),
    (FitParameters, PsfFitStep),
    (CombineParameters, SlitCombineStep),
    (BackgroundParameters, BackgroundStep),
]


@pytest.mark.parametrize(("parameters", "step_class"), PAIRS, ids=lambda c: c.__name__)
def test_dataclass_defaults_agree_with_the_spec_and_the_reference(parameters, step_class):
    step = step_class()
    spec = set(step_class.load_spec_file())
    reference = packaged_defaults()
    fields = [field for field in dataclasses.fields(parameters) if field.name in spec]
    assert fields
    for field in fields:
        default = getattr(parameters(), field.name)
        given = getattr(step, field.name)
        if given is None and field.name in reference:
            assert default == reference[field.name], (
                f"{parameters.__name__}.{field.name} is {default!r}, the reference {reference[field.name]!r}")
        elif given is not None:
            assert default == (tuple(given) if isinstance(given, list) else given), (
                f"{parameters.__name__}.{field.name} is {default!r}, the {step_class.__name__} spec {given!r}")


def test_from_step_takes_the_step_then_the_reference_for_the_exposure_type():
    model, _ = simulate.make_slit(nx=64, seed=1)
    params = ExtractionParameters.from_step(OptimalExtractStep(trace_degree=1, max_reject_iterations=3), model,
                                            keep_scene=True)
    assert (params.trace_degree, params.max_reject_iterations, params.keep_scene) == (1, 3, True)
    assert params.psf_sigma == 0.9  # NRS_FIXEDSLIT in the packaged reference
    assert params.reject_sigma == packaged_defaults()["reject_sigma"]


def test_reject_sigma_zero_disables_the_rejection_in_the_trace_and_profile_fits(monkeypatch):
    """``reject_sigma=0`` used to disable the extraction's rejection only: the fits got 5 sigma back."""
    seen = []

    def recording(function):
        def wrapper(*args, **kwargs):
            seen.append(next(a for a in (*args, *kwargs.values()) if isinstance(a, FitParameters)).reject_sigma)
            return function(*args, **kwargs)
        return wrapper

    monkeypatch.setattr(extraction, "fit_trace", recording(extraction.fit_trace))
    monkeypatch.setattr(extraction, "fit_profile", recording(extraction.fit_profile))
    model, _ = simulate.make_slit(nx=200, flux=100.0, seed=3, cosmic_ray_fraction=0.01)
    OptimalExtractStep.call(model, reject_sigma=0, profile_kind="spline")
    assert len(seen) == 2
    assert not any(seen), f"the trace and profile fits rejected outliers at {seen} sigma"
    assert not CombineParameters.from_step(SlitCombineStep(reject_sigma=0), model).fit_parameters().reject_sigma


def test_psf_step_kind_is_the_deprecated_name_of_profile_kind(caplog):
    """``optx_psf`` called the profile kind ``kind``; configs that set it still work, with a warning."""
    model, _ = simulate.make_slit(nx=64, seed=1)
    with caplog.at_level("WARNING", logger="jwst_optextract"):
        params = PsfFitStep(kind="moffat").fit_parameters(model)
    assert params.profile_kind == "moffat"
    assert "kind is deprecated" in caplog.text and "profile_kind" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="jwst_optextract"):
        params = PsfFitStep(profile_kind="spline").fit_parameters(model)
    assert params.profile_kind == "spline"
    assert "deprecated" not in caplog.text
    assert PsfFitStep().fit_parameters(model).profile_kind == "auto"


def test_fits_take_the_psf_prior_of_the_exposure_and_an_override(tmp_path):
    """The ``optxpsf`` reference's entry for the model's instrument and disperser, or the file given instead."""
    model, _ = simulate.make_slit(nx=64, seed=1)
    model.meta.instrument.name, model.meta.instrument.grating, model.meta.instrument.filter = "NIRSPEC", "G395M", \
        "F290LP"
    priors = [PsfFitStep().fit_parameters(model).psf_prior, TraceStep().fit_parameters(model).psf_prior,
              ExtractionParameters.from_step(OptimalExtractStep(), model).fit_parameters().psf_prior]
    assert [prior.source for prior in priors] == ["NIRSPEC G395M/F290LP"] * 3
    own = {"default": {"sigma_0": 2.0, "k": 0.0, "beta": 4.0, "width_sd": 0.5, "inverse_beta_sd": 0.1}}
    path = tmp_path / "my_optxpsf.json"
    path.write_text(json.dumps(own))
    prior = PsfFitStep(override_optxpsf=str(path)).fit_parameters(model).psf_prior
    assert (prior.source, prior.beta) == ("default", 4.0)
