"""The Dask batch runner: many files, parameters passed through, one failure reported, the rest done."""

import os
import subprocess
import sys

import numpy as np
import pytest
from stdatamodels.jwst import datamodels

from jwst_optextract import OptimalExtractStep, simulate
from jwst_optextract.tools.batch import parse_parameters, resolve_step, run_batch, slit_ranges

distributed = pytest.importorskip("dask.distributed")


def _offline_env(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRDS")}
    env["CRDS_PATH"] = str(tmp_path / "no_crds_cache")
    return env


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """Two small _cal files and one of the wrong type (an x1d product)."""
    directory = tmp_path_factory.mktemp("batch_inputs")
    paths = []
    for seed in (1, 2):
        model, _ = simulate.make_slit(nx=160, ny=16, flux=20.0, seed=seed)
        paths.append(str(directory / f"source{seed}_cal.fits"))
        model.save(paths[-1])
    x1d = OptimalExtractStep.call(datamodels.open(paths[0]), profile_kind="gaussian")
    paths.insert(1, str(directory / "wrong_x1d.fits"))
    x1d.save(paths[1])
    return paths


def test_parse_parameters_nests_pipeline_steps():
    assert parse_parameters(["extraction_type=box", "steps.optx_extract.extract_width=4", "a.b.c=x=y"]) == {
        "extraction_type": "box", "steps": {"optx_extract": {"extract_width": "4"}}, "a": {"b": {"c": "x=y"}}}
    with pytest.raises(ValueError, match="NAME=VALUE"):
        parse_parameters(["extraction_type"])


def test_resolve_step_by_alias_or_class_path():
    assert resolve_step("optx_extract") is OptimalExtractStep
    assert resolve_step("jwst_optextract.OptimalExtractStep") is OptimalExtractStep
    assert resolve_step("optx_spec").class_alias == "optx_spec"
    with pytest.raises(ValueError, match="not the alias"):
        resolve_step("no_such_step")


def test_run_batch_passes_parameters_and_reports_the_failure(inputs, tmp_path):
    config = tmp_path / "box.asdf"
    OptimalExtractStep(extraction_type="box", extract_width=3.0).export_config(str(config))
    with distributed.Client(processes=False, n_workers=1, threads_per_worker=2, dashboard_address=None) as client:
        results = run_batch("optx_extract", inputs, str(tmp_path / "out"), {"extract_width": "4"},
                            config_file=str(config), client=client, progress=False)
    assert [r.input for r in results] == [os.path.abspath(p) for p in inputs]
    good = [results[0], results[2]]
    assert all(r.error is None and len(r.outputs) == 1 for r in good)
    assert "InputError" in results[1].error and "MultiSpecModel" in results[1].error
    for result in good:
        with datamodels.open(result.outputs[0]) as x1d:
            # box from the parameter file, width from the parameter: NPIXELS is the box width
            np.testing.assert_allclose(np.asarray(x1d.spec[0].spec_table["NPIXELS"]), 4.0)
        assert os.path.getsize(result.log_file) > 0
    with open(results[1].log_file) as handle:
        assert "InputError" in handle.read()


@pytest.mark.slow
def test_command_line_on_a_local_cluster(inputs, tmp_path):
    out = tmp_path / "out"
    run = subprocess.run(
        [sys.executable, "-m", "jwst_optextract", "optx_extract", *inputs, "-o", str(out), "--workers", "1",
         "--param", "extraction_type=box"],
        env=_offline_env(tmp_path), capture_output=True, text=True, timeout=300, check=False,
    )
    assert run.returncode == 1, run.stderr[-3000:]
    assert "2 of 3 inputs done" in run.stdout
    assert f"FAILED  {inputs[1]}: InputError" in run.stdout
    assert sorted(p.name for p in out.glob("*.fits")) == ["source1_x1d.fits", "source2_x1d.fits"]
    with datamodels.open(out / "source2_x1d.fits") as x1d:
        assert x1d.meta.cal_step.optx_extract == "COMPLETE"
        assert np.isfinite(np.asarray(x1d.spec[0].spec_table["FLUX"])).mean() > 0.9


def test_slit_tasks_merge_into_the_whole_file_product(tmp_path):
    model, _ = simulate.make_multislit(n_slits=5, nx=200, ny=20, flux=20.0, seed=8)
    model.slits[3].data[...] = np.nan  # a slit no step can use: skipped in its part, as in the whole file
    path = str(tmp_path / "jw01234001001_03101_00001_nrs1_cal.fits")
    model.save(path)
    assert slit_ranges(path, 2) == [(0, 2), (2, 5)]
    assert slit_ranges(path, 9) == [(k, k + 1) for k in range(5)] and slit_ranges(path, 1) == []
    whole = OptimalExtractStep.call(path, profile_kind="gaussian")
    out = tmp_path / "out"
    with distributed.Client(processes=False, n_workers=1, threads_per_worker=2, dashboard_address=None) as client:
        [result] = run_batch("optx_extract", [path], str(out), {"profile_kind": "gaussian"}, client=client,
                             progress=False, slit_tasks=2)
    assert result.error is None and result.outputs == [str(out / "jw01234001001_03101_00001_nrs1_x1d.fits")]
    with datamodels.open(result.outputs[0]) as merged:
        assert [spec.name for spec in merged.spec] == [spec.name for spec in whole.spec]
        assert len(merged.spec) == 4 and model.slits[3].name not in [spec.name for spec in merged.spec]
        for ours, theirs in zip(merged.spec, whole.spec):
            for column in ("WAVELENGTH", "FLUX", "FLUX_ERROR", "DQ", "NPIXELS"):
                np.testing.assert_array_equal(np.asarray(ours.spec_table[column]),
                                              np.asarray(theirs.spec_table[column]), err_msg=column)
    assert sorted(os.listdir(out)) == ["jw01234001001_03101_00001_nrs1_cal.fits.log",
                                       "jw01234001001_03101_00001_nrs1_x1d.fits"]  # the parts' folders are gone
    with open(result.log_file) as handle:
        text = handle.read()
    assert text.count("=== jw01234001001_03101_00001_nrs1_cal.fits.slits") == 2 and "Skipping" in text
