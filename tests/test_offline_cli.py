"""The step from strun, Step.call and parameter files, with no CRDS server and no cache."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from stdatamodels.jwst import datamodels

from jwst_optextract import OptimalExtractStep, simulate
from jwst_optextract.steps.base import packaged_reference

pytestmark = pytest.mark.slow

STRUN = [os.path.join(os.path.dirname(sys.executable), "strun")]


def offline_env(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRDS")}
    env["CRDS_PATH"] = str(tmp_path / "no_crds_cache")
    return env


def strun(args, tmp_path):
    return subprocess.run(STRUN + args, cwd=tmp_path, env=offline_env(tmp_path),
                          capture_output=True, text=True, timeout=300)


@pytest.fixture
def cal_file(tmp_path):
    return simulate.write_example(tmp_path / "demo_cal.fits", kind="nirspec_fs", seed=1)


def test_strun_alias_writes_x1d_and_logs(cal_file, tmp_path):
    run = strun(["optx_extract", cal_file.name], tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    log = run.stdout + run.stderr
    assert "jwst_optextract.steps.base - INFO - Extracted 1 of 1 slits" in log
    out = tmp_path / "demo_x1d.fits"
    with datamodels.open(out) as x1d:
        assert isinstance(x1d, datamodels.MultiSpecModel)
        assert x1d.meta.cal_step.optx_extract == "COMPLETE"
        assert np.isfinite(x1d.spec[0].spec_table["FLUX"]).mean() > 0.95


def test_strun_class_name_and_parameter_file(cal_file, tmp_path):
    run = strun(["jwst_optextract.OptimalExtractStep", cal_file.name, "--extraction_type=box",
                 "--ystart=12", "--ystop=20", "--save-parameters=params.asdf", "--output_file=box"], tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    with datamodels.open(tmp_path / "box_x1d.fits") as x1d:
        np.testing.assert_allclose(x1d.spec[0].spec_table["NPIXELS"][100], 9.0)
    run = strun(["params.asdf", cal_file.name, "--output_file=again"], tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    with datamodels.open(tmp_path / "again_x1d.fits") as x1d:
        np.testing.assert_allclose(x1d.spec[0].spec_table["NPIXELS"][100], 9.0)
    step = OptimalExtractStep.from_config_file(str(tmp_path / "params.asdf"))
    assert step.extraction_type == "box" and step.ystop == 20


def test_reference_override_changes_the_defaults(cal_file, tmp_path):
    reference = json.loads(open(packaged_reference("optxextract")).read())
    reference["exp_type"]["NRS_FIXEDSLIT"]["extract_width"] = 3.0
    path = tmp_path / "my_optxextract.json"
    path.write_text(json.dumps(reference))
    wide = OptimalExtractStep.call(str(cal_file), extraction_type="box")
    narrow = OptimalExtractStep.call(str(cal_file), extraction_type="box", override_optxextract=str(path))
    assert np.nanmedian(wide.spec[0].spec_table["NPIXELS"]) == pytest.approx(5.0)
    assert np.nanmedian(narrow.spec[0].spec_table["NPIXELS"]) == pytest.approx(3.0)


def test_integrations_are_saved_as_x1dints(tmp_path):
    path = simulate.write_example(tmp_path / "bots_calints.fits", kind="nirspec_bots", seed=2)
    run = strun(["optx_extract", path.name], tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    with datamodels.open(tmp_path / "bots_x1dints.fits") as x1d:
        assert isinstance(x1d, datamodels.TSOMultiSpecModel)


def test_bad_input_ends_with_our_message(tmp_path):
    path = tmp_path / "not_a_slit.fits"
    datamodels.MultiSpecModel().save(path)
    run = strun(["optx_extract", path.name], tmp_path)
    assert run.returncode != 0
    last = run.stderr.strip().splitlines()[-1]
    assert "InputError" in last and "is not a supported input" in last


@pytest.mark.parametrize("source_type, column, unit",
                         [("POINT", "FLUX", "Jy"), ("EXTENDED", "SURF_BRIGHT", "MJy / sr")])
def test_specutils_reads_a_calibrated_x1d(tmp_path, source_type, column, unit):
    specutils = pytest.importorskip("specutils")
    model, _ = simulate.make_slit(nx=300, units="MJy/sr", exp_type="MIR_LRS-FIXEDSLIT", seed=3)
    model.source_type = source_type
    result = OptimalExtractStep.call(model)
    path = tmp_path / "cal_x1d.fits"
    result.save(path)
    spectrum = specutils.Spectrum.read(path)  # identified as a JWST x1d by itself
    assert spectrum.flux.unit == unit
    assert spectrum.spectral_axis.unit == "um"
    np.testing.assert_allclose(spectrum.flux.value, result.spec[0].spec_table[column], rtol=1e-12)
    assert np.all(spectrum.flux.value > 0)


def test_strun_trace_and_psf_write_asdf_products_the_extraction_accepts(cal_file, tmp_path):
    for alias in ("optx_trace", "optx_psf"):
        run = strun([alias, cal_file.name, "--save_plots=True"], tmp_path)
        assert run.returncode == 0, run.stderr[-3000:]
    assert (tmp_path / "demo_trace.asdf").exists() and (tmp_path / "demo_psf.asdf").exists()
    assert list(tmp_path.glob("demo_*_psf.png"))
    run = strun(["optx_extract", cal_file.name, "--trace=demo_trace.asdf", "--psf=demo_psf.asdf",
                 "--output_file=given"], tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    with datamodels.open(tmp_path / "given_x1d.fits") as x1d:
        assert np.isfinite(x1d.spec[0].spec_table["FLUX"]).mean() > 0.95
