"""Moffat, pair and template profiles, deconvolved and spline traces, against known truth."""

import asdf
import numpy as np
import pytest
from astropy.io import fits
from scipy.special import ndtr

from jwst_optextract import OptimalExtractStep, ProfileModel, PsfFitStep, TraceStep, simulate
from jwst_optextract.core import optimal_extract
from jwst_optextract.exceptions import SlitError
from jwst_optextract.io import read_slit

MOFFAT = {"nx": 4096, "ny": 32, "trace_curvature": 2.0, "trace_tilt": 0.8, "background": 2.0,
          "cosmic_ray_fraction": 0.002, "seed": 5, "profile": "moffat", "width": (1.2, 2.0), "moffat_beta": 2.5}


def _bsub(model, truth):
    model.data = (model.data - truth.background).astype(np.float32)
    return model


def _moffat_scene(flux):
    model, truth = simulate.make_slit(flux=flux, **MOFFAT)
    return _bsub(model, truth), truth


def _assert_reaches_the_true_profile_bound(model, truth, psf):
    """Variance of (f - truth) within 3 % of the extraction with the true profile; bias < 0.1 % or 3 sigma."""
    fitted = OptimalExtractStep().run(model, None, psf).spec[0].spec_table["FLUX"]
    slit = read_slit(model, model, model.name)
    best = optimal_extract(slit.data, truth.profile, slit.var_rnoise, slit.var_poisson, mask=slit.good).flux
    excess = np.var(fitted - truth.flux) / np.var(best - truth.flux) - 1
    assert excess < 0.03, excess
    bias = fitted.sum() - truth.flux.sum()
    cramer_rao = simulate.cramer_rao_variance(truth)
    assert abs(bias) < max(1e-3 * truth.flux.sum(), 3 * np.sqrt(cramer_rao.sum())), bias / truth.flux.sum()


@pytest.mark.parametrize("flux", [200.0, 0.5], ids=["bright", "faint"])
def test_fitted_moffat_reaches_the_true_profile_bound(flux):
    model, truth = _moffat_scene(flux)
    psf = PsfFitStep.call(model, profile_kind="moffat")
    entry = psf.profiles[0]
    assert entry.kind == "moffat"
    assert abs(entry.beta - 2.5) < (0.01 if flux > 1 else 0.15), entry.beta
    np.testing.assert_allclose(entry.alpha, truth.width, rtol=0.01 if flux > 1 else 0.05)
    _assert_reaches_the_true_profile_bound(model, truth, psf)


def test_auto_chooses_the_moffat_for_a_moffat_source():
    model, _ = _moffat_scene(200.0)
    assert PsfFitStep.call(model).profiles[0].kind == "moffat"


def test_the_moffat_finds_its_centre_where_the_slit_cuts_its_wings(scorecard_profile):
    """The scorecard's slit S045 of seed 5656565: a bright Moffat (beta 2.1, S/N 66 per column) 6 rows from the
    edge of a 22-row slit. The Gaussian's trace is 0.014 px off the Moffat's centre there; the Moffat held at
    it widened to fit and took 0.3 % too little flux, and a spline that follows its own centre won (+1.5 %).
    The Moffat fits its offset from the trace: it is chosen, at the true centre."""
    scene, trace, fit = scorecard_profile(5656565, "S045")
    assert scene.kind == "moffat"
    assert fit.kind == "moffat"
    assert abs(np.mean(trace.center - scene.trace)) > 0.01  # the Gaussian's trace is off
    np.testing.assert_allclose(trace.center + fit.model.offset, scene.trace, atol=0.004)
    assert fit.model.beta == pytest.approx(scene.extras["beta"], abs=0.05)


def _write_moffat_template(path, truth, fmt):
    """The scene's true profile as a template: Moffat densities on a 0.05 px grid, alpha linear in wavelength."""
    wavelength_on_trace = truth.wavelength[np.round(truth.trace).astype(int), np.arange(truth.trace.size)]
    alpha = np.polyfit(wavelength_on_trace, truth.width, 1)
    wavelength = np.linspace(0.9, 2.0, 45)
    offset = np.arange(-20.0, 20.001, 0.05)
    profile = (1 + (offset[None] / np.polyval(alpha, wavelength)[:, None]) ** 2) ** -2.5
    if fmt == "fits":
        fits.HDUList([fits.PrimaryHDU(profile), fits.ImageHDU(offset, name="OFFSET"),
                      fits.ImageHDU(wavelength, name="WAVELENGTH")]).writeto(path)
    else:
        asdf.AsdfFile({"profile": profile, "offset": offset, "wavelength": wavelength}).write_to(path)
    return str(path)


