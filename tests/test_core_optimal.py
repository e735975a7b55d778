"""Optimal extraction on plain arrays, against known truth and the Cramér–Rao bound."""

import numpy as np
import pytest

from jwst_optextract.core import gaussian_profile, optimal_extract


def _profiles(ny, nx):
    rows = np.arange(ny)[:, None]
    centre = 15.3 + 0.5 * np.sin(np.linspace(0, 3, nx))
    gauss = gaussian_profile(ny, centre, np.linspace(0.8, 1.8, nx))
    moffat = (1 + ((rows - centre) / 1.5) ** 2) ** -2.5
    double = (gaussian_profile(ny, centre - 2.5, np.full(nx, 0.9))
              + 0.6 * gaussian_profile(ny, centre + 2.0, np.full(nx, 1.2)))
    return {"gaussian": gauss, "moffat": moffat / moffat.sum(0), "double": double / double.sum(0)}


@pytest.mark.parametrize("kind", ["gaussian", "moffat", "double"])
def test_noise_free_data_of_any_profile_give_the_exact_flux(kind):
    ny, nx = 32, 300
    P = _profiles(ny, nx)[kind]
    flux = np.linspace(10, 500, nx)
    data = flux * P
    mask = np.random.default_rng(0).random(data.shape) > 0.1  # masked pixels must not bias
    result = optimal_extract(data, P, np.full(data.shape, 4.0), var_poisson=np.abs(data), mask=mask)
    np.testing.assert_allclose(result.flux[result.valid], flux[result.valid], rtol=1e-10)
    assert result.valid.mean() > 0.95


def _scene(rng, nx, flux, background, read_noise, ny=32):
    P = gaussian_profile(ny, np.full(nx, 15.3), np.full(nx, 1.2))
    expected = flux * P + background
    counts = rng.poisson(expected) + rng.normal(0, read_noise, expected.shape)
    data = counts - background  # background known and subtracted
    var_rnoise = np.full(data.shape, read_noise**2)
    var_poisson = np.maximum(counts, 0)  # data-derived, as the pipeline gives it
    cramer_rao = 1 / np.sum(P**2 / (expected + read_noise**2), axis=0)
    return data, P, var_rnoise, var_poisson, cramer_rao


@pytest.mark.parametrize(
    "flux, background, read_noise",
    [(2000.0, 10.0, 5.0), (50.0, 10.0, 5.0), (20.0, 0.5, 1.0)],
    ids=["bright", "faint-background-limited", "faint-photon-limited"],
)
def test_bias_and_variance_reach_the_cramer_rao_bound(flux, background, read_noise):
    rng = np.random.default_rng(42)
    nx = 60000
    data, P, vr, vp, cramer_rao = _scene(rng, nx, flux, background, read_noise)
    result = optimal_extract(data, P, vr, vp)
    error = result.flux - flux
    bias = error.mean() / flux
    bias_sigma = np.sqrt(cramer_rao.mean() / nx) / flux
    assert abs(bias) < max(1e-3, 3 * bias_sigma), (bias, bias_sigma)
    ratio = error.var() / cramer_rao.mean()
    assert abs(ratio - 1) < 0.05, ratio
    # the reported variance is the Cramér–Rao value too
    assert abs(result.var_total.mean() / cramer_rao.mean() - 1) < 0.03


def test_data_derived_weights_would_be_biased():
    """Guard for the reason the weights are modelled: plain VAR_POISSON biases faint fluxes low."""
    rng = np.random.default_rng(1)
    data, P, vr, vp, _ = _scene(rng, 40000, 20.0, 0.5, 1.0)
    naive = optimal_extract(data, P, vr + vp, None, reject_sigma=None)
    modelled = optimal_extract(data, P, vr, vp, reject_sigma=None)
    assert naive.flux.mean() / 20.0 - 1 < -0.05
    assert abs(modelled.flux.mean() / 20.0 - 1) < 0.005


