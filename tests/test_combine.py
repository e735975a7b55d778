"""SlitCombineStep (optx_combine) and its core: nod differences, cross-exposure outliers, pooled extraction."""

import json

import numpy as np
import pytest
from stdatamodels.jwst import datamodels
from stdatamodels.jwst.datamodels import dqflags

from jwst_optextract import InputError, SlitCombineStep, SlitError, simulate
from jwst_optextract.drivers.combine import CombineParameters, combine_source
from jwst_optextract.core import combine
from jwst_optextract.io.sources import group_sources

DO_NOT_USE = dqflags.pixel["DO_NOT_USE"]
MOS = dict(exp_type="NRS_MSASPEC", nx=400, ny=25, background=20.0, background_gradient=(0.2, 0.2), flux=20.0,
           cosmic_ray_fraction=0.002, nod_throw=5.0, width=(0.9, 1.3), trace_curvature=0.5)
HOT = (7, 200)  # on the trace of the first nod position


def mos_nods(seed, **overrides):
    """3 exposures at each of 3 nod positions, a hot pixel in all of them and a NaN stripe in one."""
    models, truths = simulate.make_nods(3, 3, seed=seed, **{**MOS, **overrides})
    for model in models:
        model.slits[0].data[HOT] += 50.0
    stripe = (slice(3, 5), slice(100, 140))
    models[4].slits[0].data[stripe] = np.nan
    models[4].slits[0].dq[stripe] |= DO_NOT_USE
    return models, truths


def cramer_rao(truths, models):
    """1 / sum over exposures and good pixels of P**2 / V, with the TRUE profile, background and variance."""
    info = 0.0
    for truth, model in zip(truths, models):
        good = np.isfinite(model.slits[0].data) & ~truth.cosmic_rays.reshape(truth.profile.shape)
        info = info + np.sum(np.where(good, truth.profile**2 / truth.variance, 0.0), axis=0)
    return 1.0 / info


@pytest.fixture(scope="module")
def runs():
    """Each background mode on the same four simulated programs."""
    results = {}
    for seed in range(4):
        models, truths = mos_nods(seed)
        (group,), _ = group_sources(models)
        for background in ("scene", "model", "nod"):
            result = combine_source(group, CombineParameters(background=background))
            results.setdefault(background, []).append((result, truths, models))
    return results


def _statistics(runs):
    bias, var_ratio, chi2 = [], [], []
    for result, truths, models in runs:
        spectrum = result.spectrum
        ok = np.isfinite(spectrum.flux)
        diff = (spectrum.flux - truths[0].flux)[ok]
        variance = (spectrum.var_poisson + spectrum.var_rnoise + spectrum.var_flat)[ok]
        bias.append((diff.sum() / truths[0].flux[ok].sum(), np.sqrt(variance.sum()) / truths[0].flux[ok].sum()))
        var_ratio.append(np.mean(diff**2) / np.mean(cramer_rao(truths, models)[ok]))
        chi2.append(np.mean(diff**2 / variance))
    return np.array(bias), float(np.mean(var_ratio)), float(np.mean(chi2))


def test_scene_background_reaches_the_cramer_rao_bound_of_all_exposures(runs):
    """The default: each exposure's background fitted with its source, the flux the mean of the exposures'.
    Measured: var/CR 1.035 (nod differences 1.40), chi2 1.01."""
    bias, var_ratio, chi2 = _statistics(runs["scene"])
    print(f"scene background: bias {bias[:, 0]}, var/CR {var_ratio:.3f}, chi2 {chi2:.3f}")
    assert np.all((np.abs(bias[:, 0]) < 0.002) | (np.abs(bias[:, 0]) < 3 * bias[:, 1]))
    assert var_ratio < 1.10
    assert 0.85 < chi2 < 1.15


def test_model_background_reaches_the_cramer_rao_bound_of_all_exposures(runs):
    bias, var_ratio, chi2 = _statistics(runs["model"])
    print(f"model background: bias {bias[:, 0]}, var/CR {var_ratio:.3f}, chi2 {chi2:.3f}")
    assert np.all((np.abs(bias[:, 0]) < 0.002) | (np.abs(bias[:, 0]) < 3 * bias[:, 1]))
    assert var_ratio < 1.10
    assert 0.85 < chi2 < 1.15  # the errors say what the scatter is


