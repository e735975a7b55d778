"""Tests of :mod:`jwst_optextract.simulate` (synthetic data with known truth)."""

from __future__ import annotations

import time

import numpy as np
import pytest
from stdatamodels.jwst import datamodels

from jwst_optextract import simulate as sim
from jwst_optextract.simulate import (
    SceneConfig,
    SceneTruth,
    cramer_rao_variance,
    make_multislit,
    make_slit,
    make_tso,
    write_example,
)

DO_NOT_USE = 1


def _numeric_profile(func, centre: np.ndarray, ny: int, nsub: int = 1001) -> np.ndarray:
    """Brute-force pixel integration of ``func(dy)`` with ``nsub`` sub-samples per pixel."""
    sub = (np.arange(nsub) + 0.5) / nsub - 0.5  # sub-pixel offsets
    rows = np.arange(ny)[:, None, None] + sub[None, :, None]  # (ny, nsub, 1)
    prof = func(rows - centre[None, None, :]).mean(axis=1)
    return prof / prof.sum(axis=0)


# --------------------------------------------------------------------------- #
# Geometry and profiles
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("profile", ["gaussian", "moffat", "double"])
def test_profile_normalised_and_positive(profile):
    _, truth = make_slit(nx=101, profile=profile, seed=1)
    assert truth.profile.shape == (32, 101)
    np.testing.assert_allclose(truth.profile.sum(axis=0), 1.0, rtol=1e-12)
    assert np.all(truth.profile >= 0)
    np.testing.assert_allclose(truth.width, np.linspace(0.9, 1.6, 101))


def test_trace_shape():
    cfg = SceneConfig(
        nx=201, ny=40, trace_center=18.2, trace_curvature=1.5, trace_tilt=0.8, width=1.0
    )
    _, truth = make_slit(cfg)
    mid = truth.trace[100]
    assert mid == pytest.approx(18.2)
    assert truth.trace[0] - mid == pytest.approx(1.5 - 0.4)
    assert truth.trace[-1] - mid == pytest.approx(1.5 + 0.4)
    # quadratic: the second difference is constant
    np.testing.assert_allclose(np.diff(truth.trace, 2), 8 * 1.5 / 200**2, rtol=1e-6)
    # the profile centroid follows the trace
    rows = np.arange(40)[:, None]
    np.testing.assert_allclose((rows * truth.profile).sum(axis=0), truth.trace, atol=2e-3)
    # default trace centre
    _, t2 = make_slit(nx=11, trace_curvature=0.0, trace_tilt=0.0)
    np.testing.assert_allclose(t2.trace, 32 / 2 - 0.5 + 0.3)


def test_gaussian_profile_is_pixel_integrated():
    _, truth = make_slit(nx=31, ny=20, width=(0.5, 2.0), trace_center=9.7)
    sig = truth.width

    def gauss(dy):
        return np.exp(-0.5 * (dy / sig) ** 2)

    np.testing.assert_allclose(truth.profile, _numeric_profile(gauss, truth.trace, 20), atol=1e-6)


def test_moffat_profile_shape():
    alpha, beta = 6.0, 2.5
    _, truth = make_slit(
        nx=21, ny=64, profile="moffat", width=alpha, moffat_beta=beta, trace_center=31.6
    )

    def moffat(dy):
        return (1 + (dy / alpha) ** 2) ** -beta

    np.testing.assert_allclose(truth.profile, _numeric_profile(moffat, truth.trace, 64), atol=1e-6)
    # FWHM of the (finely sampled) profile: 2 alpha sqrt(2^(1/beta) - 1)
    col = truth.profile[:, 10]
    fine = np.linspace(0, 63, 20001)
    interp = np.interp(fine, np.arange(64), col)
    above = fine[interp >= interp.max() / 2]
    fwhm_expected = 2 * alpha * np.sqrt(2 ** (1 / beta) - 1)
    assert above[-1] - above[0] == pytest.approx(fwhm_expected, rel=0.05)
    # heavy wings compared with a Gaussian of the same FWHM
    _, tg = make_slit(nx=21, ny=64, width=fwhm_expected / 2.3548, trace_center=31.6)
    far = np.abs(np.arange(64) - 31.6) > 3 * fwhm_expected
    assert truth.profile[far, 10].sum() > 100 * tg.profile[far, 10].sum()


