"""The fault matrix: every step on bad input either works and says how it coped, or fails cleanly.

One row per (step, fault). A clean failure is a `jwst_optextract.OptExtractError`
whose message names the slit (or the file) and the problem; a success returns a
product that validates against its schema, loses no slit without a WARNING,
and, for x1d, has DQ with jwst's meanings. Multi-slit rows check that the
healthy slits come out and the broken one is named. The end of the file tests
the atomic, never-onto-the-input saving of outputs.
"""

import json
import logging
import os
import re
import subprocess
import sys
import warnings

import numpy as np
import pytest
from stdatamodels.jwst import datamodels

from jwst_optextract import OptimalExtractionPipeline, OptimalExtractStep, PsfFitStep, TraceStep, simulate
from jwst_optextract.exceptions import InputError, OptExtractError, OutputError, SlitError
from jwst_optextract.steps import base
from jwst_optextract.steps.base import write_atomically

try:
    from jwst_optextract.steps.background_step import BackgroundStep
except ImportError:  # being written elsewhere; the matrix covers it once it imports
    BackgroundStep = None

DO_NOT_USE = datamodels.dqflags.pixel["DO_NOT_USE"]
OUTLIER = datamodels.dqflags.pixel["OUTLIER"]
FLUX_ESTIMATED = datamodels.dqflags.pixel["FLUX_ESTIMATED"]
SLIT = "S200A1"
SMALL = dict(nx=64, ny=14, lines=0, seed=1)


def _slit(**kwargs):
    return simulate.make_slit(**{**SMALL, **kwargs})[0]


def _cut(model, rows=slice(None), cols=slice(None)):
    """A SlitModel cut to some rows/columns, wavelengths from its array (the WCS would not fit)."""
    out = datamodels.SlitModel()
    out.update(model)
    for key in ("data", "dq", "err", "var_poisson", "var_rnoise", "var_flat", "wavelength"):
        setattr(out, key, np.ascontiguousarray(getattr(model, key)[..., rows, cols]))
    out.name = model.name
    out.meta.wcsinfo.dispersion_direction = 1
    return out


def _without_variances(model, keep_err):
    out = datamodels.SlitModel(data=model.data, dq=model.dq, wavelength=model.wavelength)
    out.update(model)
    out.meta.wcs, out.name = model.meta.wcs, model.name
    if keep_err:
        out.err = model.err
    return out


def _set(model, **arrays):
    for key, value in arrays.items():
        if callable(value):
            value = value(getattr(model, key))
        current = getattr(model, key)
        shape = np.shape(value) if np.ndim(value) else current.shape
        setattr(model, key, np.array(np.broadcast_to(value, shape), dtype=current.dtype))
    return model


def _no_wcs(model, wavelength=True):
    model.meta.wcs = None
    if not wavelength:
        model.wavelength = np.zeros(model.data.shape, np.float32)
    return model


def _nan_integration():
    model, _ = simulate.make_tso(nints=4, slit_name=SLIT, **SMALL)
    model.data[2] = np.nan
    return model


def _file(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content) if isinstance(content, bytes) else path.write_text(content)
    return str(path)


def _example_bytes(tmp_path):
    return simulate.write_example(tmp_path / "good_cal.fits", kind="nirspec_fs", seed=1).read_bytes()


def _other_slit_product(cls):
    return cls.call(_slit(slit_name="S400A1"))


def _trace_outside():
    trace = TraceStep.call(_slit())
    trace.traces[0].center = trace.traces[0].center + 40
    return trace


