"""Time series with a spline profile: the white light at the photon limit, not following the jitter.

The spline is learnt from the data, which sample it at the sub-pixel phases the trace sweeps. A
bright, narrow (sigma 1.1 px) source on a nearly flat trace is the hard case: the spline must keep
its wings (fitted from pixels the Gaussian start leaves at exactly zero) and must not be
extrapolated beyond the rows each column sampled when the jitter shifts it.
"""

import numpy as np
import pytest

from jwst_optextract import OptimalExtractStep, PsfFitStep, TraceStep, simulate
from jwst_optextract.core.spline_profile import fit_spline_profile
from jwst_optextract.core.fitted import ProfileFit
from jwst_optextract.core.fitted import central_differences as _central_differences
from jwst_optextract.drivers.fit import FitParameters, fit_profile, fit_trace
from jwst_optextract.io.slits import read_slit

NINTS = 60


def _series(tilt):
    return simulate.make_tso(nints=NINTS, nx=512, ny=32, flux=300, width=1.1, jitter_rms=0.03, trace_curvature=0,
                             trace_tilt=tilt, transit_depth=0, background=0, cosmic_ray_fraction=0, seed=11)


def _white_light(x1d, truth):
    table = x1d.spec[0].spec_table
    flux = np.asarray(table["FLUX"], float)
    variance = np.asarray(table["FLUX_VAR_POISSON"], float) + np.asarray(table["FLUX_VAR_RNOISE"], float)
    columns = np.isfinite(flux).all(axis=0)
    assert columns.sum() == truth.flux.shape[1]  # every column extracted: the truth sums the same ones
    white, expected = flux.sum(axis=1), truth.flux.sum(axis=1)
    residual = white / expected - 1
    photon = np.sqrt(variance.sum(axis=1)).mean() / expected.mean()
    jitter = truth.trace.mean(axis=1)
    return residual, photon, jitter


@pytest.mark.slow
@pytest.mark.parametrize("tilt", [0.3, 3.0], ids=["nearly-flat", "tilted"])
def test_spline_profile_white_light_is_at_the_photon_limit_and_ignores_the_jitter(tilt):
    model, truth = _series(tilt)
    trace = TraceStep().run(model)
    psf = PsfFitStep(profile_kind="spline").run(model, trace)
    residual, photon, jitter = _white_light(OptimalExtractStep().run(model, trace, psf), truth)
    assert abs(residual.mean()) < 3e-4
    assert residual.std() < 1.3 * photon
    assert abs(np.corrcoef(residual, jitter)[0, 1]) < 3 / np.sqrt(NINTS)


@pytest.fixture(scope="module")
def flat_series():
    model, truth = _series(0.3)
    slit = read_slit(model, model, "S1600A1")
    params = FitParameters(profile_kind="spline")
    trace = fit_trace(slit, params)
    return slit, truth, trace, fit_profile(slit, trace, params)


def test_spline_keeps_the_wings_the_gaussian_start_leaves_at_zero(flat_series):
    slit, truth, trace, _ = flat_series
    mean = slit.mean_image()
    gaussian = ProfileFit(slit.name, "gaussian", trace.center, trace.gaussian).evaluate(slit.ny)
    assert (gaussian == 0).sum() > 1000  # the start profile is exactly zero far out
    spline = fit_spline_profile(mean.image, mean.good, mean.var_rnoise, mean.var_poisson, trace.center, gaussian,
                                core_half_width=3.3, window=128.0)
    assert np.abs(spline.evaluate(slit.ny, trace.center) - truth.profile.mean(axis=0)).max() < 0.01


def test_shifted_spline_is_held_within_the_rows_each_column_sampled(flat_series):
    slit, truth, trace, profile = flat_series
    assert profile.kind == "spline"
    reference = ProfileFit(slit.name, "gaussian", trace.center, trace.gaussian)
    for shift in (-2.0, -1.0, 1.0, 2.0):
        difference = profile.evaluate(slit.ny, trace.center + shift) - reference.evaluate(slit.ny, trace.center + shift)
        assert np.abs(difference).max() < 0.01, shift
    P = profile.for_trace(slit.ny, trace)
    assert np.abs(P - truth.profile).max() < 0.01


def test_mean_profile_is_the_mean_of_the_per_integration_profiles(flat_series):
    """`ProfileFit.mean_for_trace` (the time series' one background is fitted with it) without the cube."""
    slit, truth, trace, profile = flat_series
    assert trace.shifts.size == slit.n_integrations and np.ptp(trace.shifts) > 0
    np.testing.assert_allclose(profile.mean_for_trace(slit.ny, trace), profile.for_trace(slit.ny, trace).mean(axis=0),
                               atol=1e-6)
    assert np.abs(profile.mean_for_trace(slit.ny, trace) - truth.profile.mean(axis=0)).max() < 0.01


def test_central_differences_are_exact_for_polynomials_of_their_order():
    coefficients = np.array([0.3, -1.2, 0.7, 2.0, -0.4])  # degree 4
    value = np.polynomial.Polynomial(coefficients)
    x0 = 0.37
    first, second = _central_differences(lambda s: value(x0 + s), 0.5, 2)
    assert first == pytest.approx(value.deriv(1)(x0), rel=1e-12)
    assert second == pytest.approx(value.deriv(2)(x0), rel=1e-12)
    first, _ = _central_differences(lambda s: value(x0 + s), 0.5, 1)
    assert first != pytest.approx(value.deriv(1)(x0), rel=1e-3)  # three points are exact to degree 2 only


def test_mean_image_leaves_out_the_cosmic_rays_of_each_integration():
    """0.3 % of the pixels of each of 40 integrations hit: 11 % of the plain mean's pixels would hold a ray."""
    model, truth = simulate.make_tso(nints=40, nx=256, ny=32, flux=300, width=1.1, jitter_rms=0.03,
                                     transit_depth=0.01, background=0.5, cosmic_ray_fraction=0.003, seed=5)
    slit = read_slit(model, model, "S1600A1")
    expected = (truth.flux[:, None, :] * truth.profile).mean(axis=0) + truth.background
    mean = slit.mean_image()
    sigma = np.sqrt(mean.variances.total())
    deviation = np.where(mean.good, (mean.image - expected) / sigma, 0.0)
    # 834 pixels beyond 6 sigma in the plain mean; a ray on the steep flank of the core, where the jitter spreads
    # a pixel's values over the integrations, may stay
    assert (np.abs(deviation) > 6).sum() <= 2
    assert abs(np.mean(deviation[mean.good])) < 0.05  # and nothing of the source clipped with them
    hit = slit.good & ~slit.steady
    assert 0.002 < hit.mean() < 0.004  # the rays, and about nothing else