def test_nod_differences_are_unbiased_with_honest_errors(runs):
    """Nod differences cost the noise of the other nods (here about 1.2-1.5x the bound); the errors know it."""
    bias, var_ratio, chi2 = _statistics(runs["nod"])
    print(f"nod differences: bias {bias[:, 0]}, var/CR {var_ratio:.3f}, chi2 {chi2:.3f}")
    assert np.all((np.abs(bias[:, 0]) < 0.002) | (np.abs(bias[:, 0]) < 3 * bias[:, 1]))
    assert var_ratio < 1.6
    assert 0.85 < chi2 < 1.15


@pytest.mark.parametrize("background, max_var_ratio", [("scene", 1.3), ("nod", 1.6)])
def test_a_winged_source_is_combined_with_its_wings(background, max_var_ratio):
    """A Moffat source in a short slit: the shared Moffat models its wings in the source (and in its negative
    nod images), where a Gaussian left them to the nod differences (several percent low). (With
    ``background="model"`` the background model still takes part of the wings: 1.4 % low here.) Measured
    var/CR (background known): scene 1.19, nod differences 1.51, which cost the noise of the other nods."""
    runs = []
    for seed in range(3):
        models, truths = simulate.make_nods(3, 1, seed=20 + seed, **{**MOS, "profile": "moffat", "moffat_beta": 2.0,
                                                                    "width": (1.2, 1.6), "flux": 40.0})
        (group,), _ = group_sources(models)
        gaussian = combine_source(group, CombineParameters(background="nod", profile_kind="gaussian"))
        runs.append((combine_source(group, CombineParameters(background=background)), truths, models))
    bias, var_ratio, chi2 = _statistics(runs)
    gaussian_bias = np.nansum(gaussian.spectrum.flux - truths[0].flux) / truths[0].flux.sum()
    print(f"winged, {background}: bias {bias[:, 0]} (Gaussian {gaussian_bias:+.4f}), var/CR {var_ratio:.3f}")
    assert gaussian_bias < -0.02  # what the Gaussian gave: the test sees the wings
    assert np.all((np.abs(bias[:, 0]) < 0.003) | (np.abs(bias[:, 0]) < 3 * bias[:, 1]))
    assert 0.8 < chi2 < 1.2
    assert var_ratio < max_var_ratio


def test_auto_takes_nod_differences_where_the_background_is_not_smooth_across_the_slit():
    """Bar-shadow-like dips at fixed detector rows, the same in every exposure: no polynomial across the slit
    describes them, the exposures' own background fits disagree, and ``auto`` takes the nod differences,
    which remove them. Where the background is smooth ``auto`` keeps the scene model."""
    models, truths = simulate.make_nods(3, 1, seed=7, **{**MOS, "cosmic_ray_fraction": 0.0})
    (group,), _ = group_sources(models)
    assert combine_source(group, CombineParameters()).background == "scene"
    for model in models:
        slit = model.slits[0]
        slit.data[[3, 4, 20, 21], :] -= 0.6 * MOS["background"]
    (group,), _ = group_sources(models)
    scene = combine_source(group, CombineParameters(background="scene"))
    result = combine_source(group, CombineParameters())
    assert result.background == "nod"
    truth = truths[0].flux
    biases = []
    for spectrum in (scene.spectrum, result.spectrum):
        ok = np.isfinite(spectrum.flux)
        bias = np.sum(spectrum.flux[ok] - truth[ok]) / truth[ok].sum()
        sigma = np.sqrt(np.sum(spectrum.var_rnoise[ok] + spectrum.var_poisson[ok])) / truth[ok].sum()
        biases.append((bias, sigma))
    print(f"scene model {biases[0][0]:+.4f}, auto (nod) {biases[1][0]:+.4f} ({biases[1][0] / biases[1][1]:+.1f} sigma)")
    assert abs(biases[0][0]) > 0.05  # measured +21.5 %: the test sees the shadows
    assert abs(biases[1][0]) < max(0.004, 3 * biases[1][1])  # measured +0.06 %, 1.1 sigma


DOUBLE = {**MOS, "ny": 35, "profile": "double", "double_separation": 3.0, "double_ratio": 0.6}


@pytest.fixture(scope="module")
def double_nods():
    """Three nod sets (one exposure at each of three positions) of a double-peaked source, 3 px between peaks."""
    return [simulate.make_nods(3, 1, seed=40 + seed, **DOUBLE) for seed in range(3)]


