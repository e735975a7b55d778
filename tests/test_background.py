"""BackgroundStep and core.background on simulated data with a known background."""

import logging

import numpy as np
import pytest
from stdatamodels.jwst import datamodels

from jwst_optextract import InputError, OptimalExtractStep, SlitError, simulate
from jwst_optextract.drivers import background as background_module
from jwst_optextract.drivers.background import BackgroundParameters, subtract_background
from jwst_optextract.core import background as bkg
from jwst_optextract.core import masking
from jwst_optextract.core.background import solvers
from jwst_optextract.steps.background_step import BackgroundStep

TG = 1000.0  # exposure time x gain of the simulations (e-/DN x s)
NY = 32


def background_image(nx, kind, level=2.0):
    """±25 % across the slit (linear or quadratic) times a smooth ±25 %-ish change along it."""
    v = (np.arange(NY) - (NY - 1) / 2) / (NY - 1)  # -0.5 .. 0.5
    u = (np.arange(nx) - (nx - 1) / 2) / (nx - 1)
    across = {"linear": 1 + 0.5 * v, "quadratic": 1 + 0.3 * v + 0.1 * (12 * v**2 - 1)}[kind]
    along = 1 + 0.4 * u + 0.1 * np.sin(2 * np.pi * np.arange(nx) / 700)
    return level * across[:, None] * along[None, :]


def scene(kind="quadratic", nx=2048, seed=5, flux=0.5, **config):
    """A faint source (S/N ~ 5 per column) on a structured background, with its truth.

    ``simulate`` draws the source (and read noise, cosmic rays, NaNs); the
    background's photons are added here as an independent Poisson draw, so
    the sum is exactly Poisson in the total rate and ``truth.variance``
    gains ``B / TG``.
    """
    model, truth = simulate.make_slit(
        nx=nx, ny=NY, flux=flux, background=0.0, width=(0.9, 1.6), trace_curvature=2.0, trace_tilt=0.8,
        cosmic_ray_fraction=0.001, nan_fraction=0.002, seed=seed, **config,
    )
    simulate.add_background(model, truth, background_image(nx, kind), TG, seed=seed + 1000)
    return model, truth


def flux_statistics(result, truth):
    """Bias of the integrated flux (fraction, and in units of the Cramér–Rao error) and var/CR."""
    table = OptimalExtractStep.call(result).spec[0].spec_table
    cramer_rao = simulate.cramer_rao_variance(truth)
    ok = np.isfinite(table["FLUX"])
    error = (table["FLUX"] - truth.flux)[ok]
    z = error / np.sqrt(cramer_rao[ok])
    bias = error.sum()
    return {
        "bias": bias / truth.flux[ok].sum(),
        "bias_sigma": bias / np.sqrt(cramer_rao[ok].sum()),
        "var_cr": z.var(),
        "reported_cr": np.mean(table["FLUX_ERROR"][ok] ** 2 / cramer_rao[ok]),
        "valid": ok.mean(),
    }


@pytest.fixture(scope="module", params=["linear", "quadratic"])
def faint_scene(request):
    return request.param, *scene(request.param)


def test_smooth_background_reaches_the_known_background_floor(faint_scene):
    kind, model, truth = faint_scene
    stats = flux_statistics(BackgroundStep.call(model, method="smooth"), truth)
    assert stats["valid"] > 0.99
    # The smooth model's own error is correlated along ~knot_spacing columns: in
    # 20 seeds its share of the integrated flux error was 0.8 of the Cramér–Rao
    # error, so the 3 sigma bound is 3 x sqrt(1 + 0.8**2) Cramér–Rao sigmas.
    assert abs(stats["bias"]) < 1e-3 or abs(stats["bias_sigma"]) < 3 * np.sqrt(1 + 0.8**2), (kind, stats)
    assert abs(stats["var_cr"] - 1) < 0.10, (kind, stats)
    assert abs(stats["reported_cr"] - 1) < 0.10, (kind, stats)


def test_per_column_polynomial_is_noisier_than_smooth(faint_scene):
    kind, model, truth = faint_scene
    smooth = flux_statistics(BackgroundStep.call(model, method="smooth"), truth)
    poly = flux_statistics(BackgroundStep.call(model, method="poly"), truth)
    # one column's ~19 background pixels: the background noise rivals the source's
    assert 3 > poly["var_cr"] > 1.5 and smooth["var_cr"] < 1.1, (kind, poly, smooth)
    # and the reported errors include the background's variance
    assert poly["reported_cr"] > smooth["reported_cr"] + 0.1


