"""The accuracy scorecard (`benchmarks/scorecard.py`): the instrument itself, then a small draw through strun.

The first tests check the instrument without the package: its bounds against
a brute-force Fisher matrix, its held-out scene generator, and that a perfect
estimator (truth plus noise of the bound's variance) scores var/CRB about 1
and coverage about 0.683 while a biased or noisy one is flagged. The last
(slow) test runs a small random draw through ``strun`` and asserts loose but
meaningful figures: a correct extraction meets them, a clearly broken one
(biased by percent, noisy by x2, errors off by x2, missing slits) does not.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import scorecard
import scorecard_scenes as scenes


def _brute_force_crb(profile, variance, good, degree):
    """Per column: the Fisher matrix from numerical derivatives of the mean model, inverted."""
    ny, nx = profile.shape
    yy = np.linspace(-1.0, 1.0, ny)
    crb_true, crb_joint = np.empty(nx), np.empty(nx)
    for x in range(nx):
        q = profile[:, x] / profile[:, x].sum()
        keep = good[:, x]

        def mean(theta, q=q):
            return theta[0] * q + sum(theta[1 + k] * yy**k for k in range(degree + 1))

        theta0 = np.array([10.0] + [1.0] * (degree + 1))
        step = 1e-4
        jac = np.array([(mean(theta0 + step * e) - mean(theta0 - step * e)) / (2 * step)
                        for e in np.eye(theta0.size)])[:, keep]
        fisher = jac @ np.diag(1.0 / variance[keep, x]) @ jac.T
        crb_joint[x] = np.linalg.inv(fisher)[0, 0]
        crb_true[x] = 1.0 / fisher[0, 0]
    return crb_true, crb_joint


@pytest.mark.parametrize("degree", [0, 1, 2])
def test_fisher_bounds_match_brute_force(degree):
    rng = np.random.default_rng(3)
    ny, nx = 17, 12
    profile = scenes.pixel_profile("moffat", ny, rng.uniform(5, 11, nx), rng.uniform(1.5, 4, nx), beta=2.5)
    variance = rng.uniform(0.5, 3.0, (ny, nx))
    good = rng.random((ny, nx)) > 0.1
    crb_true, crb_joint = scorecard.fisher_bounds(profile, variance, good, degree)
    ref_true, ref_joint = _brute_force_crb(profile, variance, good, degree)
    np.testing.assert_allclose(crb_true, ref_true, rtol=1e-6)
    np.testing.assert_allclose(crb_joint, ref_joint, rtol=1e-5)
    assert np.all(crb_joint >= crb_true)  # not knowing the background never helps


def test_fisher_bounds_vectorised_over_integrations():
    rng = np.random.default_rng(4)
    profile = scenes.pixel_profile("gaussian", 15, rng.uniform(6, 8, (3, 10)), np.full(10, 2.5))
    variance = rng.uniform(1.0, 2.0, (3, 15, 10))
    good = np.ones((3, 15, 10), bool)
    cube = scorecard.fisher_bounds(profile, variance, good)
    for i in range(3):
        frame = scorecard.fisher_bounds(profile[i], variance[i], good[i])
        np.testing.assert_allclose(cube[0][i], frame[0])
        np.testing.assert_allclose(cube[1][i], frame[1])


def _cropped(scene, nx):
    """The scene's first ``nx`` columns, its FWHM law evaluated over them (as `shape_bound` reads it)."""
    import dataclasses

    fwhm = np.linspace(*scene.extras["fwhm"], scene.nx)[[0, nx - 1]]
    extras = {**scene.extras, "fwhm": tuple(fwhm)}
    profile = scenes.profile_of(extras, scene.ny, scene.trace[:nx])
    columns = {k: getattr(scene, k)[..., :nx] for k in ("data", "dq", "var_poisson", "var_rnoise", "var_flat",
                                                        "wavelength", "flux", "background", "variance", "bad",
                                                        "trace")}
    return dataclasses.replace(scene, profile=profile, extras=extras, **columns)