@pytest.mark.slow
def test_a_double_peaked_source_is_combined_with_a_joint_spline(double_nods):
    """Neither a Gaussian nor a Moffat describes two peaks: the best of them, shared by the nods, left the flux
    biased by several percent (as the scorecard's double-peaked nod sets, +3 to +9 %, -48 %); ``auto`` now
    learns the shape as one spline of all exposures, with its negative nod images. Within the scorecard's
    tolerance, max(0.5 %, 3 sigma): here -0.07, -0.39 and +0.22 % (the Gaussian path on a Gaussian source
    of these nods: -0.07, -0.18, +0.15 %); the variance 1.73 times the bound with the background known
    (the Gaussian source's 1.59: nod differences cost the noise of the other nods)."""
    runs, parametric = [], []
    for models, truths in double_nods:
        (group,), _ = group_sources(models)
        runs.append((combine_source(group, CombineParameters()), truths, models))
        parametric.append(combine_source(group, CombineParameters(profile_kind="moffat")).spectrum)
    bias, var_ratio, chi2 = _statistics(runs)
    moffat_bias = [np.nansum(s.flux - t[0].flux) / np.sum(t[0].flux[np.isfinite(s.flux)])
                   for s, (_, t) in zip(parametric, double_nods)]
    print(f"double: bias {bias[:, 0]} (sigma {bias[:, 1]}), Moffat {moffat_bias}, var/CR {var_ratio:.3f}, "
          f"chi2 {chi2:.3f}")
    assert max(abs(b) for b in moffat_bias) > 0.01  # the test sees the second peak
    assert np.all((np.abs(bias[:, 0]) < 0.005) | (np.abs(bias[:, 0]) < 3 * bias[:, 1]))
    assert 0.85 < chi2 < 1.2
    assert var_ratio < 1.9


@pytest.mark.slow
def test_a_scorecard_double_meets_the_nod_target(scorecard_nods):
    """The scorecard's second nod set of seed 485933726 (double-peaked, peaks 2.1 px apart, S/N 17.8): +5.9 %
    (98 sigma) with the best of Gaussian and Moffat; the target of issue 13 is max(0.2 %, 3 sigma) and
    var/CRB_joint <= 1.10 (the bound of all exposures, each with its own background)."""
    exposures, row = scorecard_nods(485933726, 501)
    assert exposures[0].kind == "double"
    assert abs(row["bias_percent"]) < max(0.2, 3 * abs(row["bias_percent"] / row["bias_sigma"])), row
    assert row["var_crb_joint"] < 1.10


@pytest.mark.slow
def test_a_faint_scorecard_double_is_combined_as_a_pair(scorecard_nods):
    """The scorecard's first nod set of seed 2718281 (double-peaked, S/N 1.1 at the peak, no spline at that S/N):
    +10.0 % (9.3 sigma) with the Gaussian; the pair of blended sources, one width and separation shared by all
    exposures and their negative images, gives +0.3 %."""
    exposures, row = scorecard_nods(2718281, 500)
    assert exposures[0].kind == "double"
    assert abs(row["bias_percent"]) < max(0.2, 3 * abs(row["bias_percent"] / row["bias_sigma"])), row
    assert row["var_crb_joint"] < 1.10


@pytest.mark.slow
def test_a_double_whose_gaussian_took_one_source_is_found_as_a_pair(scorecard_nods):
    """The scorecard's third nod set of seed 8282828 (two sources 3.96 px apart, the second with 0.28 of the
    flux, S/N 13.7): the joint Gaussian fitted the brighter one, the pair's starts (multiples of its width)
    stalled 1.1 to 2.0 px apart, and a spline took the profile: -0.79 %, -7.9 sigma. The pair now starts with
    one source on the trace too, as optx_psf's does."""
    exposures, row = scorecard_nods(8282828, 502)
    assert exposures[0].kind == "double" and exposures[0].extras["separation"] == pytest.approx(3.96, abs=0.01)
    assert abs(row["bias_percent"]) < max(0.2, 3 * abs(row["bias_percent"] / row["bias_sigma"])), row
    assert row["var_crb_joint"] < 1.10


@pytest.mark.slow
def test_a_spline_forced_on_a_moffat_source_keeps_its_wings():
    """``profile_kind=spline`` on a winged source: the spline within its support and the Moffat's wings beyond
    it, in the source and in its negative images, recover the flux as the Moffat itself does."""
    runs = []
    for seed in range(3):
        models, truths = simulate.make_nods(3, 1, seed=20 + seed, **{**MOS, "ny": 35, "profile": "moffat",
                                                                    "moffat_beta": 2.0, "width": (1.2, 1.6),
                                                                    "flux": 40.0})
        (group,), _ = group_sources(models)
        runs.append((combine_source(group, CombineParameters(profile_kind="spline")), truths, models))
    bias, var_ratio, chi2 = _statistics(runs)
    print(f"Moffat source, spline: bias {bias[:, 0]} (sigma {bias[:, 1]}), var/CR {var_ratio:.3f}, chi2 {chi2:.3f}")
    assert np.all((np.abs(bias[:, 0]) < 0.002) | (np.abs(bias[:, 0]) < 3 * bias[:, 1]))
    assert 0.85 < chi2 < 1.15
    assert var_ratio < 1.6