@pytest.mark.parametrize("method", ["smooth", "poly"])
def test_core_variance_of_the_model_is_the_scatter_of_the_model(method):
    rng = np.random.default_rng(3)
    truth = background_image(1024, "quadratic")
    data = rng.poisson(truth * TG, size=(4, NY, 1024)) / TG + rng.normal(0, 0.01, (4, NY, 1024))
    var_poisson = np.maximum(data, 0) / TG
    mask = ~masking.source_mask(NY, np.full(1024, 15.5), 5)
    fit = getattr(bkg, f"{method}_background")(data, mask, np.full(data.shape, 1e-4), var_poisson)
    inside = np.broadcast_to(~mask, data.shape)
    error = (fit.background - truth)[inside]
    predicted = fit.var_total[inside].mean()
    assert abs(error.var() / predicted - 1) < 0.15, (error.var(), predicted)
    assert abs(error.mean()) < 4 * np.sqrt(predicted / (4 * 1024 / (32 if method == "smooth" else 1)))
    # the components add up, in proportion to the pixels' variance components
    assert np.allclose(fit.var_total, fit.var_poisson + fit.var_rnoise + fit.var_flat)
    share = np.nanmean(fit.var_rnoise[inside] / fit.var_total[inside])
    assert 1e-4 / (2.0 / TG + 1e-4) / 2 < share < 2 * 1e-4 / (1.0 / TG + 1e-4)
    assert np.all(fit.var_flat == 0)


def test_cosmic_rays_are_clipped():
    rng = np.random.default_rng(4)
    data = rng.normal(2.0, 0.05, (NY, 512))
    hits = rng.random(data.shape) < 0.01
    data[hits] += 50.0
    fit = bkg.smooth_background(data, np.ones(data.shape, bool), np.full(data.shape, 0.05**2))
    assert not fit.used[hits].any()
    assert abs(np.mean(fit.background) - 2.0) < 0.002
    unclipped = bkg.smooth_background(data, np.ones(data.shape, bool), np.full(data.shape, 0.05**2),
                                      clip_sigma=None)
    assert np.mean(unclipped.background) - 2.0 > 0.4  # the test can fail


def test_other_methods_on_a_flat_background():
    rng = np.random.default_rng(5)
    data = rng.normal(3.0, 0.1, (2, NY, 600))
    data[..., 14:18, :] += 5.0  # a bright source, masked
    mask = ~masking.source_mask(NY, np.full(600, 15.5), 4)
    var = np.full(data.shape, 0.01)
    for fit, noise in [
        (bkg.column_background(data, mask, var), 0.1 * np.sqrt(np.pi / 2 / 23)),
        (bkg.column_background(data, mask, var, statistic="mean"), 0.1 / np.sqrt(23)),
        (bkg.poly_rows_background(data, mask, var, degree=1), 0.1 * np.sqrt(4 / 600)),
        (bkg.image2d_background(data, mask, var), 0.1 * np.sqrt(np.pi / 2 / 64)),
    ]:
        error = fit.background[..., 15, :] - 3.0
        assert abs(error.mean()) < 0.01
        assert error.std() < 2 * noise
        assert np.all(np.isfinite(fit.var_total))


def test_exposures_median_of_background_exposures_with_variance():
    model, truth = scene("linear", nx=512, seed=8, flux=5.0)
    backgrounds = [scene("linear", nx=512, seed=20 + i, flux=1e-9)[0] for i in range(3)]
    result, background, _ = subtract_background(model, BackgroundParameters(method="exposures"), backgrounds)
    residual = result.data - truth.source
    hits = truth.cosmic_rays | np.any([b.data - truth.background > 0.5 for b in backgrounds], axis=0)
    away = (np.abs(np.arange(NY)[:, None] - truth.trace[None, :]) > 6) & np.isfinite(residual) & ~hits
    # unbiased, and the scatter is what the variance arrays say (science + median of 3)
    assert abs(np.mean(residual[away])) < 4 * np.sqrt(np.mean(result.err[away] ** 2) / away.sum())
    ratio = np.var(residual[away]) / np.mean(result.err[away] ** 2)
    assert abs(ratio - 1) < 0.1, ratio
    assert np.nanmean(background.var_poisson) > 0.3 * np.nanmean(model.var_poisson) / 3
    table = OptimalExtractStep.call(result).spec[0].spec_table
    assert abs(np.nansum(table["FLUX"]) / truth.flux.sum() - 1) < 0.02