@pytest.mark.parametrize("kind", ["gaussian", "moffat", "double"])
def test_shape_bound_matches_the_whole_fisher_matrix(kind):
    """`shape_bound`'s Schur complement against the inverse of the whole Fisher matrix of a few columns."""
    rng = np.random.default_rng(11)
    scene = _cropped(scenes.draw_slit(rng, "S001", 1, with_wcs=False, kind=kind, snr=5.0), 9)
    ny, nx = scene.ny, scene.nx
    e = scene.extras
    names = ["f0", "f1", "offset"] + (["ib"] if kind == "moffat" else []) + (["sep", "ratio"] if kind == "double"
                                                                            else [])
    theta0 = {"f0": np.log(e["fwhm"][0]), "f1": np.log(e["fwhm"][1]), "offset": 0.0, "ib": 1 / e.get("beta", 3.0),
              "sep": e.get("separation", 3.0), "ratio": e.get("ratio", 0.5)}
    yy = np.linspace(-1, 1, ny)

    def mean(vector):  # t(x) Q(y, x; shape) + sum_k b_k(x) y**k, all parameters in one vector
        t, b = vector[:nx], vector[nx:4 * nx].reshape(3, nx)
        shape = {**theta0, **dict(zip(names, vector[4 * nx:]))}
        kwargs = {"beta": 1 / shape["ib"]} if kind == "moffat" else {}
        if kind == "double":
            kwargs = {"separation": shape["sep"], "ratio": shape["ratio"]}
        fwhm = np.linspace(np.exp(shape["f0"]), np.exp(shape["f1"]), nx)
        P = scenes.pixel_profile(kind, ny, scene.trace + shape["offset"], fwhm, **kwargs)
        return t * P / P.sum(axis=0) + np.einsum("ky,kx->yx", yy[None, :] ** np.arange(3)[:, None], b)

    vector = np.concatenate([scene.truth, np.ones(3 * nx), [theta0[n] for n in names]])
    step = 1e-5
    jacobian = np.array([(mean(vector + step * u) - mean(vector - step * u)).ravel() / (2 * step)
                         for u in np.eye(vector.size)])
    weights = np.where(scene.bad, 0.0, 1.0 / scene.variance).ravel()
    covariance = np.linalg.inv(jacobian @ (weights[:, None] * jacobian.T))
    total = np.r_[np.ones(nx), np.zeros(vector.size - nx)]
    expected = total @ covariance @ total
    assert scorecard.shape_bound(scene) == pytest.approx(expected, rel=1e-4)
    _, _, crb_joint = scorecard.scene_bounds(scene)
    assert scorecard.shape_bound(scene) >= crb_joint.sum()  # learning the shape never helps


@pytest.mark.parametrize("kind", ["gaussian", "moffat", "double"])
def test_profiles_have_unit_flux_and_the_drawn_width(kind):
    ny = 401
    centre, fwhm = np.array([200.3]), np.array([3.0])
    profile = scenes.pixel_profile(kind, ny, centre, fwhm, beta=3.0, separation=3.0, ratio=0.5)[:, 0]
    assert profile.sum() == pytest.approx(1.0, abs=2e-3 if kind == "moffat" else 1e-9)
    if kind != "double":  # the FWHM of the (finely sampled) profile
        fine = scenes.pixel_profile(kind, 4001, np.array([2000.0]), np.array([30.0]), beta=3.0)[:, 0]
        above = np.flatnonzero(fine >= fine.max() / 2)
        assert above[-1] - above[0] + 1 == pytest.approx(30.0, abs=1.5)
    else:  # flux-weighted centre where asked
        rows = np.arange(ny)
        assert (rows * profile).sum() == pytest.approx(200.3, abs=1e-6)


def test_truth_is_the_flux_inside_the_slit():
    rng = np.random.default_rng(5)
    scene = scenes.draw_slit(rng, "S001", 1, with_wcs=False, kind="moffat")
    inside = scene.profile.sum(axis=0)
    assert np.all(inside < 1.0) and np.all(inside > 0.5)
    np.testing.assert_allclose(scene.truth, scene.flux * inside)


def test_scene_noise_matches_its_variance():
    rng = np.random.default_rng(6)
    scene = scenes.draw_slit(rng, "S001", 1, with_wcs=True)
    model = scene.flux * scene.profile + scene.background
    z = ((scene.data - model) / np.sqrt(scene.variance))[~scene.bad]
    assert np.mean(z**2) == pytest.approx(1.0, abs=0.05)
    assert 1e-3 * 0.9 <= (scene.bad & np.isfinite(scene.data)).mean() <= 3e-3 + 1e-3  # cosmic rays and hot pixels
    nan = ~np.isfinite(scene.data)
    assert nan.any() and np.all(scene.dq[nan] & scenes.DO_NOT_USE)


def test_wcs_source_position_is_where_the_scene_says():
    from jwst_optextract.io.slits import read_slit

    rng = np.random.default_rng(8)
    with_wcs = scenes.draw_slit(rng, "S001", 1, with_wcs=True)
    without = scenes.draw_slit(rng, "S002", 2, with_wcs=False)
    model = scenes.slit_models([with_wcs, without])
    first, second = (read_slit(slit, model, slit.name) for slit in model.slits)
    np.testing.assert_allclose(first.source_trace, with_wcs.trace + with_wcs.wcs_offset, atol=1e-6)
    assert second.source_row is None and second.source_trace is None
    np.testing.assert_allclose(second.wavelength, without.wavelength, rtol=1e-6)