# Each fault: (build(tmp_path) -> input, products(-> dict of trace/psf), outcome).
# outcome: ("error", exception class, regex) or ("ok", regex of a log message that says how it coped, or None).
FAULTS = {
    "numpy array, not a datamodel": (lambda t: np.zeros((10, 10)), None,
                                     ("error", InputError, "numpy array is not a JWST datamodel")),
    "an int, not a datamodel": (lambda t: 42, None, ("error", InputError, "cannot open 42 as a JWST datamodel")),
    "missing file": (lambda t: str(t / "nope_cal.fits"), None, ("error", InputError, r"nope_cal\.fits.*No such file")),
    "truncated FITS": (lambda t: _file(t, "trunc_cal.fits", _example_bytes(t)[:40000]), None,
                       ("error", InputError, r"trunc_cal\.fits.*truncated or corrupt")),
    "corrupt FITS": (lambda t: _file(t, "bad_cal.fits", b"SIMPLE  = nonsense" + bytes(range(256)) * 20), None,
                     ("error", InputError, r"bad_cal\.fits.*not appear to be a valid FITS")),
    "wrong model type": (lambda t: datamodels.MultiSpecModel(), None,
                         ("error", InputError, "MultiSpecModel is not a supported input")),
    "empty MultiSlitModel": (lambda t: datamodels.MultiSlitModel(), None, ("error", InputError, "has no slits")),
    "empty association": (lambda t: _file(t, "empty_asn.json", json.dumps({"asn_id": "a", "products": []})), None,
                          ("error", InputError, r"empty_asn\.json is an association")),
    "association of files": (lambda t: _file(t, "one_asn.json", json.dumps(
        {"asn_id": "a", "products": [{"name": "p", "members": [{"expname": "x_cal.fits", "exptype": "science"}]}]})),
        None, ("error", InputError, r"one_asn\.json is an association.*each member")),
    "no data array": (lambda t: _set(_slit(), data=np.zeros((0, 0))), None,
                      ("error", SlitError, rf"slit {SLIT}: has no 2D or 3D data")),
    "no WCS and no wavelength": (lambda t: _no_wcs(_slit(), wavelength=False), None,
                                 ("error", SlitError, rf"slit {SLIT}: has neither a WAVELENGTH array nor a WCS")),
    "no WCS, wavelength array": (lambda t: _no_wcs(_slit()), None, ("ok", None)),
    "NaN wavelengths": (lambda t: _set(_no_wcs(_slit()), wavelength=lambda w: w * np.nan), None,
                        ("error", SlitError, rf"slit {SLIT}: has no finite wavelength")),
    "no dispersion direction": (lambda t: _set_dispersion(_slit(), None), None,
                                ("error", SlitError, rf"slit {SLIT}: meta.wcsinfo.dispersion_direction is not set")),
    "no variance arrays, no ERR": (lambda t: _without_variances(_slit(), keep_err=False), None,
                                   ("error", SlitError, rf"slit {SLIT}: has no variance arrays")),
    "ERR only": (lambda t: _without_variances(_slit(), keep_err=True), None, ("ok", r"using ERR\*\*2")),
    "VAR_RNOISE shape mismatch": (lambda t: _set(_slit(), var_rnoise=np.ones((5, 5))), None,
                                  ("error", SlitError, rf"slit {SLIT}: VAR_RNOISE has shape \(5, 5\)")),
    "WAVELENGTH shape mismatch": (lambda t: _set(_no_wcs(_slit()), wavelength=np.ones((3, 3))), None,
                                  ("error", SlitError, rf"slit {SLIT}: WAVELENGTH has shape \(3, 3\)")),
    "all NaN": (lambda t: _set(_slit(), data=lambda d: d * np.nan), None,
                ("error", SlitError, rf"slit {SLIT}: has no usable pixel .*NaN or infinite in SCI")),
    "all DQ DO_NOT_USE": (lambda t: _set(_slit(), dq=lambda d: d | DO_NOT_USE), None,
                          ("error", SlitError, rf"slit {SLIT}: has no usable pixel .*{14 * 64} flagged DO_NOT_USE")),
    "zero variances and ERR": (lambda t: _set(_slit(), var_rnoise=0, var_poisson=0, var_flat=0, err=0), None,
                               ("error", SlitError, rf"slit {SLIT}: has no variance arrays")),
    "zero read noise": (lambda t: _set(_slit(), var_rnoise=0), None, ("ok", None)),
    "negative variance everywhere": (lambda t: _set(_slit(), var_rnoise=lambda v: -v), None,
                                     ("error", SlitError, rf"slit {SLIT}: has no usable pixel .*negative")),
    "negative variance in 2 rows": (lambda t: _set(_slit(), var_rnoise=lambda v: np.where(
        np.arange(14)[:, None] < 2, -1.0, v)), None, ("ok", r"128 pixels with a negative or non-finite variance")),
    "infinite variance everywhere": (lambda t: _set(_slit(), var_poisson=np.inf), None,
                                     ("error", SlitError, rf"slit {SLIT}: has no usable pixel")),
    "infinite variance in 5 columns": (lambda t: _set(_slit(), var_poisson=lambda v: np.where(
        (np.arange(64) >= 10) & (np.arange(64) < 15), np.inf, v)), None, ("ok", r"70 pixels with a negative")),
    "one integration": (lambda t: simulate.make_tso(nints=1, slit_name=SLIT, **SMALL)[0], None, ("ok", None)),
    "an all-NaN integration": (lambda t: _nan_integration(), None, ("ok", None)),
    "a single column": (lambda t: _cut(_slit(), cols=slice(30, 31)), None, ("ok", None)),
    "a single row": (lambda t: _cut(_slit(), rows=slice(7, 8)), None, ("ok", None)),
    "trace outside the slit": (lambda t: _slit(), lambda: {"trace": _trace_outside()},
                               ("error", SlitError, rf"slit {SLIT}: the given trace leaves the slit")),
    "trace for another slit": (lambda t: _slit(), lambda: {"trace": _other_slit_product(TraceStep)},
                               ("error", SlitError, rf"slit {SLIT}: the given TraceModel has no entry")),
    "profile for another slit": (lambda t: _slit(), lambda: {"psf": _other_slit_product(PsfFitStep)},
                                 ("error", SlitError, rf"slit {SLIT}: the given ProfileModel has no entry")),
}


