"""The white-light curve of a time series: logged, saved as ECSV, right against the simulated truth."""

import logging

import numpy as np
import pytest
from astropy.table import Table

from jwst_optextract import OptimalExtractStep, simulate
from jwst_optextract.drivers.extract import ExtractionParameters, extract_model
from jwst_optextract.io.spectra import white_light_curve, white_light_summary


@pytest.fixture(scope="module")
def transit():
    return simulate.make_tso(nints=60, nx=200, ny=20, flux=40.0, transit_depth=0.02, background=0.0, seed=11)


def test_white_light_curve_follows_the_truth_within_its_errors(transit):
    model, truth = transit
    output, summary = extract_model(model, ExtractionParameters(profile_kind="gaussian"))
    (curve,) = summary.white_light
    table = output.spec[0].spec_table
    wavelength = np.asarray(table["WAVELENGTH"])[0]
    # every column is good here: the truth summed over the same columns
    assert curve.meta["n_wavelengths"] == np.isfinite(wavelength).sum() == truth.flux.shape[1]
    expected = truth.flux.sum(axis=1)
    pulls = (np.asarray(curve["flux"]) - expected) / np.asarray(curve["flux_error"])
    assert abs(np.mean(pulls)) < 4 / np.sqrt(len(pulls))
    assert 0.7 < np.std(pulls) < 1.3
    # the transit is seen: out of transit over in transit, to the simulated depth
    relative = expected / np.median(expected)
    inside = relative < 1 - 0.015
    assert inside.any() and (~inside).any()
    depth = 1 - np.mean(np.asarray(curve["flux"])[inside]) / np.mean(np.asarray(curve["flux"])[~inside])
    assert abs(depth - 0.02) < 0.002
    np.testing.assert_array_equal(curve["int_num"], np.arange(1, 61))
    np.testing.assert_array_equal(curve["mjd_mid"], model.int_times["int_mid_MJD_UTC"])


def test_white_light_is_logged_and_saved_as_ecsv(transit, tmp_path, caplog):
    model, _ = transit
    model = model.copy()
    model.meta.filename = "transit_calints.fits"
    with caplog.at_level(logging.INFO, logger="jwst_optextract"):
        result = OptimalExtractStep.call(model, profile_kind="gaussian", save_white_light=True,
                                         output_dir=str(tmp_path))
    line = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("White light"))
    assert "60 of 60 integrations" in line and "ppm" in line
    saved = Table.read(tmp_path / "transit_whitelight.ecsv", format="ascii.ecsv")
    assert saved.colnames == ["slit", "int_num", "mjd_mid", "flux", "flux_error"]
    assert str(saved["mjd_mid"].unit) == "d" and str(saved["flux"].unit) == "DN / s"
    assert set(saved["slit"]) == {result.spec[0].name}
    flux = np.asarray(result.spec[0].spec_table["FLUX"], dtype=np.float64)
    np.testing.assert_allclose(saved["flux"], flux.sum(axis=1), rtol=1e-12)
    np.testing.assert_allclose(saved["mjd_mid"], model.int_times["int_mid_MJD_UTC"])


def test_bad_columns_and_integrations_and_missing_times(transit):
    model, truth = transit
    model = model.copy()
    model.data[7] = np.nan  # an integration with nothing usable
    model.data[:20, :, 50] = np.nan  # a column lost in some integrations only
    model.int_times = None
    _, summary = extract_model(model, ExtractionParameters(profile_kind="gaussian"))
    curve = summary.white_light[0]
    flux = np.asarray(curve["flux"])
    assert np.isnan(flux[7]) and np.isfinite(np.delete(flux, 7)).all()
    assert curve.meta["n_wavelengths"] == truth.flux.shape[1] - 1  # column 50 left out everywhere
    expected = np.delete(truth.flux, 50, axis=1).sum(axis=1)
    pulls = np.delete((flux - expected) / np.asarray(curve["flux_error"]), 7)
    assert np.all(np.abs(pulls) < 5)
    assert np.isnan(curve["mjd_mid"]).all()
    assert "59 of 60 integrations" in white_light_summary(curve)


def test_no_curve_without_integrations():
    model, _ = simulate.make_slit(nx=120, ny=16, seed=2)
    _, summary = extract_model(model, ExtractionParameters(profile_kind="gaussian"))
    assert summary.white_light == []


def test_summary_ppm_figures_from_a_known_curve():
    rng = np.random.default_rng(1)
    flux = 1000 * (1 + 1e-3 * rng.standard_normal(4000))
    curve = Table({"int_num": np.arange(1, 4001), "mjd_mid": np.full(4000, np.nan), "flux": flux,
                   "flux_error": np.full(4000, 1.0)}, meta={"slit": "S", "n_wavelengths": 3})
    line = white_light_summary(curve)
    rms = float(line.split("rms scatter ")[1].split(" ppm")[0])
    point = float(line.split("point to point ")[1].split(" ppm")[0])
    expected = float(line.split("expected from the errors ")[1].split(" ppm")[0])
    assert abs(rms - 1000) < 50 and abs(point - 1000) < 50 and expected == 1000


def test_curve_from_a_tso_spec(transit):
    model, _ = transit
    output, _ = extract_model(model, ExtractionParameters(extraction_type="box", extract_width=6,
                                                          profile_kind="gaussian"))
    spec = output.spec[0]
    curve = white_light_curve(spec, "x")
    np.testing.assert_allclose(curve["flux"], np.asarray(spec.spec_table["FLUX"], np.float64).sum(axis=1))
    np.testing.assert_allclose(curve["flux_error"], np.sqrt((np.asarray(spec.spec_table["FLUX_ERROR"],
                                                                        np.float64) ** 2).sum(axis=1)))