def _perfect(rng, scene, scale=1.0, bias=0.0, error_scale=1.0):
    truth, crb_true, crb_joint = scorecard.scene_bounds(scene)
    flux = truth * (1.0 + bias) + rng.normal(0.0, 1.0, truth.shape) * np.sqrt(scale * crb_joint)
    return scorecard.score_columns(flux, error_scale * np.sqrt(crb_joint), truth, crb_true, crb_joint)


def test_a_perfect_estimator_scores_one():
    rng = np.random.default_rng(9)
    drawn = [scenes.draw_slit(rng, f"S{i}", i, with_wcs=False) for i in range(6)]
    rows = [_perfect(rng, scene) for scene in drawn]
    var = np.mean([r["var_crb_joint"] for r in rows])
    coverage = np.mean([r["coverage"] for r in rows])
    assert var == pytest.approx(1.0, abs=0.06)
    assert coverage == pytest.approx(0.683, abs=0.03)
    assert all(r["err2_crb"] == pytest.approx(1.0) for r in rows)
    assert all(r["var_crb_true"] >= r["var_crb_joint"] for r in rows)
    assert all(r["extracted"] == 1.0 for r in rows)
    summary = scorecard.summarise(rows, [], None)
    assert summary["met"]["median_var_crb_joint"] in (True, False)  # a median of noisy unit figures
    assert summary["within_tolerance"] >= 5 / 6


def test_bad_estimators_are_flagged():
    rng = np.random.default_rng(10)
    scene = scenes.draw_slit(rng, "S1", 1, with_wcs=False, snr=60.0)
    biased = _perfect(rng, scene, bias=0.02)
    assert biased["bias_percent"] == pytest.approx(2.0, abs=0.3)
    assert not biased["within_tolerance"]
    noisy = _perfect(rng, scene, scale=2.0)
    assert noisy["var_crb_joint"] == pytest.approx(2.0, rel=0.2)
    small_errors = _perfect(rng, scene, error_scale=0.5)
    assert small_errors["coverage"] < 0.45 and small_errors["err2_crb"] == pytest.approx(0.25)
    missing = scorecard.score_columns(None, None, *scorecard.scene_bounds(scene))
    assert not missing["ok"] and not missing["within_tolerance"]
    empty = scorecard.score_columns(np.full(scene.nx, np.nan), None, *scorecard.scene_bounds(scene))
    assert not empty["ok"] and empty["extracted"] == 0.0
    summary = scorecard.summarise([biased, missing], [], None)
    assert summary["within_tolerance"] == 0.0 and summary["missing_slits"] == 1
    assert not summary["met"]["within_tolerance"]


def test_time_series_score_of_a_perfect_estimator():
    rng = np.random.default_rng(11)
    scene = scenes.draw_tso(rng, nints=200, nx=128)
    _, crb_joint = scorecard.fisher_bounds(scene.profile, scene.variance, ~scene.bad)
    flux = scene.truth + rng.normal(0.0, 1.0, scene.truth.shape) * np.sqrt(crb_joint)
    row = scorecard.score_tso(flux, np.sqrt(crb_joint), scene)
    assert row["ok"]
    assert abs(row["bias_percent"]) < 0.05
    assert row["white_over_photon"] == pytest.approx(1.0, abs=0.15)
    assert abs(row["jitter_correlation"]) < row["correlation_limit"]
    # a flux that follows the jitter is caught
    follows = flux * (1.0 + 0.3 * scene.extras["jitter"][:, None])
    assert abs(scorecard.score_tso(follows, None, scene)["jitter_correlation"]) > 0.5


def test_nod_truth_and_joint_bound():
    rng = np.random.default_rng(12)
    exposures = scenes.draw_nod_set(rng, 500)
    bounds = [scorecard.scene_bounds(e) for e in exposures]
    joint = 1.0 / sum(1.0 / b[2] for b in bounds)
    assert np.all(joint < min(b[2].min() for b in bounds) * 10)
    assert np.all(joint <= np.min([b[2] for b in bounds], axis=0))
    truth = exposures[0].truth
    flux = truth + rng.normal(0.0, 1.0, truth.shape) * np.sqrt(joint)
    row = scorecard.score_nods(flux, np.sqrt(joint), exposures)
    assert row["var_crb_joint"] == pytest.approx(1.0, abs=0.15)
    assert row["truth_spread_percent"] < 3.0


def _suite_seed() -> int:
    """The draw of the suite's scorecard tests: fixed, so CI is reproducible; ``SCORECARD_SEED=random`` (or a
    number) draws another. Accuracy claims are measured with ``benchmarks/scorecard.py`` and fresh seeds."""
    value = os.environ.get("SCORECARD_SEED", "375243368")
    return int(np.random.SeedSequence().entropy % (2**31)) if value == "random" else int(value)


