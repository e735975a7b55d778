"""optx_background's source mask: found in the data, sized from the fitted profile, its wings modelled.

The bias tests compare the background-subtracted, then extracted flux with
the same extraction of the data less the true background: what is left is
the background step's own error. A fixed 5-row half width (the retired
default, still there as ``source_half_width=5``) fails them.
"""

import logging

import numpy as np
import pytest
from stdatamodels.jwst import datamodels

from jwst_optextract import OptimalExtractStep, SlitError, simulate
from jwst_optextract.core import masking
from jwst_optextract.drivers.background import BackgroundParameters, estimate_slit, subtract_background
from jwst_optextract.io.slits import read_slit
from jwst_optextract.steps.background_step import BackgroundStep

WINGED = dict(nx=512, profile="moffat", width=(1.8, 2.5), moffat_beta=2.5, background=8.0,
              background_gradient=(0.3, 0.2), exp_type="NRS_MSASPEC", lines=0)


def _extracted(model):
    table = OptimalExtractStep.call(model, profile_kind="moffat").spec[0].spec_table
    return np.asarray(table["FLUX"], float)


def _background_bias(ny, flux, seed, **step):
    """The background step's bias of the extracted flux: (fraction, Cramér-Rao sigmas of the integrated flux)."""
    model, truth = simulate.make_slit(ny=ny, flux=flux, seed=seed, **WINGED)
    known = model.copy()
    known.data = (model.data - truth.background).astype(model.data.dtype)
    reference = _extracted(known)
    measured = _extracted(BackgroundStep.call(model, **step))
    ok = np.isfinite(reference) & np.isfinite(measured)
    assert ok.mean() > 0.95
    expected = (truth.flux * truth.profile.sum(axis=0))[ok].sum()
    error = measured[ok].sum() - reference[ok].sum()
    return error / expected, error / np.sqrt(simulate.cramer_rao_variance(truth)[ok].sum())


@pytest.mark.parametrize("ny, flux", [(26, 50.0), (64, 10.0)], ids=["short slit", "tall slit"])
def test_winged_source_background_subtracted_then_extracted_is_unbiased(ny, flux):
    # 10 seeds: short slit 0.00 +- 0.07 % (0.0 +- 2.5 sigma), tall slit 0.00 +- 0.07 % (0.0 +- 0.7 sigma);
    # the fixed 5-row mask: -1.89 % (-69 sigma) and -0.66 % (-6.7 sigma)
    bias, sigmas = _background_bias(ny, flux, seed=3)
    assert abs(bias) < 0.002, (bias, sigmas)
    assert abs(sigmas) < 4.0, (bias, sigmas)
    fixed, _ = _background_bias(ny, flux, seed=3, source_half_width=5.0)
    assert fixed < -0.004, fixed  # the retired mask takes the wings for background


def _slit_data(model):
    return read_slit(model, model, model.name)


@pytest.mark.parametrize("threshold", [0.05, 0.01])
def test_the_mask_follows_the_profile_width(threshold):
    halves = []
    for width in (1.2, 2.4):
        model, truth = simulate.make_slit(nx=256, ny=40, flux=100.0, profile="moffat", width=width, moffat_beta=2.5,
                                          background=5.0, lines=0, trace_curvature=1.0, seed=4)
        _, source = estimate_slit(_slit_data(model), BackgroundParameters(source_threshold=threshold))
        expected = masking.profile_mask(truth.profile, threshold)
        rows, true_rows = source.sum(axis=0), expected.sum(axis=0)
        assert np.mean(np.abs(rows - true_rows) <= 1) > 0.9, (rows, true_rows)
        halves.append(np.median(rows))
        # the mask is centred on the source: its middle row follows the trace
        middle = np.array([np.flatnonzero(column).mean() for column in source.T])
        assert np.max(np.abs(middle - truth.trace)) < 0.75
    # twice as wide a profile, about twice as many rows masked (the pixel edges add a row or two)
    assert 1.6 < halves[1] / halves[0] < 2.6, halves


def test_the_source_is_found_in_the_data_not_at_the_wcs_position(caplog):
    model, truth = simulate.make_slit(nx=256, ny=40, flux=100.0, profile="moffat", width=1.5, background=5.0,
                                      lines=0, seed=5)
    for key in ("data", "dq", "err", "var_poisson", "var_rnoise", "var_flat"):
        setattr(model, key, np.roll(getattr(model, key), 6, axis=0))  # the source 6 rows from where the WCS says
    _, source = estimate_slit(_slit_data(model), BackgroundParameters())
    middle = np.array([np.flatnonzero(column).mean() for column in source.T])
    assert np.max(np.abs(middle - (truth.trace + 6))) < 0.75