def test_nod_differencing_leaves_negative_traces():
    nods = [scene("quadratic", nx=512, seed=30 + i, flux=5.0, trace_center=c)
            for i, c in enumerate((8.3, 15.8, 23.3))]
    model, _ = nods[1]
    others = [m for m, _ in (nods[0], nods[2])]
    result, _, summary = subtract_background(model, BackgroundParameters(method="nod"), others)
    assert summary.subtracted == ["S200A1"]
    profile_rows = np.nanmean(result.data, axis=1)
    assert profile_rows[16] > 0.5 * 5.0 * 0.2  # the positive trace
    assert profile_rows[8] < -0.2 and profile_rows[23] < -0.2  # half-depth negative traces
    expected = model.data - 0.5 * (nods[0][0].data + nods[2][0].data)
    ok = np.isfinite(expected)
    np.testing.assert_allclose(result.data[ok], expected[ok], rtol=1e-5, atol=1e-5)
    # a pixel bad in one other nod is the difference with the remaining one
    assert np.isfinite(result.data).sum() > ok.sum()
    expected_var = model.var_rnoise + 0.25 * (nods[0][0].var_rnoise + nods[2][0].var_rnoise)
    np.testing.assert_allclose(result.var_rnoise[ok], expected_var[ok], rtol=1e-5)


def test_step_products_and_status(tmp_path):
    model, truth = scene("linear", nx=256, seed=9, flux=5.0)
    model.meta.filename = "jw00001001001_01101_00001_nrs1_cal.fits"
    result = BackgroundStep.call(model, save_background=True, output_dir=str(tmp_path))
    assert isinstance(result, datamodels.SlitModel)
    assert result.meta.cal_step.optx_background == "COMPLETE"
    saved = list(tmp_path.glob("*_bkg.fits"))
    assert len(saved) == 1
    with datamodels.open(saved[0]) as background:
        assert np.nanmax(np.abs(background.data - truth.background)) < 0.1
        near = np.abs(np.arange(NY)[:, None] - truth.trace[None, :]) <= 1.5
        assert (background.dq[near] & 1).all()  # the source's pixels were not used
        assert not (background.dq[:5] & 1).all()
    # variances grew by the background model's, and ERR follows
    assert np.all(result.var_poisson[np.isfinite(result.data)] >= model.var_poisson[np.isfinite(result.data)])
    np.testing.assert_allclose(result.err ** 2, result.var_poisson + result.var_rnoise + result.var_flat, rtol=1e-5)


def test_dispersion_along_y_and_integrations():
    model, truth = simulate.make_slit(nx=400, ny=40, nints=3, dispersion_axis=2, exp_type="MIR_LRS-FIXEDSLIT",
                                      background=20.0, background_gradient=(0.2, 0.2), flux=50.0, seed=2)
    result = BackgroundStep.call(model, method="smooth", poly_degree=1)
    assert result.data.shape == model.data.shape == (3, 400, 40)
    residual = result.data - truth.source
    away = np.abs(np.arange(40)[None, :] - truth.trace[:, None]) > 6  # rows = dispersion here
    assert abs(np.nanmean(residual[:, away])) < 0.01
    assert np.nanstd(residual[:, away]) < 1.2 * np.sqrt(np.nanmean(result.err[:, away] ** 2))


def test_source_rows_given_by_the_user(caplog):
    model, _ = scene("linear", nx=256, seed=10, flux=50.0)
    params = BackgroundParameters(method="poly", poly_degree=1, source_ystart=0.0, source_ystop=31.0)
    with pytest.raises(SlitError, match="no background pixel is left"):
        subtract_background(model, params)
    params = BackgroundParameters(method="poly", poly_degree=1, source_ystart=0.0, source_ystop=30.0)
    with caplog.at_level(logging.WARNING, logger="jwst_optextract"):
        result, _, _ = subtract_background(model, params)  # one row left: a constant across the slit
    assert "fitting degree 0 across the slit instead of 1" in caplog.text
    assert abs(np.nanmedian(result.data[25:])) < 0.2 * np.nanmedian(model.data[25:])
    params = BackgroundParameters(method="poly", poly_degree=1, source_ystart=10, source_ystop=21)
    _, background, _ = subtract_background(model, params)
    assert (background.dq[10:22] & 1).all() and not (background.dq[:10] & 1).all()


def test_bad_slit_is_skipped_and_missing_exposures_are_an_input_error(caplog):
    model, _ = simulate.make_multislit(2, nx=200, background=3.0, seed=4)
    model.slits[1].data = np.full(model.slits[1].data.shape, np.nan, np.float32)
    with caplog.at_level(logging.WARNING, logger="jwst_optextract"):
        result = BackgroundStep.call(model)
    assert "Skipping slit" in caplog.text
    assert abs(np.nanmedian(result.slits[0].data)) < 0.1 and np.nanmedian(model.slits[0].data) > 2.5
    with pytest.raises(InputError, match="needs exposures"):
        BackgroundStep.call(model, method="nod")