@pytest.mark.slow
def test_scorecard_small_draw_through_strun(tmp_path):
    """A small draw (seed printed) through ``strun``: loose figures that only a broken extraction misses."""
    seed = _suite_seed()
    print(f"scorecard seed {seed}")
    result = scorecard.run_scorecard(seed=seed, n_slits=8, n_nods=1, tso=True, tso_nints=10, workdir=tmp_path)
    s = result["summary"]
    assert s["seed"] == seed and s["n_slits"] == 8
    assert s["missing_slits"] == 0, f"seed {seed}: slits missing from the x1d"
    assert s["median_extracted"] >= 0.95
    # The instrument first: the known-profile estimator on the same files meets the targets.
    assert s["oracle_within_tolerance"] >= 7 / 8, f"seed {seed}: the scorecard, not the package, is wrong"
    assert s["oracle_median_var_crb_joint"] == pytest.approx(1.0, abs=0.15), f"seed {seed}"
    assert s["oracle_median_coverage"] == pytest.approx(0.683, abs=0.06), f"seed {seed}"
    # The package, loosely (today's code biases winged and double profiles by percents, see the
    # scorecard's report): a quarter of the slits within tolerance and a median bias below 3 %.
    assert s["within_tolerance"] >= 0.25, f"seed {seed}"
    assert abs(s["median_bias_percent"]) < 3.0, f"seed {seed}"
    # at least the known-background floor; far below twice the unknown-background one
    assert 0.95 <= s["median_var_crb_true"], f"seed {seed}"
    assert s["median_var_crb_joint"] < 1.5, f"seed {seed}"
    assert 0.5 <= s["median_coverage"] <= 0.85, f"seed {seed}"
    assert 0.6 <= s["median_err2_crb"] <= 1.6, f"seed {seed}"
    nod = result["nods"][0]
    assert nod["ok"] and nod["extracted"] >= 0.9, f"seed {seed}"
    assert abs(nod["bias_percent"]) < 10.0, f"seed {seed}"  # loose: today's combination misfits double profiles
    assert result["tso"]["ok"], f"seed {seed}: the time series was not extracted"


@pytest.mark.slow
def test_time_series_white_light_near_photon_noise(tmp_path):
    """One background for the whole series: the white light within 2x the photon noise (target 1.2x), bias < 0.5 %."""
    seed = _suite_seed()
    result = scorecard.run_scorecard(seed=seed, n_slits=1, n_nods=0, tso=True, tso_nints=10, workdir=tmp_path)
    tso = result["tso"]
    assert tso["ok"] and abs(tso["bias_percent"]) < 0.5, f"seed {seed}"
    assert tso["white_over_photon"] < 2.0, f"seed {seed}"


def test_shape_bound_of_a_nod_set():
    """A nod set's exposures share the flux and the shape: their bound is above the one with the shape known,
    and below that of any one exposure alone."""
    rng = np.random.default_rng(5)
    exposures = [_cropped(e, 40) for e in scenes.draw_nod_set(rng, source_id=500)]
    both = scorecard.shape_bound(exposures)
    known = np.sum(1.0 / np.sum([1.0 / scorecard.scene_bounds(e)[2] for e in exposures], axis=0))
    assert known <= both < min(scorecard.shape_bound(e) for e in exposures)
    assert scorecard.shape_bound(exposures[:1]) == pytest.approx(scorecard.shape_bound(exposures[0]), rel=1e-12)


def test_reachable_is_the_chance_of_an_estimator_at_the_shape_bound():
    """``reachable``: the probability that an unbiased estimator with errors of sigma_shape is within tolerance,
    checked against such an estimator's draws."""
    truth = np.full(100, 50.0)
    rng = np.random.default_rng(3)
    for sigma, sigma_shape in ((1.0, 1.0), (1.0, 2.0), (0.1, 3.0)):  # percent
        row = {"ok": True, "bias_percent": 0.0, "sigma_percent": sigma}
        variance = (sigma_shape / 100.0 * truth.sum()) ** 2
        reachable = scorecard._against_shape_bound(row, truth, variance)["reachable"]
        draws = np.abs(rng.normal(0.0, sigma_shape, 200_000)) <= max(0.5, 3.0 * sigma)
        assert reachable == pytest.approx(draws.mean(), abs=3e-3)
    assert scorecard._against_shape_bound({"ok": True, "bias_percent": 0.0, "sigma_percent": 1.0}, truth,
                                          (0.01 * truth.sum()) ** 2)["reachable"] == pytest.approx(0.9973, abs=1e-4)
