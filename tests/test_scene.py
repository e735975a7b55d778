"""The scene model: source and background fitted together, tested against known truth."""

import numpy as np
import pytest
from scipy.interpolate import BSpline
from scipy.special import betainc

from jwst_optextract import OptimalExtractionPipeline, simulate
from jwst_optextract.core import SceneBackground, fit_scene, optimal_extract


def _moffat_rows(ny, center, alpha, beta):
    """Pixel-integrated Moffat profile ``(ny, nx)``, normalised over an infinite aperture."""
    def cdf(t):
        z = t / alpha
        return 0.5 + 0.5 * np.sign(z) * betainc(0.5, beta - 0.5, z**2 / (1 + z**2))

    y = np.arange(ny)[:, None]
    return cdf(y + 0.5 - center) - cdf(y - 0.5 - center)


def _winged_scene(ny=25, nx=300):
    x = np.arange(nx)
    P = _moffat_rows(ny, 9.0 + 2.0 * np.sin(x / 120.0), 1.6, 2.5)
    flux = 200.0 + 100.0 * np.sin(x / 30.0)
    y = np.arange(ny)[:, None]
    background = 5.0 + 0.2 * (y - ny / 2) + 0.01 * x
    return P, flux, background, np.full((ny, nx), 16.0)


def _joint_bound(P, V, degree):
    """Per-column Cramér-Rao variance of f with a per-column polynomial background fitted alongside."""
    ny = P.shape[0]
    L = np.polynomial.legendre.legvander(np.linspace(-1, 1, ny), degree)
    A = np.concatenate([P.T[:, :, None], np.broadcast_to(L, (P.shape[1],) + L.shape)], axis=2)  # (nx, ny, K)
    fisher = np.einsum("xyk,xyl,yx->xkl", A, A, 1 / V)
    return np.linalg.inv(fisher)[:, 0, 0]


@pytest.mark.parametrize("kind", ["smooth", "column"])
def test_winged_source_unbiased_at_the_bound(kind):
    """A Moffat source in a short slit with a gradient: no wing flux goes into the background."""
    P, flux, background, var_rnoise = _winged_scene()
    inside = P.sum(axis=0)
    shape = P / inside
    truth = flux * inside
    variance = flux * P + background + var_rnoise
    rng = np.random.default_rng(11)
    errors, reported = [], []
    for _ in range(40):
        data = rng.normal(flux * P + background, np.sqrt(variance))
        result = fit_scene(data, shape, var_rnoise, np.clip(data, 0, None), background=kind, degree=1,
                           reject_sigma=None)
        errors.append(result.flux - truth)
        reported.append(result.var_total)
    errors, reported = np.array(errors), np.array(reported)
    bound = _joint_bound(shape, variance, 1)
    total_sigma = np.sqrt(bound.sum() / errors.shape[0])
    assert abs(errors.sum(axis=1).mean()) < 4 * total_sigma  # no bias, to 0.03 %
    ratio = np.mean(errors**2 / bound)
    # smooth predicts the background under the source from many columns: below the per-column bound
    assert (0.85 if kind == "smooth" else 0.93) < ratio < 1.08
    assert np.mean(reported) == pytest.approx(np.mean(errors**2), rel=0.1)
    # the mask-free scene fit recovers what a known-background extraction would
    known = optimal_extract(data - background, shape, var_rnoise, np.clip(data - background, 0, None),
                            reject_sigma=None)
    assert np.all(np.isfinite(known.flux))