def test_masking_helpers():
    rng = np.random.default_rng(6)
    data = rng.normal(1.0, 0.01, (2, 20, 100))
    data[1, 5, 50] = 2.0
    good = masking.hot_pixel_mask(data, sigma=8)
    assert not good[1, 5, 50] and good.sum() == data.size - 1
    assert masking.dq_mask(np.array([0, 1, 2, 3]), 2).tolist() == [True, True, False, False]
    assert masking.saturation_mask(np.array([1.0, 5.0, np.nan]), 4.0).tolist() == [True, False, True]
    source = masking.source_mask(10, np.array([2.0, 7.4]), 1.5)
    assert source[:, 0].tolist() == [False, True, True, True, False, False, False, False, False, False]
    assert source[:, 1].nonzero()[0].tolist() == [6, 7, 8]
    mask = masking.good_pixel_mask(data, np.zeros(data.shape, np.uint32), (np.full(data.shape, np.nan),))
    assert not mask.any()
    try:
        import astroscrappy  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="astroscrappy"):
            masking.cosmic_ray_mask(data, np.ones(data.shape))


def banded_spd(rng, n, u, batch):
    """Dense ``(batch, n, n)`` symmetric positive definite matrices of bandwidth ``u``, like normal matrices."""
    factor = np.zeros((batch, n, n))
    for r in range(u // 2 + 1):
        index = np.arange(n - r)
        factor[:, index + r, index] = rng.normal(size=(batch, n - r))
    return factor @ np.swapaxes(factor, -1, -2) + 1e-6 * np.eye(n)


def test_banded_factorisation_solve_and_inverse_equal_dense():
    rng = np.random.default_rng(12)
    n, u, batch = 40, 6, 3
    dense = banded_spd(rng, n, u, batch)
    band = np.zeros((u + 1, n, batch))
    for r in range(u + 1):
        index = np.arange(n - r)
        band[r, : n - r] = dense[:, index + r, index].T
    rhs = rng.normal(size=(n, batch))
    factor = solvers.ldl_banded(band)
    expected = np.linalg.solve(dense, rhs.T[..., None])[..., 0].T
    np.testing.assert_allclose(solvers.solve_ldl_banded(factor, rhs), expected, rtol=1e-8,
                               atol=1e-10 * np.abs(expected).max())
    inverse = np.linalg.inv(dense)
    selected = solvers.banded_inverse(factor)
    assert selected.shape == band.shape
    for r in range(u + 1):
        index = np.arange(n - r)
        np.testing.assert_allclose(selected[r, : n - r], inverse[:, index + r, index].T, rtol=1e-8,
                                   atol=1e-10 * np.abs(inverse).max())
        assert np.all(selected[r, n - r :] == 0)


@pytest.mark.parametrize("method", ["smooth", "poly"])
def test_core_fit_equals_the_dense_weighted_least_squares(method):
    """Without clipping or Poisson noise the fit is one weighted least-squares problem per integration."""
    rng = np.random.default_rng(13)
    nint, ny, nx, degree = 2, 12, 150, 2
    data = rng.normal(3.0, 1.0, (nint, ny, nx))
    var = rng.uniform(0.5, 2.0, data.shape)
    mask = rng.random(data.shape) > 0.1
    mask[1, :, 30:130] = False  # wider than a spline (4 knot intervals): some splines have no data
    fit = getattr(bkg, f"{method}_background")(data, mask, var, degree=degree, clip_sigma=None,
                                                **({"knot_spacing": 20.0} if method == "smooth" else {}))
    along = solvers.spline_design(nx, 20.0).toarray() if method == "smooth" else np.eye(nx)
    across = solvers.legendre_basis(ny, degree)  # (K, ny)
    design = np.einsum("xi,ay->yxia", along, across).reshape(ny * nx, -1)
    for i in range(nint):
        w = (mask[i] / var[i]).ravel()
        normal = design.T @ (w[:, None] * design)
        cov = np.linalg.pinv(normal, rcond=1e-10, hermitian=True)
        model = (design @ cov @ (design.T @ (w * data[i].ravel()))).reshape(ny, nx)
        variance = np.sum((design @ cov) * design, axis=1).reshape(ny, nx)
        missing = ~np.isfinite(fit.background[i])
        # NaN in whole columns, where a spline without (enough) data is active: in integration 1's gap
        assert np.all(missing == missing[0]) and not missing[0, :15].any() and not missing[0, 140:].any()
        assert missing[0, 40:120].all() == (i == 1) and missing.any() == (i == 1)
        scale = np.abs(model[~missing]).max()
        np.testing.assert_allclose(fit.background[i][~missing], model[~missing], rtol=1e-4, atol=1e-5 * scale)
        np.testing.assert_allclose(fit.var_total[i][~missing], variance[~missing], rtol=1e-3)
        # (a column without pixels of its own, bridged by the splines, splits its variance in three equal parts)
        observed = np.broadcast_to(mask[i].any(axis=0), missing.shape)
        np.testing.assert_allclose(fit.var_rnoise[i][observed], fit.var_total[i][observed], rtol=1e-6)
    single = getattr(bkg, f"{method}_background")(data[0], mask[0], var[0], degree=degree, clip_sigma=None,
                                                   **({"knot_spacing": 20.0} if method == "smooth" else {}))
    np.testing.assert_allclose(single.background, fit.background[0], rtol=1e-6)


def _time_series(**kwargs):
    return simulate.make_slit(nx=300, ny=30, nints=7, background=20.0, background_gradient=(0.2, 0.2), flux=50.0,
                              seed=6, **kwargs)


@pytest.mark.parametrize("dispersion_axis", [1, 2])
def test_integrations_in_groups_give_the_whole_cube_result(monkeypatch, dispersion_axis):
    model, _ = _time_series(dispersion_axis=dispersion_axis)
    params = BackgroundParameters(method="smooth", poly_degree=1)
    whole, whole_bkg, whole_summary = subtract_background(model, params)
    frame = model.data.shape[-2] * model.data.shape[-1]
    monkeypatch.setattr(background_module, "_GROUP_PIXELS", 2 * frame)  # groups of 2, 2, 2 and 1 integrations
    grouped, grouped_bkg, grouped_summary = subtract_background(model, params)
    for key in ("data", "dq", "err", "var_poisson", "var_rnoise", "var_flat"):
        np.testing.assert_allclose(getattr(grouped, key), getattr(whole, key), rtol=1e-6, atol=1e-6, err_msg=key)
        np.testing.assert_allclose(getattr(grouped_bkg, key), getattr(whole_bkg, key), rtol=1e-6, atol=1e-6,
                                   err_msg=key)
    assert (grouped_summary.pixels_used, grouped_summary.pixels_clipped) == (
        whole_summary.pixels_used, whole_summary.pixels_clipped)


def test_in_place_subtraction_equals_the_copy_and_keeps_the_input_arrays():
    model, _ = _time_series()
    params = BackgroundParameters(method="smooth", poly_degree=1)
    copied, _, _ = subtract_background(model, params, keep_background=False)
    data = model.data
    in_place, _, _ = subtract_background(model, params, keep_background=False, in_place=True)
    assert in_place is model and model.data is data  # no second cube
    np.testing.assert_array_equal(in_place.data, copied.data)
    np.testing.assert_array_equal(in_place.err, copied.err)


def test_a_failing_group_of_integrations_is_flagged_and_the_others_are_kept(monkeypatch, caplog):
    model, _ = _time_series()
    original = model.data.copy()
    frame = model.data.shape[-2] * model.data.shape[-1]
    monkeypatch.setattr(background_module, "_GROUP_PIXELS", 3 * frame)  # integrations 1-3, 4-6, 7
    run_method = background_module._run_method
    calls = []

    def second_fails(data, *args, **kwargs):
        calls.append(len(data))
        if len(calls) == 2:
            raise np.linalg.LinAlgError("singular")
        return run_method(data, *args, **kwargs)

    monkeypatch.setattr(background_module, "_run_method", second_fails)
    with caplog.at_level(logging.WARNING, logger="jwst_optextract"):
        result, _, summary = subtract_background(model, BackgroundParameters(method="smooth", poly_degree=1))
    assert "no background for integrations 4 to 6 (singular)" in caplog.text
    assert np.isnan(result.data[3:6]).all() and (result.dq[3:6] & 1).all()
    assert np.isfinite(result.data[:3]).mean() > 0.99 and np.isfinite(result.data[6]).mean() > 0.99
    assert len(summary.subtracted) == 1 and not summary.skipped

    # when every group fails, nothing is written and the slit is left as it was
    monkeypatch.setattr(background_module, "_run_method", lambda *a, **k: (_ for _ in ()).throw(ValueError("bad")))
    model.data = original.copy()
    with pytest.raises(SlitError, match="bad"):
        subtract_background(model, BackgroundParameters(method="smooth", poly_degree=1), in_place=True)
    np.testing.assert_array_equal(model.data, original)
