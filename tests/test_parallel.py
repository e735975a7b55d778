"""maximum_cores: threads over slits and over groups of integrations give the serial result, bit for bit."""

import functools
import logging
import os

import numpy as np
import pytest

from jwst_optextract import BackgroundStep, OptimalExtractStep, PsfFitStep, TraceStep, simulate
from jwst_optextract.drivers.background import BackgroundParameters, subtract_background
from jwst_optextract.exceptions import InputError
from jwst_optextract.drivers.extract import ExtractionParameters, extract_model
from jwst_optextract.drivers.fit import FitParameters, fit_slit_profile
from jwst_optextract.drivers.runner import parallel_map, process_slits
from jwst_optextract.io.slits import integration_groups
from jwst_optextract.steps.base import worker_count


def _spec_arrays(x1d):
    """Every column of every spectrum of an x1d product."""
    return [(spec.name, name, np.asarray(spec.spec_table[name]))
            for spec in x1d.spec for name in spec.spec_table.dtype.names]


def _assert_identical(a, b):
    arrays_a, arrays_b = _spec_arrays(a), _spec_arrays(b)
    assert [key[:2] for key in arrays_a] == [key[:2] for key in arrays_b]
    for (slit, column, x), (_, _, y) in zip(arrays_a, arrays_b):
        np.testing.assert_array_equal(x, y, err_msg=f"slit {slit} column {column}")


@pytest.fixture(scope="module")
def multislit():
    model, truths = simulate.make_multislit(n_slits=5, nx=300, ny=24, flux=20.0, cosmic_ray_fraction=0.002, seed=3)
    # one slit no extraction can use: a logged skip, serial or not
    model.slits[2].data[...] = np.nan
    return model, truths


@pytest.fixture(scope="module")
def cube():
    model, truth = simulate.make_tso(nints=40, nx=256, ny=20, flux=30.0, jitter_rms=0.03,
                                     cosmic_ray_fraction=0.002, seed=5)
    return model, truth


def test_slits_in_worker_processes_give_the_serial_product_and_the_same_skip(multislit, caplog):
    model, truths = multislit
    params = ExtractionParameters(profile_kind="gaussian")
    serial, serial_summary = extract_model(model, params)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="jwst_optextract"):
        threaded, summary = extract_model(model, params, workers=3)
    _assert_identical(serial, threaded)
    assert list(summary.run.skipped) == list(serial_summary.run.skipped) == [model.slits[2].name]
    assert [name for name, _ in summary.run.done] == [name for name, _ in serial_summary.run.done]
    messages = [r.getMessage() for r in caplog.records]
    # the workers' own messages reach the log, and the skip is a warning naming the slit
    assert sum(m.startswith("Slit ") and " of 5)" in m for m in messages) == 5
    assert any(r.processName != "MainProcess" for r in caplog.records)
    skips = [r for r in caplog.records if r.levelno == logging.WARNING and r.getMessage().startswith("Skipping")]
    assert len(skips) == 1 and model.slits[2].name in skips[0].getMessage()
    # and the spectra are right: the brightest slit's flux against the truth
    flux = np.asarray(threaded.spec[0].spec_table["FLUX"])
    truth = truths[0].flux
    assert abs(np.nansum(flux) / truth.sum() - 1) < 0.01


def test_integration_groups_in_threads_give_the_serial_product(cube):
    model, truth = cube
    # small chunks, so that the 40 integrations make several groups
    params = ExtractionParameters(profile_kind="gaussian", chunk_pixels=2 * 20 * 256)
    groups = integration_groups(model.data.shape, params.chunk_pixels * 4, multiple=2)
    assert len(groups) == 5 and all((g.stop - g.start) % 2 == 0 for g in groups)
    serial, _ = extract_model(model, params)
    threaded, _ = extract_model(model, params, workers=3)
    _assert_identical(serial, threaded)
    flux = np.asarray(threaded.spec[0].spec_table["FLUX"])
    assert flux.shape == truth.flux.shape
    assert abs(np.nansum(flux) / truth.flux.sum() - 1) < 0.01


def test_box_extraction_over_groups_matches_one_group(cube):
    """Groups change nothing: box sums over groups equal those over the whole cube at once."""
    model, _ = cube
    one = ExtractionParameters(extraction_type="box", extract_width=5.0, profile_kind="gaussian",
                               chunk_pixels=10**9)
    many = ExtractionParameters(extraction_type="box", extract_width=5.0, profile_kind="gaussian",
                                chunk_pixels=20 * 256)
    a, _ = extract_model(model, one)
    b, _ = extract_model(model, many, workers=2)
    for column in ("FLUX", "FLUX_VAR_RNOISE", "NPIXELS", "WAVELENGTH"):
        np.testing.assert_allclose(np.asarray(b.spec[0].spec_table[column]),
                                   np.asarray(a.spec[0].spec_table[column]), rtol=1e-6, equal_nan=True)


