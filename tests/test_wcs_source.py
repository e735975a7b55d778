"""The NIRSpec source position from the slit position: jwst's answer, with a fifth of its WCS evaluations."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from jwst.extract_1d.source_location import location_from_wcs
from jwst.lib.wcs_utils import get_wavelengths
from stdatamodels.jwst import datamodels

from jwst_optextract import simulate
from jwst_optextract.io import read_slit, slits
from jwst_optextract.io.wcs_source import nirspec_source_position

CEERS = Path(__file__).resolve().parents[2] / "shared" / "data" / "real" / "nirspec_mos_ceers_prism"


def _wavelength(node, exp_type):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.asarray(get_wavelengths(node, exp_type), float)


def _jwst(parent, slit):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return location_from_wcs(parent, slit, make_trace=True)


def _assert_as_jwst(parent, slit):
    node = parent if slit is None else slit
    location, trace = nirspec_source_position(node, _wavelength(node, parent.meta.exposure.type))
    _, _, expected_location, expected_trace = _jwst(parent, slit)
    assert location == pytest.approx(expected_location, abs=1e-6)
    np.testing.assert_allclose(trace, expected_trace, atol=1e-6)


@pytest.mark.parametrize("nod", [1, 2, 3])
def test_real_nirspec_mos_slitlet_as_jwst(nod):
    files = sorted(CEERS.glob(f"jw01345062001_03101_0000{nod}_*.fits"))
    if not files:
        pytest.skip(f"the CEERS files are not in {CEERS}")
    with datamodels.open(files[0]) as model:
        _assert_as_jwst(model, None)


@pytest.mark.parametrize("seed", [3, 4])
def test_simulated_mos_slits_as_jwst(seed):
    model, _ = simulate.make_multislit(2, exp_type="NRS_MSASPEC", nx=200, ny=22, seed=seed, source_id=1,
                                       flux=40.0, background=3.0)
    for slit in model.slits:
        _assert_as_jwst(model, slit)


def _one_slit(**kwargs):
    model, truth = simulate.make_multislit(1, exp_type="NRS_MSASPEC", nx=160, ny=20, seed=11, source_id=1,
                                           flux=40.0, background=3.0, **kwargs)
    return model, model.slits[0], truth[0]


def test_the_trace_is_the_simulated_source_row():
    _, slit, truth = _one_slit()
    location, trace = nirspec_source_position(slit, _wavelength(slit, "NRS_MSASPEC"))
    np.testing.assert_allclose(trace, truth.trace, atol=1e-3)  # linear between wavelengths, as jwst
    assert location == pytest.approx(np.interp(79.5, np.arange(160), truth.trace), abs=1e-3)


def test_a_box_that_starts_past_column_zero_keeps_its_columns():
    """jwst evaluates its interpolated trace at columns counted from 0 and stores it from the box's first column."""
    model, slit, truth = _one_slit()
    wcs = slit.meta.wcs
    wcs.bounding_box = ((19.5, 159.5), (-0.5, 19.5))
    location, trace = nirspec_source_position(slit, _wavelength(slit, "NRS_MSASPEC"))
    assert np.isnan(trace[:20]).all()
    np.testing.assert_allclose(trace[20:], truth.trace[20:], atol=1e-3)
    jwst_trace = _jwst(model, slit)[3]
    assert np.nanmax(np.abs(jwst_trace[20:] - truth.trace[20:])) > 0.5  # its columns are shifted by 20


def test_no_slit_position_or_one_outside_the_box_gives_none(caplog):
    _, slit, _ = _one_slit()
    wavelength = _wavelength(slit, "NRS_MSASPEC")
    slit.source_ypos = 5.0  # five slit lengths away
    assert nirspec_source_position(slit, wavelength) == (None, None)
    assert "outside the bounding box" in caplog.text
    slit.source_ypos = None
    assert nirspec_source_position(slit, wavelength) == (None, None)


def test_a_wcs_without_a_slit_frame_is_left_to_jwst():
    _, slit, _ = _one_slit()
    wcs = slit.meta.wcs
    wcs_without = type(wcs)(forward_transform=wcs.forward_transform, input_frame="detector", output_frame="world")
    slit.meta.wcs = wcs_without
    assert nirspec_source_position(slit, _wavelength(slit, "NRS_MSASPEC")) is None


def test_read_slit_uses_it_for_nirspec(monkeypatch):
    model, slit, truth = _one_slit()

    calls = []
    monkeypatch.setattr(slits, "nirspec_source_position",
                        lambda *a: calls.append(a) or nirspec_source_position(*a))
    read = read_slit(slit, model, "1")
    assert len(calls) == 1
    np.testing.assert_allclose(read.source_trace, truth.trace, atol=1e-3)