def test_a_faint_source_is_not_given_a_spline():
    """Below a median S/N of 3 per column ``auto`` keeps the parametric profiles (a shape learnt from noise is
    biased); the spline must be asked for."""
    from jwst_optextract.core.joint_spline import JointSpline

    models, _ = simulate.make_nods(3, 1, seed=45, **{**DOUBLE, "flux": 0.5, "cosmic_ray_fraction": 0.0})
    (group,), _ = group_sources(models)
    from jwst_optextract.drivers import combine as driver

    chosen = {}
    original = driver.joint_profile

    def spy(*args, **kwargs):
        result = original(*args, **kwargs)
        chosen["shape"] = result[1]
        return result

    driver.joint_profile = spy
    try:
        combine_source(group, CombineParameters())
        assert not isinstance(chosen["shape"], JointSpline)
        combine_source(group, CombineParameters(profile_kind="spline"))
        assert isinstance(chosen["shape"], JointSpline)
    finally:
        driver.joint_profile = original


def test_nods_without_a_wcs_trace_are_traced_with_their_background(scorecard_nods):
    """No WCS source position: each exposure's trace is fitted with its background, not on a nod difference,
    whose negative images the trace fit took for more of them (nine at -12 ... +21 px) and then wandered.
    The scorecard's first nod set of seed 485933726 (a Gaussian source, 36 rows, S/N 12.7): before, -1.6 %
    (-14 sigma) here and +6.2 % through ``strun optx_combine`` in the scorecard."""
    exposures, row = scorecard_nods(485933726, 500)
    assert exposures[0].kind == "gaussian" and exposures[0].wcs_offset is None
    assert row["within_tolerance"], f"bias {row['bias_percent']:.3f} % ({row['bias_sigma']:.1f} sigma)"
    assert row["var_crb_joint"] < 1.3


def test_unknown_profile_kind_is_a_clear_error():
    models, _ = simulate.make_nods(3, 1, seed=5, **MOS)
    (group,), _ = group_sources(models)
    with pytest.raises(Exception, match="unknown profile_kind 'lorentz'"):
        combine_source(group, CombineParameters(profile_kind="lorentz"))


def test_outliers_are_flagged_and_counted(runs):
    for result, truths, _ in runs["nod"]:
        assert result.flagged["repeated"] >= 9  # the hot pixel, in all nine exposures
        n_rays = sum(int(t.cosmic_rays.sum()) for t in truths)
        assert 0.9 * n_rays <= result.flagged["profile"] + result.flagged["off_trace"] <= 1.2 * n_rays


def test_trace_follows_every_nod(runs):
    result, truths, _ = runs["nod"][0]
    true_centers = np.array([t.trace for t in truths])
    assert np.sqrt(np.mean((result.centers - true_centers) ** 2)) < 0.02


def test_nod_variance_propagation_is_exact():
    """The variance pooled_extract reports equals the scatter of many noise realisations."""
    rng = np.random.default_rng(1)
    n_exp, ny, nx = 4, 12, 2000
    positions = np.array([0, 1, 0, 1])
    rows = np.arange(ny)[:, None]
    centers = np.where(positions == 0, 3.0, 8.0)
    profile = np.exp(-0.5 * ((rows[None] - centers[:, None, None]) / 1.0) ** 2) * np.ones((1, 1, nx))
    profile /= profile.sum(axis=1, keepdims=True)
    variance = rng.uniform(0.5, 2.0, (n_exp, ny, 1)) * np.ones((1, 1, nx))
    good = rng.random((n_exp, ny, nx)) > 0.05
    data = 10.0 * profile + 3.0 + rng.normal(size=variance.shape) * np.sqrt(variance)
    variances = {"var_rnoise": variance, "var_poisson": np.zeros_like(variance), "var_flat": np.zeros_like(variance)}
    nods = combine.difference_nods(data, good, variances, positions)
    negatives = nods.share * np.einsum("eo,o...->e...", nods.other.astype(float), np.where(good, profile, 0))
    weights = np.where(nods.good, 1.0 / nods.variances["var_rnoise"], 0.0)
    result = combine.pooled_extract(nods.data, profile, weights, variances, model=profile - negatives, nods=nods)
    assert abs(np.mean(result.flux) - 10.0) < 3 * np.sqrt(np.mean(result.var_rnoise) / nx)  # unbiased
    assert np.var(result.flux) / np.mean(result.var_rnoise) == pytest.approx(1.0, abs=0.08)
    naive = combine.pooled_extract(nods.data, profile, weights, nods.variances, model=profile - negatives)
    assert np.mean(naive.var_rnoise) < 0.9 * np.mean(result.var_rnoise)  # ignoring the shared exposures lies


