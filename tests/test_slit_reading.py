"""read_slit inside a geometry_cache: each slit's WCS evaluated once, the slits read unchanged."""

from __future__ import annotations

import contextlib
import dataclasses

import numpy as np
import pytest

from jwst_optextract import OptimalExtractionPipeline, simulate
from jwst_optextract.io import geometry_cache, iter_slits, read_slit, slit_store
from jwst_optextract.io import slits as slits_module
from jwst_optextract.steps import pipelines


@pytest.fixture(scope="module")
def exposure():
    model, _ = simulate.make_multislit(1, exp_type="NRS_MSASPEC", nx=120, ny=18, seed=5, source_id=1,
                                       flux=40.0, background=3.0)
    for index in range(1, 4):
        other, _ = simulate.make_multislit(1, exp_type="NRS_MSASPEC", nx=120, ny=16 + index, seed=5 + index,
                                           source_id=index + 1, flux=40.0, background=3.0)
        model.slits.append(other.slits[0])
    return model


def _read_all(model):
    return [read_slit(slit, model, name) for name, slit in iter_slits(model)]


def _assert_same(first, second):
    for a, b in zip(first, second, strict=True):
        for field in dataclasses.fields(a):
            x, y = getattr(a, field.name), getattr(b, field.name)
            if isinstance(x, np.ndarray):
                assert np.array_equal(x, y, equal_nan=True), (a.name, field.name)
            else:
                assert x is y or x == y, (a.name, field.name)


@pytest.fixture
def wcs_calls(monkeypatch):
    calls = []
    original = slits_module.nirspec_source_position  # these slits are NIRSpec MOS

    def counting(*args, **kwargs):
        calls.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(slits_module, "nirspec_source_position", counting)
    return calls


def test_the_slits_read_are_those_read_without_the_cache(exposure, wcs_calls):
    plain = _read_all(exposure)
    assert len(wcs_calls) == 4
    assert all(slit.source_trace is not None for slit in plain)  # the WCS predicts the source: cached below
    with geometry_cache():
        cached, again = _read_all(exposure), _read_all(exposure)
    assert len(wcs_calls) == 8  # once per slit for both reads
    _assert_same(plain, cached)
    _assert_same(plain, again)
    _read_all(exposure)
    assert len(wcs_calls) == 12  # the block closed: evaluated again


def test_every_read_gets_arrays_of_its_own(exposure):
    with geometry_cache():
        first = _read_all(exposure)
        first[0].wavelength[...] = -1.0
        first[0].source_trace[...] = -1.0
        second = _read_all(exposure)
    assert not np.any(second[0].wavelength == -1.0) and not np.any(second[0].source_trace == -1.0)
    _assert_same(second, _read_all(exposure))


def test_blocks_nest(exposure, wcs_calls):
    with geometry_cache():
        _read_all(exposure)
        with geometry_cache():
            _read_all(exposure)
        _read_all(exposure)  # the outer block still holds the cache
    assert len(wcs_calls) == 4


def test_optx_spec_gives_the_same_x1d_with_and_without_the_cache(exposure, monkeypatch):
    with_cache = OptimalExtractionPipeline.call(exposure.copy())
    monkeypatch.setattr(pipelines, "geometry_cache", contextlib.nullcontext)
    without = OptimalExtractionPipeline.call(exposure.copy())
    assert len(with_cache.spec) == len(without.spec) == 4
    for a, b in zip(with_cache.spec, without.spec):
        assert a.spec_table.dtype == b.spec_table.dtype
        for name in a.spec_table.dtype.names:
            assert np.array_equal(a.spec_table[name], b.spec_table[name], equal_nan=True), name
        assert (a.name, a.slit_ra, a.extraction_ystart) == (b.name, b.slit_ra, b.extraction_ystart)


def test_a_slit_store_reads_each_slit_once_and_its_steady_pixels_once():
    """Inside `slit_store` every read of a slit is the same `SlitData` (its `steady` computed once); outside, not."""
    model, _ = simulate.make_tso(nints=12, nx=128, ny=16, flux=30.0, cosmic_ray_fraction=0.01, seed=2)
    (name, slit), = iter_slits(model)
    with slit_store():
        first = read_slit(slit, model, name)
        steady = first.steady
        again = read_slit(slit, model, name)
        assert again is first and again.steady is steady
        with slit_store():  # nested: the same store
            assert read_slit(slit, model, name) is first
        assert read_slit(slit, model, name) is first
    outside = read_slit(slit, model, name)
    assert outside is not first
    np.testing.assert_array_equal(outside.steady, steady)
    assert not steady.all()  # the cosmic rays are left out of the mean
