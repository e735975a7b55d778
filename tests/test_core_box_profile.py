"""Box weights, trace finding and the Gaussian profile fit on plain arrays."""

import numpy as np
import pytest
from jwst.extract_1d.extract import box_profile

from jwst_optextract.core import (
    aperture_weights, box_extract, find_trace, fit_gaussian_profile, gaussian_profile, trace_aperture,
)


@pytest.mark.parametrize("lower, upper", [(10.3, 20.6), (3.0, 7.0), (0.0, 31.0), (5.5, 6.75), (-2.2, 4.4)])
def test_aperture_weights_are_jwst_box_profile(lower, upper):
    ny, nx = 32, 5
    params = {"dispaxis": 1, "ystart": lower, "ystop": upper, "xstart": 0, "xstop": nx - 1,
              "src_coeff": None, "extract_width": None, "bkg_fit": None}
    expected = box_profile((ny, nx), params, np.ones((ny, nx)))
    np.testing.assert_allclose(aperture_weights(ny, np.full(nx, lower), np.full(nx, upper)), expected)


def test_trace_aperture_is_centred_and_has_the_width():
    lower, upper = trace_aperture(np.array([10.0, 12.3]), 5.0)
    w = aperture_weights(24, lower, upper)
    np.testing.assert_allclose(w.sum(axis=0), 5.0)
    np.testing.assert_allclose((w * np.arange(24)[:, None]).sum(axis=0) / 5.0, [10.0, 12.3])


def test_box_sums_and_propagates_like_jwst():
    rng = np.random.default_rng(0)
    data = rng.normal(size=(10, 6))
    var = rng.uniform(1, 2, size=(10, 6))
    data[4, 2] = np.nan
    w = aperture_weights(10, 2.5, 6.0)
    result = box_extract(data, w, var, var_poisson=2 * var)
    use = np.where(np.isfinite(data), w, 0)
    np.testing.assert_allclose(result.flux, np.nansum(data * use, axis=0))
    np.testing.assert_allclose(result.npixels, use.sum(axis=0))
    np.testing.assert_allclose(result.var_rnoise, (var * use**2).sum(axis=0))
    np.testing.assert_allclose(result.var_poisson, 2 * (var * use**2).sum(axis=0))


def test_box_fill_replaces_bad_pixels_by_the_model():
    P = gaussian_profile(20, np.full(8, 9.7), np.full(8, 1.1))
    data = 100 * P
    data[9, 3] = np.nan
    w = aperture_weights(20, 5.0, 14.0)
    plain = box_extract(data, w, np.ones_like(data))
    filled = box_extract(data, w, np.ones_like(data), fill_profile=P, fill_flux=np.full(8, 100.0))
    assert plain.flux[3] < 80
    np.testing.assert_allclose(filled.flux, 100 * (w * P).sum(axis=0))
    assert filled.filled[3] == 1 and filled.filled.sum() == 1


def _curved_scene(flux, rng, ny=32, nx=2048, noise=True):
    t = np.linspace(-1, 1, nx)
    centre = 15.8 + 0.25 * t + 2.0 * (t**2 - 0.3)
    sigma = 0.9 + 0.35 * (t + 1)
    P = gaussian_profile(ny, centre, sigma)
    expected = flux * P + 10
    data = (rng.poisson(expected) + rng.normal(0, 5, P.shape) - 10) if noise else expected - 10
    return data, np.full(P.shape, 25.0), np.maximum(data + 10, 0), centre, sigma


def test_gaussian_profile_fit_recovers_centre_and_width_exactly_without_noise():
    data, vr, vp, centre, sigma = _curved_scene(3000.0, None, noise=False)
    good = np.ones(data.shape, bool)
    fit = fit_gaussian_profile(data, good, vr, vp, find_trace(data, good), sigma_guess=1.2)
    np.testing.assert_allclose(fit.center, centre, atol=1e-4)
    np.testing.assert_allclose(fit.sigma, sigma, rtol=1e-4)


@pytest.mark.parametrize("flux, centre_rms, width_error", [(3000.0, 0.005, 0.003), (30.0, 0.08, 0.03)])
def test_gaussian_profile_fit_on_noisy_data(flux, centre_rms, width_error):
    rng = np.random.default_rng(7)
    data, vr, vp, centre, sigma = _curved_scene(flux, rng)
    good = np.ones(data.shape, bool)
    hits = rng.random(data.shape) < 0.002
    data[hits] += 500  # unflagged cosmic rays must not pull the fit
    fit = fit_gaussian_profile(data, good, vr, vp, find_trace(data, good), sigma_guess=1.2)
    assert np.sqrt(np.mean((fit.center - centre) ** 2)) < centre_rms
    assert abs(np.mean(fit.sigma / sigma - 1)) < width_error


def test_find_trace_follows_the_brightest_source_and_a_guess():
    rng = np.random.default_rng(3)
    data, _, _, centre, _ = _curved_scene(500.0, rng)
    good = np.ones(data.shape, bool)
    assert np.sqrt(np.mean((find_trace(data, good) - centre) ** 2)) < 0.1
    assert np.sqrt(np.mean((find_trace(data, good, guess=16.0) - centre) ** 2)) < 0.1
