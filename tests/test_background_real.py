"""BackgroundStep ``nod`` on the real CEERS NIRSpec PRISM MOS nods in ../shared/data."""

from pathlib import Path

import numpy as np
import pytest
from stdatamodels.jwst import datamodels

from jwst_optextract import OptimalExtractStep
from jwst_optextract.steps.background_step import BackgroundStep

CEERS = Path(__file__).resolve().parents[2] / "shared" / "data" / "real" / "nirspec_mos_ceers_prism"
NODS = sorted(CEERS.glob("jw01345062001_03101_0000?_nrs2_phot.138.1345_933.fits"))

pytestmark = pytest.mark.skipif(len(NODS) != 3, reason=f"the CEERS nods are not in {CEERS}")


@pytest.mark.filterwarnings("ignore:All-NaN slice")
@pytest.mark.parametrize("index", [0, 1, 2])
def test_nod_differencing_of_the_ceers_nods(index):
    others = [str(path) for i, path in enumerate(NODS) if i != index]
    result = BackgroundStep.call(str(NODS[index]), method="nod", background=others)
    assert result.meta.cal_step.optx_background == "COMPLETE"
    with datamodels.open(NODS[index]) as this, datamodels.open(others[0]) as a, datamodels.open(others[1]) as b:
        with np.errstate(invalid="ignore", over="ignore"):
            expected = this.data - 0.5 * (a.data + b.data)
            expected_var = this.var_rnoise + 0.25 * (a.var_rnoise + b.var_rnoise)
        both = np.isfinite(expected) & np.isfinite(result.data)
        assert both.mean() > 0.5
        np.testing.assert_allclose(result.data[both], expected[both], rtol=1e-5,
                                   atol=1e-6 * np.nanmax(np.abs(expected)))
        np.testing.assert_allclose(result.var_rnoise[both], expected_var[both], rtol=1e-5)
        # the sky is gone: away from the traces the rows average to zero within their errors
        rows = np.nanmedian(np.where(np.isfinite(result.data), result.data, np.nan), axis=1)
        assert np.nanmedian(np.abs(rows)) < 0.2 * np.nanmedian(np.abs(np.nanmedian(this.data, axis=1)))
    table = OptimalExtractStep.call(result).spec[0].spec_table
    ok = np.isfinite(table["FLUX"])
    assert ok.mean() > 0.9
    # the two emission lines are clear detections in the differenced nod
    for line in (2.61, 3.44):
        near = ok & (np.abs(table["WAVELENGTH"] - line) < 0.04)
        flux, error = table["FLUX"][near].sum(), np.sqrt((table["FLUX_ERROR"][near] ** 2).sum())
        print(f"nod {index}: line {line} um flux {flux:.3g} Jy, S/N {flux / error:.1f}")
        assert flux > 10 * error