@pytest.mark.parametrize("flux, fmt", [(200.0, "fits"), (0.5, "asdf")], ids=["bright-fits", "faint-asdf"])
def test_template_of_the_true_profile_reaches_the_true_profile_bound(tmp_path, flux, fmt):
    model, truth = _moffat_scene(flux)
    template = _write_moffat_template(tmp_path / f"psf.{fmt}", truth, fmt)
    psf = PsfFitStep.call(model, profile_kind="template", template=template)
    entry = psf.profiles[0]
    assert entry.kind == "template"
    assert abs(entry.stretch - 1) < (0.001 if flux > 1 else 0.01), entry.stretch
    _assert_reaches_the_true_profile_bound(model, truth, psf)
    direct = OptimalExtractStep.call(model, profile_kind="template", template=template).spec[0].spec_table["FLUX"]
    via_product = OptimalExtractStep().run(model, None, psf).spec[0].spec_table["FLUX"]
    np.testing.assert_allclose(direct, via_product, rtol=1e-6, atol=1e-6 * np.nanmax(direct))


def test_a_stretched_template_is_stretched_back(tmp_path):
    model, truth = _moffat_scene(200.0)
    truth.width = truth.width / 1.1  # the template is 10 % narrower than the PSF
    template = _write_moffat_template(tmp_path / "psf.fits", truth, "fits")
    psf = PsfFitStep.call(model, profile_kind="template", template=template)
    assert abs(psf.profiles[0].stretch - 1.1) < 0.002, psf.profiles[0].stretch


def test_a_template_that_misses_the_slit_wavelengths_is_a_clear_error(tmp_path):
    model, _truth = _moffat_scene(200.0)
    offset = np.arange(-10.0, 10.001, 0.1)
    path = tmp_path / "short.asdf"
    asdf.AsdfFile({"profile": np.exp(-0.5 * offset**2)[None].repeat(2, 0), "offset": offset,
                   "wavelength": np.array([1.0, 1.5])}).write_to(path)
    with pytest.raises(SlitError, match=r"template covers 1 to 1.5 micron, but the trace reaches 0.9"):
        PsfFitStep.call(model, profile_kind="template", template=str(path))


PAIR = {**MOFFAT, "profile": "double", "width": (0.8, 1.2), "double_separation": 2.5, "double_ratio": 0.6}


@pytest.mark.parametrize("flux", [200.0, 0.5], ids=["bright", "faint"])
def test_fitted_pair_reaches_the_true_profile_bound(flux):
    """Two blended sources of one PSF: the pair's separation, share and width are the truth's, and its
    extraction is as good as the true profile's."""
    model, truth = simulate.make_slit(flux=flux, **PAIR)
    _bsub(model, truth)
    psf = PsfFitStep.call(model, profile_kind="pair")
    entry = psf.profiles[0]
    assert entry.kind == "pair"
    tolerance = 0.01 if flux > 1 else 0.05
    assert abs(entry.separation - 2.5) < 2.5 * tolerance, entry.separation
    np.testing.assert_allclose(entry.share, 0.6 / 1.6, atol=0.4 * tolerance)
    np.testing.assert_allclose(entry.sigma, truth.width, rtol=tolerance)
    _assert_reaches_the_true_profile_bound(model, truth, psf)


@pytest.mark.parametrize("kind", ["moffat", "template", "pair"])
def test_moffat_pair_and_template_products_round_trip(tmp_path, kind):
    model, truth = simulate.make_slit(flux=100.0, **{**(PAIR if kind == "pair" else MOFFAT), "nx": 512})
    template = _write_moffat_template(tmp_path / "psf.fits", truth, "fits")
    psf = PsfFitStep.call(model, profile_kind=kind, template=template)
    psf.save(tmp_path / "x_psf.asdf")
    with asdf.open(tmp_path / "x_psf.asdf") as af:  # plain asdf
        assert af.tree["profiles"][0]["kind"] == kind
    again = OptimalExtractStep.call(model, psf=str(tmp_path / "x_psf.asdf")).spec[0].spec_table["FLUX"]
    direct = OptimalExtractStep().run(model, None, psf).spec[0].spec_table["FLUX"]
    np.testing.assert_allclose(again, direct, rtol=1e-8)
    assert ProfileModel(str(tmp_path / "x_psf.asdf")).profile_for(model.name).kind == kind