def test_repeated_outliers_flag_a_defect_not_a_line_that_moves_with_the_nod():
    rng = np.random.default_rng(2)
    data = rng.normal(size=(4, 10, 50))
    positions = np.array([0, 1, 0, 1])
    data[:, 4, 20] += 30.0  # the same detector pixel in every exposure
    data[positions == 0, 2, 30] += 30.0  # a narrow line at the source row of nod 0 only
    data[positions == 1, 7, 30] += 30.0  # ... and of nod 1
    flagged = combine.repeated_outliers(data, np.ones(data.shape, bool), np.ones(data.shape), positions, 5.0)
    assert flagged[4, 20]
    assert not flagged[2, 30] and not flagged[7, 30]
    assert flagged.sum() == 1


def test_weight_types_all_give_unbiased_spectra():
    models, truths = simulate.make_nods(3, 1, seed=5, **{**MOS, "cosmic_ray_fraction": 0.0})
    (group,), _ = group_sources(models)
    for weight_type in ("ivm", "poisson", "exptime", "mask"):
        spectrum = combine_source(group, CombineParameters(background="nod", weight_type=weight_type)).spectrum
        ok = np.isfinite(spectrum.flux)
        sigma = np.sqrt(np.sum(spectrum.var_rnoise[ok] + spectrum.var_poisson[ok]))
        assert abs(np.sum(spectrum.flux[ok] - truths[0].flux[ok])) < 4 * sigma, weight_type


def test_the_scene_model_takes_only_inverse_variance_weights():
    models, _ = simulate.make_nods(3, 1, seed=5, **{**MOS, "cosmic_ray_fraction": 0.0})
    (group,), _ = group_sources(models)
    with pytest.raises(SlitError, match="weight_type 'exptime' needs background nod"):
        combine_source(group, CombineParameters(background="scene", weight_type="exptime"))
    assert combine_source(group, CombineParameters(weight_type="exptime")).background == "nod"


def test_nod_positions_from_the_measured_rows_when_metadata_are_silent():
    models, truths = simulate.make_nods(3, 1, seed=6, **{**MOS, "cosmic_ray_fraction": 0.0})
    for model in models:
        slit = model.slits[0]
        slit.shutter_state = ""
        del slit.meta.wcs
        model.meta.dither.position_number = 1
    (group,), _ = group_sources(models)
    assert group.position_origin == "none"
    result = combine_source(group, CombineParameters())
    assert result.background == "scene"
    true_centers = np.array([t.trace for t in truths])
    assert np.sqrt(np.mean((result.centers - true_centers) ** 2)) < 0.05


# The step ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def program(tmp_path_factory):
    """Two sources in three exposures (nods), on disk, with an association."""
    folder = tmp_path_factory.mktemp("program")
    first, _ = simulate.make_nods(3, 1, seed=7, source_id=11, **{**MOS, "cosmic_ray_fraction": 0.0})
    second, _ = simulate.make_nods(3, 1, seed=8, source_id=12, **{**MOS, "cosmic_ray_fraction": 0.0})
    names = []
    for k, (a, b) in enumerate(zip(first, second)):
        a.slits.append(b.slits[0])
        name = folder / f"jw01234001001_03101_{k + 1:05d}_nrs1_cal.fits"
        a.save(name)
        names.append(name.name)
    association = {"asn_type": "spec3", "products": [{"name": "jw01234-o001_{source_id}_nirspec_clear-prism",
                                                       "members": [{"expname": n, "exptype": "science"}
                                                                   for n in names]}]}
    (folder / "asn.json").write_text(json.dumps(association))
    return folder