def _set_dispersion(model, value):
    model.meta.wcsinfo.dispersion_direction = value
    return model


STEPS = {
    "optx_extract": (OptimalExtractStep, {}),
    "optx_extract box": (OptimalExtractStep, {"extraction_type": "box"}),
    "optx_trace": (TraceStep, {}),
    "optx_psf": (PsfFitStep, {}),
}
if BackgroundStep is not None:
    STEPS["optx_background"] = (BackgroundStep, {})
# The pipeline, with the background step skipped (its own faults are the background step's rows).
STEPS["optx_spec"] = (OptimalExtractionPipeline, {"steps": {"optx_background": {"skip": True}}})

# Where a step's outcome differs from the fault's, or the fault does not apply to it.
OVERRIDES = {
    ("optx_extract", "an all-NaN integration"): ("ok", r"integration\(s\) 3 have no usable pixel"),
    ("optx_extract box", "an all-NaN integration"): ("ok", r"integration\(s\) 3 have no usable pixel"),
    ("optx_spec", "an all-NaN integration"): ("ok", r"integration\(s\) 3 have no usable pixel"),
    ("optx_background", "a single row"): ("error", SlitError, rf"slit {SLIT}: has a single row .*no background pixel"),
}
PRODUCT_INPUTS = {"optx_extract": ("trace", "psf"), "optx_extract box": ("trace", "psf"), "optx_psf": ("trace",)}


def _rows():
    for step in STEPS:
        for fault, (_, products, _) in FAULTS.items():
            if products is not None and not _takes(step, fault):
                continue
            yield pytest.param(step, fault, id=f"{step}-{fault}")


def _takes(step, fault):
    """Whether the step takes the product a fault is about."""
    wanted = {"trace outside the slit": "trace", "trace for another slit": "trace",
              "profile for another slit": "psf"}[fault]
    return wanted in PRODUCT_INPUTS.get(step, ())


def _run(step_name, inputs, products):
    cls, params = STEPS[step_name]
    if not products:
        return cls.call(inputs, **params)
    step = cls(**params)
    if cls is PsfFitStep:
        return step.run(inputs, products["trace"])
    return step.run(inputs, products.get("trace"), products.get("psf"))


@pytest.mark.parametrize("step_name, fault", list(_rows()))
def test_fault_matrix(step_name, fault, tmp_path, caplog, monkeypatch):
    monkeypatch.chdir(tmp_path)
    build, products, outcome = FAULTS[fault]
    outcome = OVERRIDES.get((step_name, fault), outcome)
    inputs = build(tmp_path)
    given = products() if products else {}
    caplog.set_level(logging.INFO, logger="jwst_optextract")
    if outcome[0] == "error":
        _, error, pattern = outcome
        with pytest.raises(error, match=pattern) as raised:
            _run(step_name, inputs, given)
        assert isinstance(raised.value, OptExtractError)
        return
    result = _run(step_name, inputs, given)
    _check_product(result, expected_names=[SLIT])
    if outcome[1] is not None:
        assert any(record.levelno >= logging.WARNING and re.search(outcome[1], record.getMessage())
                   for record in caplog.records), caplog.text