def test_smooth_scene_equals_dense_weighted_least_squares():
    """Amplitudes, background and marginal variance equal an explicit dense fit of all parameters."""
    ny, nx, degree, spacing = 12, 40, 1, 10.0
    rng = np.random.default_rng(3)
    P = _moffat_rows(ny, np.full(nx, 5.3), 1.4, 3.0)
    P /= P.sum(axis=0)
    data = 50 * P + 2.0 + rng.normal(size=(ny, nx))
    var_rnoise = rng.uniform(0.5, 2.0, size=(ny, nx))
    result = fit_scene(data, P, var_rnoise, None, background="smooth", degree=degree, knot_spacing=spacing,
                       reject_sigma=None)
    # dense design: one amplitude per column, then Legendre(y) x B-spline(x) background terms
    n_intervals = round((nx - 1) / spacing)
    edges = np.linspace(0.0, nx - 1.0, n_intervals + 1)
    knots = np.r_[[edges[0]] * 3, edges, [edges[-1]] * 3]
    S = BSpline.design_matrix(np.arange(nx, dtype=float), knots, 3).toarray()
    L = np.polynomial.legendre.legvander(np.linspace(-1, 1, ny), degree)
    rows = []
    for y in range(ny):
        for x in range(nx):
            amplitude = np.zeros(nx)
            amplitude[x] = P[y, x]
            rows.append(np.concatenate([amplitude, np.kron(S[x], L[y])]))
    A = np.array(rows)
    w = 1 / var_rnoise.ravel()
    cov = np.linalg.inv(A.T @ (A * w[:, None]))
    theta = cov @ (A.T @ (w * data.ravel()))
    np.testing.assert_allclose(result.flux, theta[:nx], rtol=1e-8)
    np.testing.assert_allclose(result.var_total, np.diag(cov)[:nx], rtol=1e-8)
    np.testing.assert_allclose(result.background, (A[:, nx:] @ theta[nx:]).reshape(ny, nx), atol=1e-8)
    np.testing.assert_allclose(result.var_rnoise + result.var_poisson + result.var_flat, result.var_total,
                               rtol=1e-6)


@pytest.mark.parametrize("kind", ["smooth", "column", "none"])
def test_project_out_leaves_the_residual_of_each_column_s_weighted_least_squares(kind):
    """What the linear fit re-solves per column (the background's polynomial and the amplitude) is projected out."""
    ny, nx, degree = 9, 7, 2
    rng = np.random.default_rng(5)
    weights = rng.uniform(0.2, 3.0, (ny, nx))
    weights[rng.random((ny, nx)) < 0.2] = 0.0
    profile = _moffat_rows(ny, np.full(nx, 4.2), 1.3, 2.5)
    arrays = {"a": rng.normal(size=(ny, nx)), "b": rng.normal(size=(ny, nx))}
    projected = SceneBackground(kind, degree).project_out(arrays, weights, profile=profile)
    L = np.polynomial.legendre.legvander(np.linspace(-1, 1, ny), degree)
    for x in range(nx):
        A = np.column_stack(([] if kind == "none" else [L[:, j] for j in range(degree + 1)]) + [profile[:, x]])
        w = weights[:, x]
        for name, values in arrays.items():
            coeffs = np.linalg.lstsq(A * np.sqrt(w)[:, None], values[:, x] * np.sqrt(w), rcond=None)[0]
            np.testing.assert_allclose(projected[name][:, x], values[:, x] - A @ coeffs, atol=1e-10)


def test_scene_rejects_cosmic_rays_and_skips_empty_columns():
    P, flux, background, var_rnoise = _winged_scene(nx=120)
    shape = P / P.sum(axis=0)
    rng = np.random.default_rng(5)
    data = rng.normal(flux * P + background, np.sqrt(flux * P + background + var_rnoise))
    data[3, 40] += 500.0  # far from the trace: a background pixel
    data[9, 70] += 800.0  # on the trace
    mask = np.ones(data.shape, bool)
    mask[:, 100] = False
    data[:, 100] = np.nan
    result = fit_scene(data, shape, var_rnoise, np.clip(np.nan_to_num(data), 0, None), mask=mask)
    assert result.rejected[3, 40] and result.rejected[9, 70]
    assert np.isnan(result.flux[100]) and not result.valid[100]
    truth = flux * P.sum(axis=0)
    ok = result.valid
    assert np.all(np.abs(result.flux[ok] - truth[ok]) < 5 * np.sqrt(result.var_total[ok]))