def test_double_profile_has_two_peaks():
    sep, ratio = 6.0, 0.5
    _, truth = make_slit(
        nx=51,
        ny=40,
        profile="double",
        width=1.0,
        double_separation=sep,
        double_ratio=ratio,
        trace_center=19.5,
        trace_curvature=0.0,
        trace_tilt=0.0,
    )
    col = truth.profile[:, 25]
    peaks = np.flatnonzero((col[1:-1] > col[:-2]) & (col[1:-1] > col[2:])) + 1
    assert len(peaks) == 2
    assert peaks[1] - peaks[0] == pytest.approx(sep, abs=1)
    assert col[peaks[1]] / col[peaks[0]] == pytest.approx(ratio, rel=0.1)
    # the trace is the flux-weighted centroid
    assert (np.arange(40) * col).sum() == pytest.approx(19.5, abs=1e-3)


def test_wavelength_and_spectrum():
    model, truth = make_slit(
        nx=512, wavelength_range=(1.0, 2.0), lines=3, continuum_slope=0.3, seed=4
    )
    wl_trace = truth.wavelength[np.round(truth.trace).astype(int), np.arange(512)]
    np.testing.assert_allclose(wl_trace[[0, -1]], [1.0, 2.0], atol=0.01)
    assert np.all(np.diff(truth.wavelength, axis=1) > 0)
    assert np.ptp(truth.wavelength[:, 256]) > 0  # small dependence on y
    np.testing.assert_allclose(model.wavelength, truth.wavelength, rtol=1e-6)
    # continuum + positive emission lines with peak <= ~3x the continuum
    cont = 1000 * (1 + 0.3 * (np.arange(512) - 255.5) / 511)
    ratio = truth.flux / cont
    assert np.all(ratio >= 1 - 1e-12) and 1.2 < ratio.max() < 3.1
    assert np.median(ratio) == pytest.approx(1.0, abs=0.01)


# --------------------------------------------------------------------------- #
# Noise model
# --------------------------------------------------------------------------- #
def test_noise_free_data_equal_expected():
    model, truth = make_slit(nx=64, background=20.0, background_gradient=(0.2, -0.3), noise=False)
    np.testing.assert_allclose(model.data, truth.expected, rtol=1e-6)
    # truth.flux is the column sum of the noise-free source image
    np.testing.assert_allclose(truth.source.sum(axis=0), truth.flux, rtol=1e-12)
    bg = truth.background
    assert bg.mean() == pytest.approx(20.0)
    assert bg[-1].mean() / bg[0].mean() == pytest.approx(1.1 / 0.9)
    assert bg[:, -1].mean() / bg[:, 0].mean() == pytest.approx(0.85 / 1.15)


def test_huge_exposure_time_converges_to_expected():
    model, truth = make_slit(nx=64, read_noise=0.0, exptime=1e10, background=5.0)
    np.testing.assert_allclose(model.data, truth.expected, rtol=1e-3, atol=1e-3)


@pytest.fixture(scope="module")
def noisy_cube():
    """Many integrations of a static scene, with background and flat noise."""
    cfg = SceneConfig(
        nx=128,
        ny=16,
        nints=300,
        width=1.2,
        flux=300.0,
        background=3.0,
        exptime=100.0,
        gain=1.5,
        read_noise=12.0,
        flat_error=0.02,
        trace_center=7.6,
        trace_curvature=0.5,
        seed=11,
    )
    return make_slit(cfg)


