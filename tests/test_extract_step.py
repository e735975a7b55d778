"""OptimalExtractStep on simulated datamodels with known truth."""

import logging

import numpy as np
import pytest
from stdatamodels.jwst import datamodels

from jwst_optextract import InputError, OptimalExtractStep, SlitError, simulate


def _subtract_background(model, truth):
    """The true background-subtracted data (the extraction is tested alone)."""
    model.data = (model.data - truth.background).astype(np.float32)
    return model


def _spectrum(result, index=0):
    return result.spec[index].spec_table


SCENES = {
    # S/N ~ 5 per column: background limited
    "faint": dict(flux=0.5, background=2.0),
    # S/N ~ 400 per column
    "bright": dict(flux=200.0, background=2.0),
}


@pytest.fixture(scope="module", params=sorted(SCENES))
def scene(request):
    """A curved trace, wavelength-dependent Gaussian width, cosmic rays and NaNs."""
    model, truth = simulate.make_slit(
        nx=4096, ny=32, width=(0.9, 1.6), trace_curvature=2.0, trace_tilt=0.8,
        cosmic_ray_fraction=0.002, nan_fraction=0.003, seed=11, **SCENES[request.param],
    )
    _subtract_background(model, truth)
    return request.param, model, truth


def test_optimal_flux_is_unbiased_and_reaches_cramer_rao(scene):
    name, model, truth = scene
    table = _spectrum(OptimalExtractStep.call(model))
    flux = table["FLUX"]
    assert np.isfinite(flux).all()
    cramer_rao = simulate.cramer_rao_variance(truth)
    total_error = np.sqrt(cramer_rao.sum())
    bias = flux.sum() - truth.flux.sum()
    assert abs(bias) < max(1e-3 * truth.flux.sum(), 3 * total_error), (name, bias / truth.flux.sum())
    z = (flux - truth.flux) / np.sqrt(cramer_rao)
    assert abs(z.var() - 1) < 0.05, (name, z.var())
    # the reported errors are the Cramér–Rao errors
    assert abs(np.mean(table["FLUX_ERROR"] ** 2 / cramer_rao) - 1) < 0.05
    # outliers were found and flagged in DQ
    assert (table["DQ"] & datamodels.dqflags.pixel["OUTLIER"]).any()


def test_box_extraction_of_the_same_data_is_worse(scene):
    name, model, truth = scene
    optimal = _spectrum(OptimalExtractStep.call(model))
    box = _spectrum(OptimalExtractStep.call(model, extraction_type="box", extract_width=6))
    inside = np.nansum(truth.profile * (box["NPIXELS"] > 0), axis=0)  # box captures most of the flux
    ok = np.isfinite(box["FLUX"])
    # compare signal to noise per column: the box loses to the optimal extraction
    snr_box = np.median(box["FLUX"][ok] / box["FLUX_ERROR"][ok])
    snr_opt = np.median(optimal["FLUX"] / optimal["FLUX_ERROR"])
    assert snr_opt > snr_box
    # and its scatter around the truth (scaled to the flux it captures) is larger
    box_var = np.var((box["FLUX"] - truth.flux * inside)[ok])
    opt_var = np.var(optimal["FLUX"] - truth.flux)
    assert opt_var < box_var, (name, opt_var, box_var)


def test_output_product_is_a_standard_x1d():
    model, truth = simulate.make_slit(nx=300, seed=2)
    result = OptimalExtractStep.call(model)
    assert isinstance(result, datamodels.MultiSpecModel)
    assert result.meta.cal_step.optx_extract == "COMPLETE"
    assert result.meta.cal_step.extract_1d == "COMPLETE"
    assert result.meta.telescope == "JWST"
    spec = result.spec[0]
    assert spec.name == model.name
    table = spec.spec_table
    assert table.columns["FLUX"].unit == "DN/s"
    assert table.columns["WAVELENGTH"].unit == "um"
    np.testing.assert_allclose(table["WAVELENGTH"], truth.wavelength[16], rtol=1e-3)
    np.testing.assert_allclose(
        table["FLUX_ERROR"] ** 2,
        table["FLUX_VAR_POISSON"] + table["FLUX_VAR_RNOISE"] + table["FLUX_VAR_FLAT"],
        rtol=1e-5,
    )
    result.validate()


@pytest.mark.parametrize("units", ["MJy/sr", "MJy"])
def test_calibrated_units_follow_jwst(units):
    dn, truth_dn = simulate.make_slit(nx=200, seed=4, noise=False)
    cal, truth = simulate.make_slit(nx=200, seed=4, noise=False, units=units)
    flux_dn = _spectrum(OptimalExtractStep.call(dn))["FLUX"]
    table = _spectrum(OptimalExtractStep.call(cal))
    assert table.columns["FLUX"].unit == "Jy"
    factor = 1e6 * (cal.meta.photometry.pixelarea_steradians if units == "MJy/sr" else 1.0)
    np.testing.assert_allclose(table["FLUX"], truth.flux * factor, rtol=1e-6)
    np.testing.assert_allclose(flux_dn, truth_dn.flux, rtol=1e-6)


def test_dispersion_along_y_is_extracted_like_along_x():
    kw = dict(nx=400, ny=40, seed=8, flux=300.0, exp_type="MIR_LRS-FIXEDSLIT")
    along_x, truth_x = simulate.make_slit(**kw)
    along_y, truth_y = simulate.make_slit(dispersion_axis=2, **kw)
    assert along_y.data.shape == (400, 40)
    fx = _spectrum(OptimalExtractStep.call(along_x))["FLUX"]
    fy = _spectrum(OptimalExtractStep.call(along_y))["FLUX"]
    np.testing.assert_allclose(fx, fy, rtol=1e-5)
    assert OptimalExtractStep.call(along_y).spec[0].dispersion_direction == 2