def test_steps_take_maximum_cores_and_their_products_do_not_change(multislit):
    model, _ = multislit
    for step, extra, products in ((TraceStep, {}, "traces"), (PsfFitStep, {"kind": "gaussian"}, "profiles")):
        serial = getattr(step.call(model, maximum_cores="none", **extra), products)
        threaded = getattr(step.call(model, maximum_cores="all", **extra), products)
        assert [e.name for e in serial] == [e.name for e in threaded]
        for entry, other in zip(serial, threaded):
            np.testing.assert_array_equal(entry.center, other.center)
    serial = BackgroundStep.call(model, method="poly", maximum_cores="none")
    threaded = BackgroundStep.call(model, method="poly", maximum_cores="all")
    for a, b in zip(serial.slits, threaded.slits):
        np.testing.assert_array_equal(a.data, b.data)
        np.testing.assert_array_equal(a.var_rnoise, b.var_rnoise)


def test_background_in_threads_and_in_place(multislit):
    model, _ = multislit
    params = BackgroundParameters(method="column")
    serial, _, _ = subtract_background(model, params, keep_background=False)
    own = model.copy()
    threaded, _, summary = subtract_background(own, params, keep_background=False, workers=3, in_place=True)
    assert threaded is own and summary.skipped
    for a, b in zip(serial.slits, threaded.slits):
        np.testing.assert_array_equal(a.data, b.data)


def test_extract_step_maximum_cores_on_a_cube(cube):
    model, _ = cube
    serial = OptimalExtractStep.call(model, profile_kind="gaussian", chunk_pixels=4 * 20 * 256)
    threaded = OptimalExtractStep.call(model, profile_kind="gaussian", chunk_pixels=4 * 20 * 256,
                                       maximum_cores="all")
    _assert_identical(serial, threaded)


def test_worker_count():
    available = len(os.sched_getaffinity(0))
    assert worker_count("none") == worker_count("NONE") == worker_count("1") == 1
    assert worker_count("all") == available
    assert worker_count("half") == max(available // 2, 1)
    assert worker_count("quarter") == max(available // 4, 1)
    assert worker_count(str(available + 5)) == available
    for bad in ("many", "0", "-2", "1.5"):
        with pytest.raises(InputError, match="maximum_cores"):
            worker_count(bad)


def test_parallel_map_keeps_order_and_raises_in_order():
    assert list(parallel_map(lambda x: x * x, range(20), workers=4)) == [x * x for x in range(20)]

    def fail_on_three(x):
        if x == 3:
            raise ValueError("three")
        return x

    results = parallel_map(fail_on_three, range(6), workers=3)
    assert [next(results) for _ in range(3)] == [0, 1, 2]
    with pytest.raises(ValueError, match="three"):
        next(results)


def test_fits_in_worker_processes_give_the_serial_products_and_log(multislit, caplog):
    model, _ = multislit
    params = FitParameters(profile_kind="auto")
    work = functools.partial(fit_slit_profile, params=params)

    def run(workers):
        return process_slits(model, work, workers=workers, processes=True, prepare=lambda slit: (None,),
                             finish=lambda slit, fits: (slit.model is not None, fits))

    serial = run(1)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="jwst_optextract"):
        in_processes = run(2)
    assert [name for name, _ in in_processes.done] == [name for name, _ in serial.done]
    assert list(in_processes.skipped) == list(serial.skipped) == [model.slits[2].name]
    for (_, (attached, (trace, profile))), (_, (_, (trace1, profile1))) in zip(in_processes.done, serial.done):
        assert attached  # finish sees the slit with its datamodel, here
        np.testing.assert_array_equal(trace.center, trace1.center)
        assert profile.kind == profile1.kind
        np.testing.assert_array_equal(profile.evaluate(24), profile1.evaluate(24))
    # the workers' records reach this process's log, in slit order, and the skip is a warning here
    worker_records = [r for r in caplog.records if r.processName != "MainProcess"]
    numbered = [r.getMessage() for r in worker_records if " of 5)" in r.getMessage()]
    assert numbered == [f"Slit {slit.name} ({k} of 5)" for k, slit in enumerate(model.slits, start=1) if k != 3]
    assert any("profile chi2/pixel" in r.getMessage() for r in worker_records)
    skips = [r for r in caplog.records if r.getMessage().startswith("Skipping")]
    assert len(skips) == 1 and skips[0].processName == "MainProcess"


def test_workers_are_started_early_for_multislit_files_only(multislit, cube, tmp_path, monkeypatch):
    """`start_workers` starts the fits' worker processes before a MultiSlitModel is opened, and only then."""
    from jwst_optextract.steps import base

    started = []
    monkeypatch.setattr(base, "warm_workers", started.append)
    monkeypatch.setattr(base, "worker_count", lambda cores, announce=True: 1 if cores == "none" else 2)
    paths = {}
    for name, (model, _) in (("multi", multislit), ("cube", cube)):
        paths[name] = str(tmp_path / f"{name}.fits")
        model.save(paths[name])
    base.start_workers(paths["multi"], "all")
    base.start_workers(multislit[0], "all")
    base.start_workers(paths["cube"], "all")
    base.start_workers(str(tmp_path / "missing.fits"), "all")
    base.start_workers(paths["multi"], "none")
    assert started == [2, 2]