def test_empirical_variance_matches_truth(noisy_cube):
    model, truth = noisy_cube
    assert truth.variance.shape == model.data.shape == (300, 16, 128)
    assert truth.flux.shape == (300, 128)
    resid = model.data - truth.expected
    z = resid / np.sqrt(truth.variance)
    assert abs(z.mean()) < 0.01  # unbiased (N = 614400 pixels)
    assert z.var() == pytest.approx(1.0, rel=0.01)
    # separately in the source-dominated and read-noise dominated regimes
    exptime, gain, rn = 100.0, 1.5, 12.0
    vmin = truth.variance[0].min()  # read noise + background (+ flat) only
    assert vmin > rn**2 / (exptime * gain) ** 2 + 3.0 * 0.99 / (exptime * gain)
    bright = truth.variance[0] > 10 * vmin  # source dominated
    faint = truth.variance[0] < 1.1 * vmin  # read noise + background dominated
    assert bright.sum() > 100 and faint.sum() > 100
    for sel in (bright, faint):
        emp = resid[:, sel].var(axis=0)  # per pixel over 300 integrations
        assert emp.mean() / truth.variance[0, sel].mean() == pytest.approx(1.0, rel=0.03)


def test_pipeline_variance_arrays(noisy_cube):
    model, truth = noisy_cube
    tg = 100.0 * 1.5
    vp, vr, vf = model.var_poisson, model.var_rnoise, model.var_flat
    assert vp.dtype == vr.dtype == vf.dtype == model.err.dtype == np.float32
    np.testing.assert_allclose(vr, 12.0**2 / tg**2, rtol=1e-6)
    np.testing.assert_allclose(vp, np.maximum(model.data, 0) / tg, rtol=1e-5)
    np.testing.assert_allclose(vf, (0.02 * model.data.astype(float)) ** 2, rtol=1e-5)
    np.testing.assert_allclose(model.err**2, vp + vr + vf, rtol=1e-5)
    total = (vp.astype(float) + vr + vf).mean(axis=0)
    assert total.sum() / truth.variance[0].sum() == pytest.approx(1.0, rel=0.01)
    bright = truth.variance[0] > 10 * vr[0, 0, 0]
    np.testing.assert_allclose(total[bright], truth.variance[0][bright], rtol=0.05)


def test_optimal_weighting_reaches_cramer_rao():
    """Optimal extraction with the TRUE profile and variance attains the CR bound."""
    # pure (white) Gaussian read noise: Poisson variance <0.1% of the total
    model, truth = make_slit(
        nx=256,
        ny=16,
        nints=400,
        exptime=1.0,
        gain=1.0,
        read_noise=1000.0,
        flux=2000.0,
        width=(0.8, 2.0),
        trace_center=7.3,
        trace_curvature=1.0,
        background=0.0,
        seed=5,
    )
    p, v = truth.profile, truth.variance
    info = (p**2 / v).sum(axis=-2)
    est = (p * model.data / v).sum(axis=-2) / info  # (nints, nx)
    cr = cramer_rao_variance(truth)
    assert cr.shape == (400, 256)
    ratio = est.var(axis=0, ddof=1) / cr.mean(axis=0)
    assert ratio.mean() == pytest.approx(1.0, abs=0.05)
    bias = (est - truth.flux).mean(axis=0) / np.sqrt(cr.mean(axis=0) / 400)
    assert abs(bias.mean()) < 0.3 and bias.std() == pytest.approx(1.0, abs=0.2)
    # and in the Poisson-dominated regime, too
    model, truth = make_slit(
        nx=256, ny=16, nints=300, read_noise=1.0, flux=500.0, exptime=10.0, seed=6
    )
    p, v = truth.profile, truth.variance
    est = (p * model.data / v).sum(axis=-2) / (p**2 / v).sum(axis=-2)
    ratio = est.var(axis=0, ddof=1) / cramer_rao_variance(truth).mean(axis=0)
    assert ratio.mean() == pytest.approx(1.0, abs=0.05)