def test_scene_rejects_cosmic_rays_but_not_the_bright_source_its_profile_misses():
    """A bright double fitted with one Gaussian misses its shape by many sigma in every column, smoothly along the
    dispersion: those pixels are the source, not outliers (before, 20 % of the core pixels were rejected and the
    flux came out 3 % low); the cosmic rays, one column wide, still are."""
    rng = np.random.default_rng(5)
    ny, nx, flux = 23, 300, 4000.0
    rows = np.arange(ny)[:, None] * np.ones((1, nx))
    double = np.exp(-0.5 * ((rows - 9.0) / 0.8) ** 2) + 0.75 * np.exp(-0.5 * ((rows - 12.4) / 0.8) ** 2)
    double /= double.sum(axis=0)
    single = np.exp(-0.5 * ((rows - 10.5) / 1.9) ** 2)
    single /= single.sum(axis=0)
    model = flux * double + 2.0
    variance = 4.0 + model
    data = rng.normal(model, np.sqrt(variance))
    rays = rng.random((ny, nx)) < 0.003
    data[rays] += rng.uniform(200.0, 2000.0, rays.sum())
    result = fit_scene(data, single, variance, None, background="smooth", degree=2, knot_spacing=32, reject_sigma=5.0)
    assert (result.rejected & rays).sum() >= 0.9 * rays.sum()
    assert (result.rejected & ~rays).sum() <= 2


def test_scene_of_integrations_fits_each_alone():
    P, flux, background, var_rnoise = _winged_scene(nx=64)
    shape = P / P.sum(axis=0)
    rng = np.random.default_rng(8)
    cube = rng.normal(flux * P + background, 4.0, size=(3,) + P.shape)
    cube[1] += 3.0  # a different background level in one integration
    var_flat = np.full(cube.shape, 0.01)  # per integration, as in a _calints
    var_flat[2] = 0.02
    together = fit_scene(cube, shape, var_rnoise, None, var_flat, chunk_pixels=P.size * 2)
    for index in range(3):
        alone = fit_scene(cube[index], shape, var_rnoise, None, var_flat[index])
        np.testing.assert_allclose(together.var_flat[index], alone.var_flat, rtol=1e-9)
        np.testing.assert_allclose(together.flux[index], alone.flux, rtol=1e-9)
        np.testing.assert_allclose(together.background[index], alone.background, atol=1e-9)


def test_unknown_scene_background_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown scene background 'sky'"):
        fit_scene(np.zeros((5, 5)), np.full((5, 5), 0.2), np.ones((5, 5)), background="sky")


def test_optx_spec_defaults_are_the_scene_model():
    pipeline = OptimalExtractionPipeline.from_config_section(
        OptimalExtractionPipeline.build_config(None)[0])
    assert pipeline.optx_background.skip
    for step in (pipeline.optx_trace, pipeline.optx_psf, pipeline.optx_extract):
        assert step.scene_background == "smooth"
    override = OptimalExtractionPipeline.build_config(None, steps={"optx_background": {"skip": False}})[0]
    assert OptimalExtractionPipeline.from_config_section(override).optx_background.skip is False


@pytest.mark.slow
def test_optx_spec_winged_mos_slit_is_unbiased():
    """End to end: a Moffat source with wings to the slit edges, a background gradient, cosmic rays."""
    model, truth = simulate.make_slit(nx=512, ny=24, profile="moffat", width=(1.8, 2.5), moffat_beta=2.5,
                                      flux=300.0, background=8.0, background_gradient=(0.3, 0.2),
                                      exp_type="NRS_MSASPEC", cosmic_ray_fraction=0.002, seed=21)
    expected = truth.flux * truth.profile.sum(axis=0)
    bound = simulate.cramer_rao_variance(truth)
    spectra = {}
    # "mask": the retired chain, a background fitted outside a fixed 5-row half width, then extracted
    for name, steps in (("scene", {}), ("mask", {"optx_background": {"skip": False, "source_half_width": 5.0},
                                                 **{s: {"scene_background": "none"}
                                                    for s in ("optx_trace", "optx_psf", "optx_extract")}})):
        result = OptimalExtractionPipeline.call(model.copy(), steps=steps)
        spectra[name] = np.asarray(result.spec[0].spec_table["FLUX"], float)
    flux = spectra["scene"]
    ok = np.isfinite(flux)
    assert ok.mean() > 0.95
    bias = (flux[ok].sum() - expected[ok].sum()) / expected[ok].sum()
    sigma = np.sqrt(bound[ok].sum()) / expected[ok].sum()
    assert abs(bias) < max(0.005, 3 * sigma)
    assert np.mean((flux[ok] - expected[ok]) ** 2 / bound[ok]) < 1.3
    # the mask fixed before the source's extent is known takes the wings as background
    masked = spectra["mask"]
    assert (np.nansum(masked) - expected[ok].sum()) / expected[ok].sum() < -0.01


