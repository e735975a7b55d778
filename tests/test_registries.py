"""Profile kinds and background methods are registries: a kind or method added at runtime works in the steps."""

from types import SimpleNamespace
from typing import ClassVar

import numpy as np
import pytest
from stpipe.config_parser import ValidationError

from jwst_optextract import BackgroundStep, OptimalExtractStep, PsfFitStep, simulate
from jwst_optextract.core import background, profiles
from jwst_optextract.drivers.fit import FitParameters, fit_profile, fit_trace
from jwst_optextract.io.products import profile_entry, profile_from_entry
from jwst_optextract.io import read_slit

SCENE = {"nx": 512, "ny": 32, "flux": 50.0, "width": (1.0, 1.5), "trace_curvature": 1.0, "seed": 21}


class WideGaussian(profiles.Profile):
    """A toy kind: the trace fit's Gaussian widened by a quarter, with nothing fitted of its own."""

    derivative_step: ClassVar[float] = 0.1

    def __init__(self, sigma: np.ndarray):
        self.sigma = np.asarray(sigma, float)

    def evaluate(self, ny, center):
        return profiles.gaussian_profile(ny, center, self.sigma)

    @property
    def n_parameters(self) -> float:
        return 0.0

    def to_entry(self):
        return {"sigma": self.sigma}

    @classmethod
    def from_entry(cls, entry, center, ny):
        return cls(entry.sigma)

    @classmethod
    def fit(cls, problem):
        return cls(1.25 * problem.gaussian.sigma)


class SlitMedian(background.BackgroundMethod):
    """A toy method: one median of the slit's background pixels per integration, without variance."""

    summary: ClassVar[str] = "toy: one median of the whole slit"

    @classmethod
    def estimate(cls, data, mask, variances, params):
        level = np.median(data[mask])
        zeros = np.zeros(data.shape)
        return background.BackgroundEstimate(np.full(data.shape, level), zeros, zeros, zeros, mask)


@pytest.fixture
def toy_kind():
    profiles.register("wide_gaussian")(WideGaussian)
    yield "wide_gaussian"
    del profiles.PROFILES["wide_gaussian"]


@pytest.fixture
def toy_method():
    background.register("slit_median")(SlitMedian)
    yield "slit_median"
    del background.METHODS["slit_median"]


@pytest.fixture(scope="module")
def scene():
    model, truth = simulate.make_slit(background=0.0, **SCENE)
    return model, truth


def test_a_kind_registered_at_runtime_is_fitted_saved_and_read_back(scene, toy_kind, tmp_path):
    model, truth = scene
    psf = PsfFitStep.call(model, profile_kind=toy_kind)
    entry = psf.profiles[0]
    assert entry.kind == toy_kind
    gaussian = PsfFitStep.call(model, profile_kind="gaussian").profiles[0]
    np.testing.assert_allclose(entry.sigma, 1.25 * gaussian.sigma, rtol=1e-12)
    np.testing.assert_allclose(entry.values.sum(axis=0), 1.0, rtol=1e-9)

    direct = OptimalExtractStep.call(model, profile_kind=toy_kind).spec[0].spec_table
    path = tmp_path / "toy_psf.asdf"
    psf.save(path)
    given = OptimalExtractStep.call(model, psf=str(path)).spec[0].spec_table
    np.testing.assert_array_equal(direct["FLUX"], given["FLUX"])
    ok = np.isfinite(direct["FLUX"])
    assert ok.mean() > 0.95
    # the widened profile still extracts the flux (optimal extraction is unbiased for any profile, noisier)
    assert abs(direct["FLUX"][ok].sum() / truth.flux[ok].sum() - 1) < 0.02


def test_a_kind_is_unknown_once_removed(scene, toy_kind):
    del profiles.PROFILES[toy_kind]
    try:
        with pytest.raises(ValidationError):
            OptimalExtractStep.call(scene[0], profile_kind=toy_kind)
    finally:
        profiles.PROFILES[toy_kind] = WideGaussian


def test_a_method_registered_at_runtime_subtracts_and_extracts(toy_method):
    model, truth = simulate.make_slit(background=3.0, **SCENE)
    assert "slit_median: toy: one median of the whole slit" in BackgroundStep.spec
    result = BackgroundStep.call(model, method=toy_method, source_half_width=6.0)
    rows = np.arange(model.data.shape[0])[:, None]
    away = (np.abs(rows - truth.trace[None, :]) > 6) & np.isfinite(model.data)
    level = np.median(model.data[away])
    np.testing.assert_allclose(result.data[away], model.data[away] - level, rtol=1e-5, atol=1e-4)
    table = OptimalExtractStep.call(result).spec[0].spec_table
    ok = np.isfinite(table["FLUX"])
    assert ok.mean() > 0.95
    assert abs(table["FLUX"][ok].sum() / truth.flux[ok].sum() - 1) < 0.02


def test_a_method_is_unknown_once_removed(toy_method):
    model, _ = simulate.make_slit(**SCENE)
    del background.METHODS[toy_method]
    try:
        with pytest.raises(ValidationError):
            BackgroundStep.call(model, method=toy_method)
    finally:
        background.METHODS[toy_method] = SlitMedian


def _gaussian_template(sigma: float) -> profiles.ProfileTemplate:
    wavelength = np.linspace(0.5, 6.0, 12)
    offset = np.arange(-15.0, 15.001, 0.05)
    values = np.exp(-0.5 * (offset[None, :] / sigma) ** 2) * np.ones((wavelength.size, 1))
    return profiles.ProfileTemplate(wavelength, offset, values)


@pytest.mark.parametrize("kind", list(profiles.PROFILES))
def test_every_kind_round_trips_through_its_product_entry(scene, kind):
    model, _ = scene
    slit = read_slit(model, model, model.name)
    params = FitParameters(profile_kind=kind, template=_gaussian_template(1.2))
    trace = fit_trace(slit, params)
    fitted = fit_profile(slit, trace, params)
    assert fitted.kind == kind
    assert isinstance(fitted.model, profiles.PROFILES[kind])
    entry = profile_entry(slit, fitted)
    back = profile_from_entry(SimpleNamespace(**entry), slit)
    assert back.kind == kind and type(back.model) is type(fitted.model)
    np.testing.assert_allclose(back.evaluate(slit.ny), entry["values"], rtol=1e-9, atol=1e-12)
    assert profile_entry(slit, back).keys() == entry.keys()
    assert fitted.model.derivative_step in (0.1, 1.0)
    assert np.isfinite(fitted.n_parameters) and fitted.n_parameters > 0


def test_a_registered_name_cannot_be_taken_twice():
    with pytest.raises(ValueError, match="already registered"):
        profiles.register("gaussian")(WideGaussian)
    with pytest.raises(ValueError, match="already registered"):
        background.register("smooth")(SlitMedian)