def test_cramer_rao_by_hand():
    model, truth = make_slit(nx=50, ny=12, trace_center=5.5, nan_fraction=0.05, seed=3)
    good = ~truth.flagged
    expected = 1.0 / np.array(
        [
            np.sum(truth.profile[good[:, i], i] ** 2 / truth.variance[good[:, i], i])
            for i in range(50)
        ]
    )
    np.testing.assert_allclose(cramer_rao_variance(truth), expected, rtol=1e-12)
    all_good = np.ones_like(good)
    np.testing.assert_allclose(
        cramer_rao_variance(truth, mask=all_good),
        1 / (truth.profile**2 / truth.variance).sum(axis=0),
    )
    # a fully masked column has infinite variance
    mask = all_good.copy()
    mask[:, 3] = False
    assert np.isinf(cramer_rao_variance(truth, mask=mask)[3])
    # transposed layout gives the same numbers
    _, t2 = make_slit(nx=50, ny=12, trace_center=5.5, nan_fraction=0.05, seed=3, dispersion_axis=2)
    np.testing.assert_allclose(cramer_rao_variance(t2), expected, rtol=1e-12)


# --------------------------------------------------------------------------- #
# Layout, units, defects
# --------------------------------------------------------------------------- #
def test_dispersion_axis_2_is_a_transpose():
    kw = dict(nx=80, ny=20, nan_fraction=0.01, cosmic_ray_fraction=0.01, hot_pixels=2, seed=9)
    m1, t1 = make_slit(**kw)
    m2, t2 = make_slit(dispersion_axis=2, exp_type="MIR_LRS-FIXEDSLIT", **kw)
    assert m2.data.shape == (80, 20)
    for name in ("data", "dq", "err", "var_poisson", "var_rnoise", "var_flat", "wavelength"):
        np.testing.assert_array_equal(getattr(m2, name), getattr(m1, name).T, err_msg=name)
    for name in ("profile", "background", "variance", "wavelength", "cosmic_rays", "flagged"):
        np.testing.assert_array_equal(getattr(t2, name), getattr(t1, name).T, err_msg=name)
    np.testing.assert_array_equal(t2.flux, t1.flux)
    np.testing.assert_array_equal(t2.trace, t1.trace)
    assert t2.dispersion_axis == 2 and m2.meta.wcsinfo.dispersion_direction == 2
    assert m2.meta.instrument.name == "MIRI"
    # the WCS has wavelength along y
    x, y = 7, 55
    assert m2.meta.wcs(x, y)[2] == pytest.approx(m2.wavelength[y, x], rel=1e-6)
    assert m2.meta.wcs(x, y)[2] == pytest.approx(m1.meta.wcs(y, x)[2], rel=1e-12)
    # 3D transposes the last two axes
    m3, t3 = make_slit(nx=30, ny=10, nints=2, dispersion_axis=2, jitter_rms=0.1)
    assert m3.data.shape == t3.variance.shape == t3.profile.shape == (2, 30, 10)
    np.testing.assert_allclose(t3.profile.sum(axis=-1), 1.0)


@pytest.mark.parametrize(
    ("units", "factor", "srctype"),
    [("MJy/sr", sim.MJYSR_PER_DNS, "EXTENDED"), ("MJy", sim.MJY_PER_DNS, "POINT")],
)
def test_units(units, factor, srctype):
    kw = dict(
        nx=64,
        ny=16,
        trace_center=7.5,
        background=2.0,
        flat_error=0.01,
        cosmic_ray_fraction=0.01,
        seed=2,
    )
    m0, t0 = make_slit(**kw)
    m1, t1 = make_slit(units=units, **kw)
    np.testing.assert_allclose(m1.data, m0.data * factor, rtol=1e-6)
    for name in ("var_poisson", "var_rnoise", "var_flat"):
        np.testing.assert_allclose(getattr(m1, name), getattr(m0, name) * factor**2, rtol=1e-6)
    np.testing.assert_allclose(m1.err, m0.err * factor, rtol=1e-6)
    np.testing.assert_allclose(t1.flux, t0.flux * factor, rtol=1e-12)
    np.testing.assert_allclose(t1.background, t0.background * factor, rtol=1e-12)
    np.testing.assert_allclose(t1.variance, t0.variance * factor**2, rtol=1e-12)
    np.testing.assert_allclose(
        cramer_rao_variance(t1), cramer_rao_variance(t0) * factor**2, rtol=1e-12
    )
    assert m1.meta.bunit_data == m1.meta.bunit_err == units
    assert m1.meta.target.source_type == m1.source_type == srctype
    assert m1.meta.cal_step.photom == "COMPLETE" and m0.meta.cal_step.photom == "SKIPPED"
    assert m1.meta.photometry.pixelarea_steradians == pytest.approx(2.0e-13)
    if units == "MJy/sr":
        assert 1e-3 < np.nanmax(m1.data) < 10