def test_unflagged_cosmic_rays_are_rejected_and_do_not_bias():
    rng = np.random.default_rng(3)
    nx = 20000
    data, P, vr, vp, cramer_rao = _scene(rng, nx, 500.0, 10.0, 5.0)
    clean = optimal_extract(data, P, vr, vp)
    hits = (rng.random(data.shape) < 0.002) & (P > 0.01)
    data[hits] += rng.uniform(30, 300, hits.sum()) * np.sqrt(500 * P[hits] + 35)
    vp = vp + np.where(hits, data, 0)
    result = optimal_extract(data, P, vr, vp, reject_sigma=5.0)
    assert result.rejected[hits].mean() > 0.95
    assert result.rejected.sum() < 1.2 * hits.sum()
    assert result.n_rejected.sum() == result.rejected.sum()
    assert abs(result.flux.mean() - clean.flux.mean()) / 500 < 1e-3
    assert result.flux.var() / cramer_rao.mean() < 1.05


def test_a_second_cosmic_ray_in_a_column_is_found_once_the_first_is_gone():
    """A bright ray pulls its column's model up, above a fainter one beside it in the core."""
    rng = np.random.default_rng(4)
    nx = 400
    data, P, vr, vp, cramer_rao = _scene(rng, nx, 500.0, 10.0, 5.0)
    columns = np.arange(10, nx - 10, 20)
    core = np.argmax(P[:, 0])
    sigma = np.sqrt(500 * P[core, 0] + 35)
    data[core, columns] += 1000 * sigma  # the bright one
    data[core + 1, columns] += 40 * sigma  # hidden below the model the bright one inflates
    result = optimal_extract(data, P, vr, vp, reject_sigma=5.0)
    assert result.rejected[core, columns].all() and result.rejected[core + 1, columns].all()
    errors = (result.flux[columns] - 500.0) / np.sqrt(cramer_rao[columns])
    assert np.abs(errors).max() < 5


def test_unextractable_columns_are_nan_and_never_finite():
    ny, nx = 20, 50
    P = gaussian_profile(ny, np.full(nx, 10.0), np.full(nx, 1.0))
    data = 100 * P
    mask = np.ones(data.shape, bool)
    mask[:, 5] = False  # all masked
    mask[8:13, 7] = False  # core masked: ~5% of the profile left
    result = optimal_extract(data, P, np.ones(data.shape), mask=mask, min_coverage=0.3)
    assert not result.valid[5] and np.isnan(result.flux[5]) and np.isnan(result.var_total[5])
    assert not result.valid[7] and np.isnan(result.flux[7])
    good_columns = np.setdiff1d(np.arange(nx), [5, 7])
    assert np.all(np.isfinite(result.flux[good_columns]))


def test_bad_variances_are_masked_not_propagated():
    ny, nx = 20, 40
    P = gaussian_profile(ny, np.full(nx, 10.0), np.full(nx, 1.0))
    data = 50 * P
    vr = np.ones(data.shape)
    vr[10, 3] = np.nan
    vr[10, 4] = -1.0
    vr[10, 6] = np.inf
    data[9, 8] = np.nan
    result = optimal_extract(data, P, vr)
    assert np.all(np.isfinite(result.flux))
    np.testing.assert_allclose(result.flux, 50, rtol=1e-12)


def test_integrations_and_chunks_match_frame_by_frame():
    rng = np.random.default_rng(5)
    nints, ny, nx = 7, 24, 64
    P = gaussian_profile(ny, np.full(nx, 11.0), np.full(nx, 1.3))
    data = (100 * P + rng.normal(0, 1, (nints, ny, nx))).astype(np.float32)
    data[2, 11, 30] += 300  # a cosmic ray in one integration
    vr = np.ones_like(data)
    vp = np.abs(data)
    cube = optimal_extract(data, P, vr, vp, chunk_pixels=ny * nx * 3)
    for i in range(nints):
        frame = optimal_extract(data[i], P, vr[i], vp[i])
        np.testing.assert_allclose(cube.flux[i], frame.flux, rtol=1e-5)
        np.testing.assert_array_equal(cube.rejected[i], frame.rejected)
    assert cube.rejected[2, 11, 30]
    assert cube.flux.dtype == np.float32


def test_scaling_the_data_scales_the_flux_and_variance():
    rng = np.random.default_rng(9)
    ny, nx = 20, 200
    P = gaussian_profile(ny, np.full(nx, 9.5), np.full(nx, 1.1))
    data = 80 * P + rng.normal(0, 1, (ny, nx))
    vr = np.ones(data.shape)
    vp = np.abs(80 * P)
    one = optimal_extract(data, P, vr, vp)
    k = 1e-3
    scaled = optimal_extract(k * data, P, k**2 * vr, k**2 * vp)
    np.testing.assert_allclose(scaled.flux, k * one.flux, rtol=1e-9)
    np.testing.assert_allclose(scaled.var_total, k**2 * one.var_total, rtol=1e-9)