def test_background_settings_travel_as_one_object():
    settings = SceneBackground("column", 2, 16.0)
    assert settings.fitted and not SceneBackground("none").fitted
    P, flux, background, var_rnoise = _winged_scene(nx=50)
    data = flux * P + background
    direct = fit_scene(data, P / P.sum(axis=0), var_rnoise, background="column", degree=2, knot_spacing=16.0)
    np.testing.assert_array_equal(settings.fit(data, P / P.sum(axis=0), var_rnoise).flux, direct.flux)


def _photon_limited_exposures(rng, n_sets, n_exposures=3, ny=30, nx=200, continuum=1000.0):
    """Sets of exposures of one bright source (a narrow emission line at column 100, six times the continuum)
    over a faint sky, in electrons, with the pipeline's data-derived ``VAR_POISSON``; the profile and the flux."""
    from scipy.special import erf

    edges = (np.arange(ny + 1)[:, None] - 0.5 - 14.3) / (1.3 * np.sqrt(2))
    P = np.broadcast_to(0.5 * np.diff(erf(edges), axis=0), (ny, nx)).copy()
    P /= P.sum(axis=0)
    x = np.arange(nx)
    flux = continuum * (1 + 5 * np.exp(-0.5 * ((x - 100) / 0.85) ** 2))
    model = flux * P + 20.0
    for _ in range(n_sets):
        data = rng.poisson(model, (n_exposures, ny, nx)).astype(float) + rng.normal(0.0, 5.0, (n_exposures, ny, nx))
        yield data, np.clip(data, 0, None), np.full(data.shape, 25.0), P, flux


@pytest.mark.parametrize("shared_source", [True, False])
def test_inverse_variance_mean_of_exposures_of_one_source(shared_source):
    """With ``shared_source`` each exposure's Poisson variance follows the others' flux: the inverse-variance mean
    of the exposures is unbiased, and the variances hold at an emission line. Following its own flux (a variance
    higher where the exposure fluctuated up) made the mean low, by half a sigma of the total here."""
    rng = np.random.default_rng(17)
    z, fluxes, variances = [], [], []
    for data, var_poisson, var_rnoise, P, flux in _photon_limited_exposures(rng, 80):
        result = fit_scene(data, P, var_rnoise, var_poisson, background="smooth", degree=2, reject_sigma=None,
                           shared_source=shared_source)
        weights = 1.0 / result.var_total
        mean = np.sum(weights * result.flux, axis=0) / weights.sum(axis=0)
        z.append((mean.sum() - flux.sum()) / np.sqrt(np.sum(1.0 / weights.sum(axis=0))))
        fluxes.append(result.flux)
        variances.append(result.var_total)
    z = np.array(z)
    if not shared_source:
        assert z.mean() < -0.3  # the bias the shared source removes is there without it
        return
    assert abs(z.mean()) < 3.0 / np.sqrt(z.size), z.mean()
    assert 0.7 < z.std() < 1.3
    ratio = np.concatenate(variances).mean(axis=0) / np.concatenate(fluxes).var(axis=0)  # reported / empirical
    assert np.all(np.abs(ratio[98:103] - 1) < 0.25), ratio[98:103]  # the line
    assert abs(ratio[:80].mean() - 1) < 0.1, ratio[:80].mean()  # the continuum


def test_an_exposure_that_misses_columns_leaves_the_others_variances_alone():
    """``shared_source``: an exposure with no pixel of some columns (its trace off the detector) does not enter
    the mean flux the others' Poisson variances follow there."""
    rng = np.random.default_rng(3)
    data, var_poisson, var_rnoise, P, _ = next(_photon_limited_exposures(rng, 1))
    mask = np.ones(data.shape, bool)
    mask[0, :, 150:] = False
    with_it = fit_scene(data, P, var_rnoise, var_poisson, mask=mask, background="smooth", degree=2,
                        reject_sigma=None, shared_source=True)
    without = fit_scene(data[1:], P, var_rnoise[1:], var_poisson[1:], background="smooth", degree=2,
                        reject_sigma=None, shared_source=True)
    np.testing.assert_allclose(with_it.var_total[1:, 160:], without.var_total[:, 160:], rtol=1e-5)
    assert np.all(np.isnan(with_it.flux[0, 160:]))