def test_defect_injection():
    cfg = SceneConfig(
        nx=200,
        ny=20,
        nints=3,
        trace_center=9.8,
        cosmic_ray_fraction=0.01,
        hot_pixels=5,
        nan_fraction=0.02,
        nan_columns=2,
        flat_error=0.01,
        seed=21,
    )
    model, truth = make_slit(cfg)
    size = 3 * 20 * 200
    assert truth.flagged.shape == truth.cosmic_rays.shape == model.data.shape
    assert truth.flagged.sum() == 2 * 20 * 3 + round(0.02 * size)
    assert truth.cosmic_rays.sum() == round(0.01 * size) + 5 * 3
    assert not np.any(truth.flagged & truth.cosmic_rays)
    # flagged pixels: NaN data/err, zero variances, DO_NOT_USE
    np.testing.assert_array_equal(np.isnan(model.data), truth.flagged)
    np.testing.assert_array_equal(np.isnan(model.err), truth.flagged)
    np.testing.assert_array_equal(model.dq == DO_NOT_USE, truth.flagged)
    assert model.dq.dtype == np.uint32
    for name in ("var_poisson", "var_rnoise", "var_flat"):
        assert np.all(getattr(model, name)[truth.flagged] == 0)
    nan_cols = np.flatnonzero(truth.flagged.all(axis=(0, 1)))
    assert len(nan_cols) == 2
    # cosmic rays / hot pixels: unflagged positive 20-200 sigma spikes
    cr = truth.cosmic_rays
    nsig = (model.data[cr] - truth.expected[cr]) / np.sqrt(truth.variance[cr])
    assert nsig.min() > 12 and nsig.max() < 210
    assert np.all(model.dq[cr] == 0)
    tg = cfg.exptime * cfg.gain
    np.testing.assert_allclose(model.var_poisson[cr], np.maximum(model.data[cr], 0) / tg, rtol=1e-5)
    np.testing.assert_allclose(
        model.var_flat[cr], (0.01 * model.data[cr].astype(float)) ** 2, rtol=1e-5
    )
    # hot pixels are at the same place in every integration
    hot = cr.all(axis=0)
    assert hot.sum() == 5
    # no defects by default
    _, clean = make_slit(nx=64)
    assert not clean.flagged.any() and not clean.cosmic_rays.any()


def test_determinism_and_rng():
    m1, _ = make_slit(nx=64, seed=7)
    m2, _ = make_slit(SceneConfig(nx=64, seed=7))
    m3, _ = make_slit(nx=64, seed=8)
    np.testing.assert_array_equal(m1.data, m2.data)
    assert not np.array_equal(m1.data, m3.data)
    g1, _ = make_slit(nx=64, seed=np.random.default_rng(7))
    np.testing.assert_array_equal(g1.data, m1.data)


def test_invalid_configuration():
    with pytest.raises(TypeError):
        make_slit(not_a_knob=1)
    with pytest.raises(ValueError, match="profile"):
        make_slit(profile="lorentz")
    with pytest.raises(ValueError, match="units"):
        make_slit(units="Jy")
    with pytest.raises(ValueError, match="outside"):
        make_slit(trace_center=200.0, width=0.5)


