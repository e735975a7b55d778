"""The pipelines end to end, offline, and the x1d products in the jwst ecosystem."""

import os
import subprocess
import sys

import numpy as np
import pytest
from stdatamodels.jwst import datamodels

from jwst_optextract import OptimalExtractionPipeline, OptimalExtractStep, OptSpec2Pipeline, simulate
from jwst_optextract.steps.base import OptxStep

pytestmark = pytest.mark.slow

STRUN = os.path.join(os.path.dirname(sys.executable), "strun")


def _offline_env(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRDS")}
    env["CRDS_PATH"] = str(tmp_path / "no_crds_cache")
    return env


def test_strun_optx_spec_on_a_raw_cal_file_reaches_cramer_rao(tmp_path):
    """Background with gradients, curved trace, Moffat wings, cosmic rays: the whole chain."""
    model, truth = simulate.make_slit(
        nx=2048, ny=32, flux=0.5, background=2.0, background_gradient=(0.25, 0.1), profile="moffat",
        width=(1.2, 2.0), trace_curvature=2.0, cosmic_ray_fraction=0.002, seed=4,
    )
    model.save(tmp_path / "raw_cal.fits")
    run = subprocess.run([STRUN, "optx_spec", "raw_cal.fits"], cwd=tmp_path, env=_offline_env(tmp_path),
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    with datamodels.open(tmp_path / "raw_x1d.fits") as x1d:
        assert x1d.meta.cal_step.optx_extract == "COMPLETE"
        flux = np.array(x1d.spec[0].spec_table["FLUX"])
    cramer_rao = simulate.cramer_rao_variance(truth)
    bias = np.nansum(flux) - truth.flux.sum()
    assert abs(bias) < max(1e-3 * truth.flux.sum(), 3 * np.sqrt(cramer_rao.sum())), bias / truth.flux.sum()
    z = (flux - truth.flux) / np.sqrt(cramer_rao)
    assert abs(np.nanvar(z) - 1) < 0.10, np.nanvar(z)


def test_optx_spec_integrations_give_x1dints_and_steps_can_be_skipped():
    model, truth = simulate.make_tso(nints=20, nx=256, flux=200.0, jitter_rms=0.02, seed=3)
    result = OptimalExtractionPipeline.call(model, steps={"optx_background": {"skip": True}})
    assert isinstance(result, datamodels.TSOMultiSpecModel)
    assert result.spec[0].spec_table["FLUX"].shape == (20, 256)
    z = (result.spec[0].spec_table["FLUX"] - truth.flux) / np.sqrt(simulate.cramer_rao_variance(truth))
    assert abs(z.mean()) < 0.1 and abs(z.var() - 1) < 0.15


class WcsAlreadyAssigned(OptxStep):
    """Stands in for assign_wcs (which needs CRDS references) on an input that has its WCS."""

    class_alias = "assign_wcs"

    def process(self, model):
        model = datamodels.open(model)
        model.meta.cal_step.assign_wcs = "COMPLETE"
        return model


class OfflineSpec2(OptSpec2Pipeline):
    step_defs = {**OptSpec2Pipeline.step_defs, "assign_wcs": WcsAlreadyAssigned}


def test_optx_spec2_runs_offline_with_our_extraction(tmp_path, monkeypatch):
    """calwebb_spec2 with extract_1d replaced; the jwst steps that need CRDS are skipped or stood in for."""
    import stpipe.crds_client

    # jwst's own sub-pipelines (master_background_mos) ask CRDS for the context
    # when they finish, even when skipped; our steps never do.
    monkeypatch.setattr(stpipe.crds_client, "get_context_used", lambda observatory: "jwst_offline.pmap")
    model, _ = simulate.make_slit(nx=300, flux=100.0, seed=2)
    path = tmp_path / "sim_rate.fits"
    model.save(path)
    skip = {name: {"skip": True} for name in OptSpec2Pipeline.step_defs if name not in ("extract_1d", "assign_wcs")}
    OfflineSpec2(steps=skip, output_dir=str(tmp_path), save_results=True).run(str(path))
    products = list(tmp_path.glob("*_x1d.fits"))
    assert products, list(tmp_path.iterdir())
    with datamodels.open(products[0]) as x1d:
        assert x1d.meta.cal_step.optx_extract == "COMPLETE"
        assert np.isfinite(x1d.spec[0].spec_table["FLUX"]).mean() > 0.95


def test_jwst_combine_1d_accepts_our_products(tmp_path):
    from jwst.combine_1d import Combine1dStep
    from jwst.datamodels import ModelContainer

    spectra = []
    for seed in (1, 2):
        model, _ = simulate.make_slit(nx=300, units="MJy/sr", exp_type="MIR_LRS-FIXEDSLIT", seed=seed)
        x1d = OptimalExtractStep.call(model)
        x1d.meta.filename = f"exp{seed}_x1d.fits"
        x1d.validate()
        spectra.append(x1d)
    combined = Combine1dStep().run(ModelContainer(spectra))  # .run: no CRDS parameter lookup
    flux = combined.spec[0].spec_table["FLUX"]
    assert np.isfinite(flux).sum() > 250
    single = spectra[0].spec[0].spec_table["FLUX"]
    assert np.nanmedian(flux) == pytest.approx(np.nanmedian(single), rel=0.05)


def test_optx_spec2_and_spec3_replace_only_extract_1d():
    from jwst.pipeline import Spec2Pipeline, Spec3Pipeline

    from jwst_optextract import OptSpec3Pipeline

    for ours, theirs in ((OptSpec2Pipeline, Spec2Pipeline), (OptSpec3Pipeline, Spec3Pipeline)):
        assert ours.step_defs["extract_1d"] is OptimalExtractStep
        assert {k: v for k, v in ours.step_defs.items() if k != "extract_1d"} == {
            k: v for k, v in theirs.step_defs.items() if k != "extract_1d"}
        pipeline = ours()
        assert isinstance(pipeline.extract_1d, OptimalExtractStep)
