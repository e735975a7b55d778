"""Box extraction agrees with jwst's own Extract1dStep, run offline, to 1e-6."""

import json

import numpy as np
import pytest
from jwst.extract_1d import Extract1dStep
from stdatamodels.jwst import datamodels

from jwst_optextract import OptimalExtractStep, simulate

pytestmark = pytest.mark.slow

COLUMNS = [
    "WAVELENGTH", "FLUX", "FLUX_ERROR", "FLUX_VAR_POISSON", "FLUX_VAR_RNOISE", "FLUX_VAR_FLAT",
    "SURF_BRIGHT", "SB_ERROR", "SB_VAR_POISSON", "SB_VAR_RNOISE", "SB_VAR_FLAT", "NPIXELS", "DQ",
]


class OfflineExtract1dStep(Extract1dStep):
    """jwst's step, whose finalize_result would ask CRDS for the context."""

    def finalize_result(self, result, reference_files_used):
        super().finalize_result(result, [])


def run_jwst_box(model, aperture, tmp_path):
    ref = {"reftype": "EXTRACT1D", "instrument": "ANY", "telescope": "JWST", "exp_type": "ANY",
           "apertures": [{"id": "ANY", "region_type": "target", **aperture}]}
    path = tmp_path / "extract1d.json"
    path.write_text(json.dumps(ref))
    # .run, not .call: .call looks up parameter references in CRDS
    step = OfflineExtract1dStep(override_extract1d=str(path), override_psf="N/A",
                                apply_apcorr=False, use_source_posn=False, subtract_background=False)
    return step.run(model.copy())


CASES = {
    "nirspec-fs-DN/s": (dict(units="DN/s"), dict(ystart=10.3, ystop=20.6)),
    "nirspec-fs-MJy/sr-extended": (dict(units="MJy/sr"), dict(ystart=12.0, ystop=19.25, xstart=20, xstop=380)),
    "nirspec-fs-MJy-point": (dict(units="MJy"), dict(ystart=11.5, ystop=21.5)),
    "miri-lrs-along-y": (
        dict(dispersion_axis=2, exp_type="MIR_LRS-FIXEDSLIT", units="MJy/sr"),
        dict(xstart=12.5, xstop=19.25, ystart=4, ystop=380),
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_box_matches_jwst_extract_1d(case, tmp_path):
    config, aperture = CASES[case]
    model, _ = simulate.make_slit(nx=400, ny=32, seed=21, nan_fraction=0.01, nan_columns=1,
                                  flat_error=0.01, **config)
    ours = OptimalExtractStep.call(model.copy(), extraction_type="box", **aperture)
    theirs = run_jwst_box(model, aperture, tmp_path)
    a, b = ours.spec[0].spec_table, theirs.spec[0].spec_table
    assert len(a) == len(b)
    for column in COLUMNS:
        assert a.columns[column].unit == b.columns[column].unit, column
        np.testing.assert_allclose(a[column], b[column], rtol=1e-6, atol=0, equal_nan=True, err_msg=column)
    assert np.isnan(a["FLUX"]).any()  # the NaN column is there, flagged, as in jwst
    for key in ("extraction_xstart", "extraction_xstop", "extraction_ystart", "extraction_ystop"):
        assert getattr(ours.spec[0], key) == pytest.approx(getattr(theirs.spec[0], key)), key


def test_box_matches_jwst_for_integrations(tmp_path):
    model, _ = simulate.make_tso(nints=4, nx=200, ny=24, seed=3)
    aperture = dict(ystart=8.4, ystop=15.7)
    ours = OptimalExtractStep.call(model.copy(), extraction_type="box", **aperture)
    theirs = run_jwst_box(model, aperture, tmp_path)
    assert isinstance(ours, datamodels.TSOMultiSpecModel)
    for column in COLUMNS + ["INT_NUM", "MJD-AVG", "TDB-MID"]:
        np.testing.assert_allclose(ours.spec[0].spec_table[column], theirs.spec[0].spec_table[column],
                                   rtol=1e-6, equal_nan=True, err_msg=column)