# --------------------------------------------------------------------------- #
# Models and metadata
# --------------------------------------------------------------------------- #
def test_slit_metadata():
    model, truth = make_slit(nx=128)
    assert isinstance(model, datamodels.SlitModel) and isinstance(truth, SceneTruth)
    assert model.data.dtype == np.float32 and model.wavelength.dtype == np.float32
    meta = model.meta
    assert meta.telescope == "JWST"
    assert meta.instrument.name == "NIRSPEC" and meta.instrument.detector == "NRS1"
    assert (meta.instrument.filter, meta.instrument.grating) == ("F100LP", "G140M")
    assert meta.instrument.fixed_slit == "S200A1"
    assert meta.exposure.type == "NRS_FIXEDSLIT" and meta.exposure.nints == 1
    assert meta.exposure.exposure_time == meta.exposure.effective_exposure_time == 1000.0
    assert meta.wcsinfo.dispersion_direction == 1
    assert meta.observation.date and meta.observation.time
    assert meta.bunit_data == "DN/s" and meta.target.source_type == "POINT"
    assert model.name == "S200A1" and model.source_id == 1 and model.source_name
    assert (model.xsize, model.ysize) == (128, 32) and model.xstart >= 1 and model.ystart >= 1
    assert model.source_xpos == 0.0 and model.source_ypos == 0.0
    # WCS: detector -> slit_frame -> world, consistent with WAVELENGTH and the trace
    wcs = model.meta.wcs
    assert wcs.available_frames == ["detector", "slit_frame", "world"]
    assert wcs.output_frame.name == "world"
    yy, xx = np.mgrid[0:32, 0:128]
    ra, dec, lam = wcs(xx, yy)
    np.testing.assert_allclose(lam, model.wavelength, rtol=1e-6)
    assert np.all(np.isfinite(ra)) and np.all(np.isfinite(dec))
    assert np.isnan(wcs(200.0, 5.0)[2])  # outside the bounding box
    s2d = wcs.get_transform("slit_frame", "detector")
    x_t, y_t = s2d(np.zeros(128), np.zeros(128), lam[16])
    # (x_slit, y_slit) = (0, 0) maps onto the nominal trace
    uu = (x_t - 63.5) / 127
    np.testing.assert_allclose(y_t, 15.8 + 0.5 * uu + 4 * 2.0 * uu**2, atol=1e-9)
    np.testing.assert_allclose(x_t, np.arange(128), atol=0.05)
    np.testing.assert_allclose(wcs.invert(*wcs(10.0, 12.0)), (10.0, 12.0), atol=1e-6)


def test_roundtrip_save(tmp_path):
    model, truth = make_slit(nx=100, nan_fraction=0.01, units="MJy")
    path = tmp_path / "x_cal.fits"
    model.save(path)
    with datamodels.open(path) as back:
        assert isinstance(back, datamodels.SlitModel)
        np.testing.assert_array_equal(back.data, model.data)
        np.testing.assert_array_equal(back.dq, model.dq)
        np.testing.assert_array_equal(back.var_poisson, model.var_poisson)
        assert back.name == "S200A1" and back.meta.bunit_data == "MJy"
        for x, y in [(0, 0), (37, 14), (99, 31)]:
            assert back.meta.wcs(x, y)[2] == pytest.approx(back.wavelength[y, x], rel=1e-6)
        assert back.meta.wcs.bounding_box is not None


def test_make_multislit():
    model, truths = make_multislit(3, nx=64, seed=4)
    assert isinstance(model, datamodels.MultiSlitModel) and len(model.slits) == 3 == len(truths)
    names = [s.name for s in model.slits]
    assert names[0] == "S200A1" and len(set(names)) == 3
    assert [s.source_id for s in model.slits] == [1, 2, 3]
    fluxes = [t.flux.mean() for t in truths]
    assert fluxes[0] > fluxes[1] > fluxes[2]
    assert not np.array_equal(model.slits[0].data, model.slits[1].data)
    assert model.meta.exposure.type == "NRS_FIXEDSLIT"
    for slit, truth in zip(model.slits, truths, strict=True):
        assert slit.data.shape == (32, 64) and slit.meta.wcsinfo.dispersion_direction == 1
        assert slit.meta.wcs(5, 10)[2] == pytest.approx(slit.wavelength[10, 5], rel=1e-6)
        np.testing.assert_allclose(truth.profile.sum(axis=0), 1.0)
    mos, _ = make_multislit(2, nx=64, exp_type="NRS_MSASPEC")
    assert mos.meta.exposure.type == "NRS_MSASPEC"
    assert all(s.shutter_state for s in mos.slits)
    assert len({s.slitlet_id for s in mos.slits}) == 2