def _check_product(result, expected_names):
    """Valid against its schema; every slit present; x1d DQ as jwst means it."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result.validate()
    if isinstance(result, (datamodels.MultiSpecModel, datamodels.TSOMultiSpecModel)):
        assert [spec.name for spec in result.spec] == expected_names
        for spec in result.spec:
            _check_x1d_table(spec.spec_table)
    elif hasattr(result, "traces"):
        assert [entry.name for entry in result.traces] == expected_names
    elif hasattr(result, "profiles"):
        assert [entry.name for entry in result.profiles] == expected_names
    elif isinstance(result, datamodels.MultiSlitModel):
        assert [slit.name for slit in result.slits] == expected_names


def _check_x1d_table(table):
    flux, dq = np.asarray(table["FLUX"]), np.asarray(table["DQ"])
    assert np.isfinite(flux).any()
    np.testing.assert_array_equal((dq & DO_NOT_USE) > 0, np.isnan(flux))
    assert not (dq & ~np.uint32(DO_NOT_USE | OUTLIER | FLUX_ESTIMATED)).any(), \
        "only DO_NOT_USE, OUTLIER and FLUX_ESTIMATED are set"
    good = np.isfinite(flux)
    assert np.all(np.asarray(table["FLUX_ERROR"])[good] >= 0)
    for column in ("FLUX_VAR_POISSON", "FLUX_VAR_RNOISE", "FLUX_VAR_FLAT"):
        assert np.all(np.asarray(table[column])[good] >= 0), column


# Multi-slit input: the healthy slits come out, the broken one is named in a WARNING and counted.

MULTI_FAULTS = {
    "all NaN": (lambda slit: _set(slit, data=lambda d: d * np.nan), "no usable pixel"),
    "no wavelength": (lambda slit: _no_wcs(slit, wavelength=False), "neither a WAVELENGTH array nor a WCS"),
    "variance shape mismatch": (lambda slit: _set(slit, var_rnoise=np.ones((3, 3))), "VAR_RNOISE has shape"),
    "negative variance": (lambda slit: _set(slit, var_rnoise=lambda v: -v), "negative"),
}


@pytest.mark.parametrize("fault", sorted(MULTI_FAULTS))
@pytest.mark.parametrize("step_name", sorted(STEPS))
def test_multislit_keeps_the_healthy_slits_and_names_the_broken_one(step_name, fault, caplog):
    model, _ = simulate.make_multislit(3, nx=64, ny=14, lines=0, seed=2)
    names = [slit.name for slit in model.slits]
    MULTI_FAULTS[fault][0](model.slits[1])
    caplog.set_level(logging.INFO, logger="jwst_optextract")
    result = _run(step_name, model, {})
    _check_product(result, expected_names=names if step_name == "optx_background" else [names[0], names[2]])
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(names[1] in message and MULTI_FAULTS[fault][1] in message for message in warned), warned
    assert any("2 of 3 slits" in r.getMessage() and names[1] in r.getMessage() for r in caplog.records), caplog.text


@pytest.mark.parametrize("step_name", ["optx_extract", "optx_trace", "optx_psf"])
def test_an_unexpected_failure_in_one_slit_skips_only_that_slit(step_name, caplog, monkeypatch):
    """A slit that trips an error no check foresaw is skipped like any bad slit, and the error is named."""
    import jwst_optextract.drivers.runner as slits_module

    model, _ = simulate.make_multislit(3, nx=64, ny=14, lines=0, seed=2)
    names = [slit.name for slit in model.slits]
    read = slits_module.read_slit

    def fragile(slit, parent, name):
        if name == names[2]:
            raise np.linalg.LinAlgError("Singular matrix")
        return read(slit, parent, name)

    monkeypatch.setattr(slits_module, "read_slit", fragile)
    with caplog.at_level(logging.WARNING, logger="jwst_optextract"):
        result = _run(step_name, model, {})
    _check_product(result, expected_names=names[:2])
    assert f"slit {names[2]}: failed unexpectedly (LinAlgError: Singular matrix)" in caplog.text


@pytest.mark.parametrize("step_name", ["optx_extract", "optx_extract box", "optx_trace", "optx_psf"])
def test_when_no_slit_of_several_works_the_error_lists_them_all(step_name):
    model, _ = simulate.make_multislit(2, nx=64, ny=14, lines=0, seed=2)
    for slit in model.slits:
        slit.data = np.full(slit.data.shape, np.nan, np.float32)
    with pytest.raises(InputError, match=r"none of its 2 slits could be processed.*no usable pixel") as raised:
        _run(step_name, model, {})
    for slit in model.slits:
        assert slit.name in str(raised.value)


def test_a_slit_error_from_a_file_names_the_file(tmp_path):
    path = simulate.write_example(tmp_path / "nan_cal.fits", kind="nirspec_fs", seed=1)
    with datamodels.open(path) as model:
        model.slits[0].data[...] = np.nan
        model.save(path)
    for step in (OptimalExtractStep, TraceStep, PsfFitStep):
        with pytest.raises(SlitError, match=rf"^nan_cal\.fits, slit {SLIT}: has no usable pixel"):
            step.call(str(path))


def test_multislit_x1d_has_every_slit_and_validates_after_a_round_trip(tmp_path):
    model, _ = simulate.make_multislit(3, nx=64, ny=14, lines=0, seed=4)
    result = OptimalExtractStep.call(model, output_dir=str(tmp_path), output_file="multi", save_results=True)
    with datamodels.open(tmp_path / "multi_x1d.fits", strict_validation=True) as saved:
        _check_product(saved, expected_names=[slit.name for slit in model.slits])
    assert len(result.spec) == 3


# Saving: atomic, and never onto the input.


def _listing(directory):
    return sorted(os.listdir(directory))


def test_outputs_are_written_whole_with_their_own_name(tmp_path):
    path = simulate.write_example(tmp_path / "demo_cal.fits", kind="nirspec_fs", seed=1)
    OptimalExtractStep.call(str(path), output_dir=str(tmp_path), save_results=True)
    TraceStep.call(str(path), output_dir=str(tmp_path), save_results=True)
    assert _listing(tmp_path) == ["demo_cal.fits", "demo_trace.asdf", "demo_x1d.fits"]  # no temporary left
    with datamodels.open(tmp_path / "demo_x1d.fits") as x1d:
        assert x1d.meta.filename == "demo_x1d.fits"
    assert oct(os.stat(tmp_path / "demo_x1d.fits").st_mode & 0o777) != oct(0o600)


def test_the_input_is_never_overwritten(tmp_path):
    path = simulate.write_example(tmp_path / "demo_cal.fits", kind="nirspec_fs", seed=1)
    before = path.read_bytes()
    with pytest.raises(OutputError, match=r"demo_cal\.fits: it is the input file"):
        OptimalExtractStep.call(str(path), output_dir=str(tmp_path), save_results=True, suffix="cal")
    assert path.read_bytes() == before
    assert _listing(tmp_path) == ["demo_cal.fits"]


def test_a_failure_while_writing_leaves_the_old_file_and_no_partial_file(tmp_path, monkeypatch):
    model, _ = simulate.make_slit(**SMALL)
    x1d = OptimalExtractStep.call(model)
    target = tmp_path / "out_x1d.fits"
    write_atomically(x1d, str(target), protected=[])
    before = target.read_bytes()

    def interrupted(model, stream, *args, **kwargs):
        stream.write(b"SIMPLE  =                    T" + b" " * 3000)
        raise KeyboardInterrupt

    monkeypatch.setattr(base, "write_fits", interrupted)  # the FITS writer of write_atomically
    with pytest.raises(KeyboardInterrupt):
        write_atomically(x1d, str(target), protected=[])
    assert target.read_bytes() == before
    assert _listing(tmp_path) == ["out_x1d.fits"]


def test_an_output_name_without_a_known_extension_is_refused(tmp_path):
    model, _ = simulate.make_slit(**SMALL)
    with pytest.raises(OutputError, match=r"must end in \.fits or \.asdf"):
        write_atomically(TraceStep.call(model), str(tmp_path / "trace.txt"), protected=[])
    assert _listing(tmp_path) == []


# strun: a bad input ends with our message, not an error from deep inside numpy, astropy or stpipe.

STRUN = os.path.join(os.path.dirname(sys.executable), "strun")


@pytest.mark.slow
@pytest.mark.parametrize("fault, last_line", [
    ("truncated", r"^jwst_optextract\.exceptions\.InputError: cannot open 'demo_cal\.fits' .*truncated or corrupt"),
    ("all NaN", rf"^jwst_optextract\.exceptions\.SlitError: demo_cal\.fits, slit {SLIT}: has no usable pixel"),
])
def test_strun_on_a_bad_input_ends_with_our_message(tmp_path, fault, last_line):
    path = simulate.write_example(tmp_path / "demo_cal.fits", kind="nirspec_fs", seed=1)
    if fault == "truncated":
        path.write_bytes(path.read_bytes()[:40000])
    else:
        with datamodels.open(path) as model:
            model.slits[0].data[...] = np.nan
            model.save(path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRDS")}
    env["CRDS_PATH"] = str(tmp_path / "no_crds_cache")
    run = subprocess.run([STRUN, "optx_extract", path.name], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=300)
    assert run.returncode != 0
    assert re.search(last_line, run.stderr.strip().splitlines()[-1]), run.stderr[-2000:]
    assert _listing(tmp_path) == ["demo_cal.fits", "no_crds_cache"] or _listing(tmp_path) == ["demo_cal.fits"]