@pytest.mark.parametrize("ny, width", [(32, 1.2), (256, 20.0)])
def test_float32_data_give_the_float64_flux_to_a_part_in_ten_million(ny, width):
    """The flux sums are accumulated in float64: float32 sums over 256 rows would lose ~1e-6."""
    rng = np.random.default_rng(2)
    nints, nx = 4, 2000
    P = gaussian_profile(ny, np.full(nx, ny / 2 + 0.3), np.full(nx, width)).astype(np.float32)
    flux = 1e6
    data = (flux * P + rng.normal(0, 1, (nints, ny, nx)) * np.sqrt(flux * P + 100)).astype(np.float32)
    data[1, ny // 2, 7] += 1e5  # a cosmic ray: the rejection must agree too
    vr = np.full(data.shape, 100, np.float32)
    vp = np.maximum(data, 0)
    single = optimal_extract(data, P, vr, vp)
    double = optimal_extract(*(a.astype(np.float64) for a in (data, P, vr, vp)))
    assert single.flux.dtype == np.float32
    np.testing.assert_allclose(single.flux, double.flux, rtol=3e-7)
    np.testing.assert_allclose(single.var_total, double.var_total, rtol=3e-6)
    np.testing.assert_array_equal(single.rejected, double.rejected)
    assert single.rejected[1, ny // 2, 7]


def test_pixels_without_positive_variance_are_not_used():
    ny, nx = 20, 30
    P = gaussian_profile(ny, np.full(nx, 10.0), np.full(nx, 1.5))
    data = 50 * P
    vr = np.ones(data.shape)
    vr[10, 3] = 0.0  # no variance at all: an infinite weight, so the pixel is dropped
    result = optimal_extract(data, P, vr)
    np.testing.assert_allclose(result.flux, 50, rtol=1e-12)
    np.testing.assert_allclose(result.coverage[3], 1 - P[10, 3] / P[:, 3].sum(), rtol=1e-12)
    np.testing.assert_allclose(np.delete(result.coverage, 3), 1, rtol=1e-12)


def test_inverse_variance_is_the_final_weight_of_every_pixel():
    rng = np.random.default_rng(4)
    ny, nx = 16, 80
    P = gaussian_profile(ny, np.full(nx, 8.0), np.full(nx, 1.2))
    vr = rng.uniform(1, 4, (ny, nx))
    data = 200 * P + rng.normal(0, np.sqrt(vr))
    data[8, 40] += 500  # rejected
    mask = rng.random(data.shape) > 0.05
    result = optimal_extract(data, P, vr, mask=mask, return_inverse_variance=True)
    assert result.rejected[8, 40] and result.rejected.sum() == 1
    used = mask & ~result.rejected
    np.testing.assert_allclose(result.inverse_variance, np.where(used, 1 / vr, 0), rtol=1e-12)


def test_several_leading_axes_are_extracted_as_one():
    rng = np.random.default_rng(6)
    ny, nx = 12, 50
    P = gaussian_profile(ny, np.full(nx, 6.0), np.full(nx, 1.0)) * rng.uniform(0.9, 1.1, (2, 3, ny, nx))
    data = 80 * P + rng.normal(0, 1, P.shape)
    data[1, 2, 6, 20] += 100
    vr = np.ones((ny, nx))
    vp = np.abs(data)
    mask = rng.random((ny, nx)) > 0.05
    cube = optimal_extract(data, P, vr, vp, mask=mask, chunk_pixels=ny * nx * 4)
    flat = optimal_extract(data.reshape(6, ny, nx), P.reshape(6, ny, nx), vr, vp.reshape(6, ny, nx), mask=mask)
    assert cube.flux.shape == (2, 3, nx) and cube.rejected.shape == data.shape
    np.testing.assert_allclose(cube.flux.reshape(6, nx), flat.flux, rtol=1e-12)
    np.testing.assert_array_equal(cube.rejected.reshape(flat.rejected.shape), flat.rejected)
    assert cube.rejected[1, 2, 6, 20] and cube.n_rejected[1, 2, 20] == 1