def test_integrations_give_x1dints_with_int_times():
    model, truth = simulate.make_tso(nints=12, nx=256, flux=100.0, seed=5)
    result = OptimalExtractStep.call(model)
    assert isinstance(result, datamodels.TSOMultiSpecModel)
    table = result.spec[0].spec_table
    assert table["FLUX"].shape == (12, 256)
    np.testing.assert_array_equal(table["INT_NUM"], np.arange(1, 13))
    np.testing.assert_allclose(table["MJD-AVG"], model.int_times["int_mid_MJD_UTC"])
    cramer_rao = simulate.cramer_rao_variance(truth)
    z = (table["FLUX"] - truth.flux) / np.sqrt(cramer_rao)
    assert abs(z.mean()) < 0.1 and abs(z.var() - 1) < 0.1


def test_a_bad_slit_is_skipped_and_the_others_come_out(caplog):
    model, truths = simulate.make_multislit(n_slits=3, nx=200, seed=3)
    bad = model.slits[1].name
    model.slits[1].data[...] = np.nan
    with caplog.at_level(logging.WARNING, logger="jwst_optextract"):
        result = OptimalExtractStep.call(model)
    assert [spec.name for spec in result.spec] == [model.slits[0].name, model.slits[2].name]
    assert any(bad in record.getMessage() and "no usable pixel" in record.getMessage()
               for record in caplog.records)


def test_wrong_model_type_is_a_clear_error():
    with pytest.raises(InputError, match="MultiSpecModel is not a supported input"):
        OptimalExtractStep.call(datamodels.MultiSpecModel())


def test_missing_wavelength_names_the_slit():
    model, _ = simulate.make_slit(nx=100, seed=1)
    model.meta.wcs = None
    model.wavelength = np.zeros(model.data.shape, np.float32)
    with pytest.raises(SlitError, match=rf"slit {model.name}: .*WAVELENGTH.*WCS"):
        OptimalExtractStep.call(model)


def test_shape_mismatch_names_the_array():
    model, _ = simulate.make_slit(nx=100, seed=1)
    model.var_rnoise = np.ones((5, 5), np.float32)
    with pytest.raises(SlitError, match="VAR_RNOISE has shape"):
        OptimalExtractStep.call(model)


def test_box_fill_flagged_recovers_lost_flux():
    model, truth = simulate.make_slit(nx=300, seed=6, flux=500.0, noise=False)
    hole = (int(round(truth.trace[150])), 150)
    model.data[hole] = np.nan
    model.dq[hole] |= datamodels.dqflags.pixel["DO_NOT_USE"]
    plain = _spectrum(OptimalExtractStep.call(model, extraction_type="box", extract_width=10))
    filled = _spectrum(OptimalExtractStep.call(model, extraction_type="box", extract_width=10, fill_flagged=True))
    assert plain["FLUX"][150] < 0.8 * truth.flux[150]
    np.testing.assert_allclose(filled["FLUX"][150], truth.flux[150], rtol=2e-3)
    np.testing.assert_allclose(filled["FLUX"][149], plain["FLUX"][149])


def test_columns_whose_flux_leans_on_the_profile_model_are_flagged():
    """FLUX_ESTIMATED marks the columns with a flagged core pixel (their flux is the profile model's there), not
    those with a flagged far-wing pixel; a box marks them only where it fills flagged pixels from the model."""
    estimated = datamodels.dqflags.pixel["FLUX_ESTIMATED"]
    model, truth = simulate.make_slit(nx=300, seed=6, flux=500.0, noise=False)
    for row, column in ((int(round(truth.trace[150])), 150), (int(round(truth.trace[100])) + 7, 100)):
        model.data[row, column] = np.nan
        model.dq[row, column] |= datamodels.dqflags.pixel["DO_NOT_USE"]
    optimal = _spectrum(OptimalExtractStep.call(model))
    assert np.flatnonzero(optimal["DQ"] & estimated).tolist() == [150]
    np.testing.assert_allclose(optimal["FLUX"][150], truth.flux[150], rtol=1e-3)  # the model's, and right
    plain = _spectrum(OptimalExtractStep.call(model, extraction_type="box", extract_width=10))
    assert not (plain["DQ"] & estimated).any()
    filled = _spectrum(OptimalExtractStep.call(model, extraction_type="box", extract_width=10, fill_flagged=True))
    assert np.flatnonzero(filled["DQ"] & estimated).tolist() == [150]


def test_scene_model_and_residual_image_are_saved(tmp_path):
    model, truth = simulate.make_slit(nx=300, flux=100.0, seed=2, noise=False)
    model.meta.filename = "sc_cal.fits"
    OptimalExtractStep.call(model, save_scene_model=True, save_residual_image=True, output_dir=str(tmp_path))
    scene = datamodels.open(tmp_path / "sc_scene.fits")
    residual = datamodels.open(tmp_path / "sc_residual.fits")
    np.testing.assert_allclose(scene.data, truth.source, rtol=1e-4, atol=1e-4 * truth.source.max())
    assert np.nanmax(np.abs(residual.data)) < 1e-3 * truth.source.max()


def test_reject_sigma_zero_disables_the_rejection():
    model, truth = simulate.make_slit(nx=400, flux=100.0, seed=3, cosmic_ray_fraction=0.01)
    on = _spectrum(OptimalExtractStep.call(model))
    off = _spectrum(OptimalExtractStep.call(model, reject_sigma=0))
    assert (on["DQ"] & datamodels.dqflags.pixel["OUTLIER"]).any()
    assert not (off["DQ"] & datamodels.dqflags.pixel["OUTLIER"]).any()
    assert np.nansum(off["FLUX"]) > np.nansum(on["FLUX"])  # the cosmic rays stay in