def test_association_gives_one_x1d_per_source_with_spec3_names(program, tmp_path):
    results = SlitCombineStep.call(str(program / "asn.json"), save_results=True, output_dir=str(tmp_path))
    assert len(results) == 2
    names = sorted(p.name for p in tmp_path.glob("*.fits"))
    assert names == ["jw01234-o001_s00011_nirspec_clear-prism_x1d.fits",
                     "jw01234-o001_s00012_nirspec_clear-prism_x1d.fits"]
    with datamodels.open(tmp_path / names[0]) as x1d:
        assert isinstance(x1d, datamodels.MultiSpecModel)
        assert x1d.meta.cal_step.optx_combine == "COMPLETE"
        assert x1d.meta.cal_step.extract_1d == "COMPLETE"
        table = x1d.spec[0].spec_table
        assert np.isfinite(table["FLUX"]).mean() > 0.95
        assert x1d.spec[0].source_id == 11


def test_list_of_models_and_container(program):
    files = sorted(str(p) for p in program.glob("jw*.fits"))
    from jwst.datamodels import ModelContainer

    with ModelContainer(files) as container:
        from_container = SlitCombineStep.call(container)
    from_list = SlitCombineStep.call(files)
    for a, b in zip(from_container, from_list):
        np.testing.assert_array_equal(a.spec[0].spec_table["FLUX"], b.spec[0].spec_table["FLUX"])


def test_a_source_that_cannot_be_combined_is_skipped(program, caplog):
    models = [datamodels.open(p) for p in sorted(program.glob("jw*.fits"))]
    for model in models:
        model.slits[1].data[:] = np.nan
        model.slits[1].dq[:] |= DO_NOT_USE
    results = SlitCombineStep.call(models)
    assert len(results) == 1 and results[0].spec[0].source_id == 11
    assert "Skipping" in caplog.text and "12" in caplog.text


def test_wrong_input_is_a_clear_error(tmp_path):
    image = datamodels.ImageModel((5, 5))
    image.meta.filename = "image.fits"
    with pytest.raises(InputError, match=r"no source could be combined|not a supported input"):
        SlitCombineStep.call([image])
    with pytest.raises(InputError, match="association"):
        (tmp_path / "bad.json").write_text("{not json")
        SlitCombineStep.call(str(tmp_path / "bad.json"))


def test_pixel_table_holds_what_the_spectrum_was_solved_from(program, tmp_path):
    (x1d, _) = SlitCombineStep.call(str(program / "asn.json"), save_pixel_table=True, output_dir=str(tmp_path))
    from astropy.table import Table

    table = Table.read(tmp_path / "jw01234-o001_s00011_nirspec_clear-prism_pixels.fits")
    assert set(table.colnames) >= {"exposure", "row", "column", "wavelength", "offset", "data", "weight"}
    assert sorted(set(table["exposure"])) == [0, 1, 2]
    # The flux of a column is the weighted fit of the model to that column's pixels of all exposures.
    column = table[table["column"] == 200]
    w, m, d, p = (np.asarray(column[k], float) for k in ("weight", "model", "data", "profile"))
    flux = np.sum(w * p * d) / np.sum(w * p * m)
    spec = x1d.spec[0].spec_table
    near = np.argmin(np.abs(spec["WAVELENGTH"] - np.average(column["wavelength"], weights=w * p)))
    assert spec.columns["FLUX"].unit in ("DN/s", "DN / s")  # simulated in DN/s, no photometric step
    assert flux == pytest.approx(spec["FLUX"][near], rel=1e-4)


def test_threads_over_sources_give_the_serial_result(program):
    serial = SlitCombineStep.call(str(program / "asn.json"))
    threaded = SlitCombineStep.call(str(program / "asn.json"), maximum_cores="2")
    assert [s.meta.filename for s in serial] == [t.meta.filename for t in threaded]
    for a, b in zip(serial, threaded):
        for column in ("FLUX", "FLUX_ERROR", "WAVELENGTH", "NPIXELS"):
            np.testing.assert_array_equal(a.spec[0].spec_table[column], b.spec[0].spec_table[column])


def test_rectified_image_shows_the_source_on_its_row(program, tmp_path):
    SlitCombineStep.call(str(program / "asn.json"), save_rectified=True, output_dir=str(tmp_path))
    with datamodels.open(tmp_path / "jw01234-o001_s00011_nirspec_clear-prism_rect.fits") as image:
        assert image.data.shape == (25, 400)
        profile = np.nanmedian(image.data, axis=1)
        assert np.argmax(profile) == 12  # the trace, in the middle row
        assert np.isfinite(image.wavelength).all() and np.all(np.diff(image.wavelength[12]) > 0)