def test_make_tso():
    model, truth = make_tso(40, nx=128, jitter_rms=0.05, transit_depth=0.02)
    assert isinstance(model, datamodels.SlitModel)
    assert model.data.shape == model.var_poisson.shape == (40, 32, 128)
    assert model.wavelength.shape == (32, 128)
    assert model.meta.exposure.type == "NRS_BRIGHTOBJ" and model.name == "S1600A1"
    exp = model.meta.exposure
    assert (exp.nints, exp.integration_start, exp.integration_end) == (40, 1, 40)
    it = model.int_times
    assert (
        len(it) == 40
        and "int_start_MJD_UTC" in it.dtype.names
        and "int_mid_BJD_TDB" in it.dtype.names
    )
    np.testing.assert_array_equal(it["integration_number"], np.arange(1, 41))
    assert np.all(np.diff(it["int_mid_MJD_UTC"]) > 0)
    assert truth.flux.shape == truth.trace.shape == (40, 128)
    assert truth.profile.shape == (40, 32, 128)
    white = truth.flux.sum(axis=1)
    assert white.min() / white.max() == pytest.approx(0.98)
    assert white[0] == white.max() and white[20] == white.min()
    shifts = truth.trace[:, 0] - truth.trace[:, 0].mean()
    assert 0.02 < shifts.std() < 0.1
    shape_only = truth.trace - truth.trace[:, :1]  # jitter is a pure shift of the whole trace
    np.testing.assert_allclose(
        shape_only, np.broadcast_to(shape_only[0], shape_only.shape), atol=1e-12
    )
    cube, ctruth = make_tso(
        5,
        nx=64,
        exp_type="MIR_LRS-SLITLESS",
        dispersion_axis=2,
        wavelength_range=(5.0, 12.0),
        slit_name="LRS",
    )
    assert isinstance(cube, datamodels.CubeModel) and cube.data.shape == (5, 64, 32)
    assert cube.meta.instrument.name == "MIRI" and len(cube.int_times) == 5


@pytest.mark.parametrize(
    ("kind", "cls", "ndim"),
    [
        ("nirspec_fs", datamodels.MultiSlitModel, 2),
        ("nirspec_mos", datamodels.MultiSlitModel, 2),
        ("miri_lrs", datamodels.ImageModel, 2),
        ("nirspec_bots", datamodels.SlitModel, 3),
    ],
)
def test_write_example(tmp_path, kind, cls, ndim):
    path = write_example(tmp_path / f"{kind}_cal.fits", kind=kind, seed=1)
    assert path.exists()
    with datamodels.open(path) as model:
        assert type(model) is cls
        target = model.slits[0] if cls is datamodels.MultiSlitModel else model
        assert target.data.ndim == ndim
        assert np.isfinite(target.data).mean() > 0.9
        wl = target.meta.wcs(3, 4)[2]
        assert wl == pytest.approx(target.wavelength[4, 3], rel=1e-6)


def test_write_example_in_directory(tmp_path):
    path = write_example(tmp_path, kind="miri_lrs")
    assert (
        path.parent == tmp_path and path.name.startswith("jw") and path.name.endswith("_cal.fits")
    )
    with datamodels.open(path) as model:
        assert model.meta.exposure.type == "MIR_LRS-FIXEDSLIT"
        assert model.meta.wcsinfo.dispersion_direction == 2
        assert model.meta.bunit_data == "MJy/sr"
    with pytest.raises(ValueError, match="kind"):
        write_example(tmp_path, kind="nircam_grism")


def test_large_cube_is_fast():
    t0 = time.perf_counter()
    model, truth = make_tso(200, nx=2048, ny=32)
    elapsed = time.perf_counter() - t0
    assert model.data.shape == (200, 32, 2048)
    assert elapsed < 15.0