def test_source_half_width_overrides_the_profile_mask():
    model, truth = simulate.make_slit(nx=256, ny=40, flux=100.0, profile="moffat", width=2.4, background=5.0,
                                      lines=0, seed=4)
    _, source = estimate_slit(_slit_data(model), BackgroundParameters(source_half_width=3.0))
    rows = source.sum(axis=0)
    assert set(np.unique(rows)) <= {6, 7}
    # about the trace fitted in the data
    middle = np.array([np.flatnonzero(column).mean() for column in source.T])
    assert np.max(np.abs(middle - truth.trace)) < 0.75


def test_too_few_rows_left_is_a_slit_error_and_the_other_slits_come_out(caplog):
    model, _ = simulate.make_multislit(3, nx=200, ny=10, flux=300.0, profile="moffat", width=3.0, background=3.0,
                                       lines=0, seed=7)
    params = BackgroundParameters(method="poly", poly_degree=2)  # 1 or 2 rows per column left of 10
    slit = read_slit(model.slits[0], model, model.slits[0].name)
    with pytest.raises(SlitError, match=rf"slit {slit.name}: only \d+ rows per column are left outside the source "
                                        r"mask sized from the fitted profile .* too few for a poly background"):
        estimate_slit(slit, params)
    # one slit too short for its mask: it alone is skipped and named; the others are subtracted
    tall, _ = simulate.make_multislit(3, nx=200, ny=40, flux=300.0, profile="moffat", width=3.0, background=3.0,
                                      lines=0, seed=7)
    tall.slits[1] = model.slits[1]
    with caplog.at_level(logging.INFO, logger="jwst_optextract"):
        result, summary = subtract_background(tall, params)[0::2]
    assert summary.subtracted == [tall.slits[0].name, tall.slits[2].name]
    assert list(summary.skipped) == [model.slits[1].name] and "too few" in summary.skipped[model.slits[1].name]
    assert any(r.levelno == logging.WARNING and model.slits[1].name in r.getMessage() for r in caplog.records)
    assert abs(np.nanmedian(result.slits[0].data[:5])) < 0.2


def test_a_single_row_is_a_clear_error():
    model, _ = simulate.make_slit(nx=64, ny=14, lines=0, seed=1)
    one = datamodels.SlitModel()
    one.update(model)
    for key in ("data", "dq", "err", "var_poisson", "var_rnoise", "var_flat", "wavelength"):
        setattr(one, key, np.ascontiguousarray(getattr(model, key)[7:8]))
    one.name = model.name
    with pytest.raises(SlitError, match=rf"slit {model.name}: has a single row \(1 x 64 pixels\)"):
        BackgroundStep.call(one)


def test_one_integration_gives_the_single_frame_result():
    cube, _ = simulate.make_tso(nints=1, nx=128, ny=20, lines=0, background=4.0, flux=200.0, seed=8,
                                exp_type="NRS_FIXEDSLIT", slit_name="S200A1")
    assert cube.data.shape[0] == 1
    frame = datamodels.SlitModel()
    frame.update(cube)
    for key in ("data", "dq", "err", "var_poisson", "var_rnoise", "var_flat"):
        setattr(frame, key, getattr(cube, key)[0])
    frame.wavelength = cube.wavelength
    frame.meta.wcs = cube.meta.wcs
    params = BackgroundParameters()
    one = subtract_background(cube, params)[0]
    two = subtract_background(frame, params)[0]
    assert one.data.shape == cube.data.shape
    np.testing.assert_allclose(one.data[0], two.data, rtol=1e-5, atol=1e-5)


def test_no_source_detected_falls_back_to_the_prior_profile_and_says_so(caplog):
    model, truth = simulate.make_slit(nx=256, ny=30, flux=0.001, background=5.0, lines=0, seed=9)
    with caplog.at_level(logging.INFO, logger="jwst_optextract"):
        result = BackgroundStep.call(model)
    assert "no source detected; masking where a Gaussian of the prior width" in caplog.text
    residual = result.data - truth.source
    assert abs(np.nanmean(residual)) < 0.02