def test_a_moffat_product_of_earlier_versions_with_alpha_as_sigma_is_read(tmp_path):
    """Earlier versions wrote the Moffat ``alpha`` under ``sigma``: such products give the same extraction."""
    model, _ = simulate.make_slit(flux=100.0, **{**MOFFAT, "nx": 512})
    psf = PsfFitStep.call(model, profile_kind="moffat")
    entry = psf.profiles[0]
    assert "alpha" in entry and "sigma" not in entry
    psf.save(tmp_path / "new_psf.asdf")
    with asdf.open(tmp_path / "new_psf.asdf", memmap=False) as af:
        af.tree["profiles"][0]["sigma"] = af.tree["profiles"][0].pop("alpha")
        af.write_to(tmp_path / "old_psf.asdf")
    old = OptimalExtractStep.call(model, psf=str(tmp_path / "old_psf.asdf")).spec[0].spec_table["FLUX"]
    new = OptimalExtractStep.call(model, psf=str(tmp_path / "new_psf.asdf")).spec[0].spec_table["FLUX"]
    np.testing.assert_array_equal(old, new)


# Traces -------------------------------------------------------------------


def _rms(a, b):
    return float(np.sqrt(np.mean((np.asarray(a) - b) ** 2)))


@pytest.mark.parametrize("flux, limit", [(200.0, 0.02), (0.5, 0.1)], ids=["bright", "faint-snr5"])
@pytest.mark.parametrize("width", [0.8, 2.0])
@pytest.mark.parametrize("options, method", [
    ({"deconvolve_iterations": 10}, "deconvolved centroids, polynomial"),
    ({"trace_model": "spline"}, "gaussian, spline shape"),
], ids=["deconvolved", "spline"])
def test_data_shaped_traces_keep_the_centre_rms(flux, limit, width, options, method):
    model, truth = simulate.make_slit(nx=2048, ny=32, width=width, trace_curvature=3.0, trace_tilt=1.0,
                                      flux=flux, background=2.0, cosmic_ray_fraction=0.002, seed=4)
    trace = TraceStep.call(_bsub(model, truth), **options).traces[0]
    assert trace.method == method
    assert _rms(trace.center, truth.trace) < limit, _rms(trace.center, truth.trace)


def test_deconvolution_resists_a_blended_neighbour():
    kw = {"nx": 2048, "ny": 32, "width": 1.0, "trace_curvature": 3.0, "trace_tilt": 1.0, "background": 2.0,
              "cosmic_ray_fraction": 0.002}
    model, truth = simulate.make_slit(flux=200.0, seed=4, **kw)
    neighbour, n_truth = simulate.make_slit(flux=100.0, seed=104, trace_center=truth.trace[1024] + 3.0, **kw)
    model.data = (model.data - truth.background + neighbour.data - n_truth.background).astype(np.float32)
    model.var_rnoise = model.var_rnoise + neighbour.var_rnoise
    model.var_poisson = model.var_poisson + neighbour.var_poisson
    plain = _rms(TraceStep.call(model).traces[0].center, truth.trace)
    deconvolved = _rms(TraceStep.call(model, deconvolve_iterations=30).traces[0].center, truth.trace)
    assert deconvolved < 0.5 * plain, (deconvolved, plain)


def test_spline_trace_follows_a_shape_no_polynomial_fits():
    model, truth = simulate.make_slit(nx=2048, ny=32, width=1.0, flux=200.0, seed=11)
    nx, ny = 2048, 32
    x = np.arange(nx)
    trace = 15.3 + 1.5 * np.sin(2 * np.pi * x / 700.0) + 0.5 * np.tanh((x - 1200.0) / 60.0)
    edges = (np.arange(ny + 1)[:, None] - 0.5 - trace) / 1.0
    profile = np.diff(ndtr(edges), axis=0)
    rate = truth.flux * profile
    rng = np.random.default_rng(12)
    exptime, read_noise = 1000.0, 10.0
    data = (rng.poisson(rate * exptime) + rng.normal(0, read_noise, rate.shape)) / exptime
    model.data = data.astype(np.float32)
    model.var_poisson = (np.maximum(data, 0) / exptime).astype(np.float32)
    model.var_rnoise = np.full(data.shape, (read_noise / exptime) ** 2, np.float32)
    model.dq = np.zeros(data.shape, np.uint32)
    spline = TraceStep.call(model, trace_model="spline").traces[0]
    scaled = np.linspace(-1, 1, nx)
    best_polynomial = np.polynomial.legendre.legval(scaled, np.polynomial.legendre.legfit(scaled, trace, 5))
    assert _rms(best_polynomial, trace) > 0.1  # the shape is beyond a low-degree polynomial
    assert _rms(spline.center, trace) < 0.02, _rms(spline.center, trace)
