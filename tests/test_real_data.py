"""Real JWST data: the CEERS NIRSpec PRISM MOS nods in ../shared/data."""

from pathlib import Path

import numpy as np
import pytest
from stdatamodels.jwst import datamodels

from jwst_optextract import OptimalExtractStep

CEERS = Path(__file__).resolve().parents[2] / "shared" / "data" / "real" / "nirspec_mos_ceers_prism"
NODS = sorted(CEERS.glob("jw01345062001_03101_0000?_nrs2_phot.138.1345_933.fits"))

pytestmark = pytest.mark.skipif(len(NODS) != 3, reason=f"the CEERS nods are not in {CEERS}")


def nod_difference(index: int) -> datamodels.SlitModel:
    """One nod minus the mean of the other two, with the variances propagated."""
    nods = [datamodels.open(path) for path in NODS]
    this = nods[index]
    others = [nod for i, nod in enumerate(nods) if i != index]
    diff = this.copy()
    with np.errstate(over="ignore", invalid="ignore"):
        diff.data = this.data - 0.5 * (others[0].data + others[1].data)
        for key in ("var_poisson", "var_rnoise", "var_flat"):
            setattr(diff, key, getattr(this, key) + 0.25 * (getattr(others[0], key) + getattr(others[1], key)))
    diff.dq = this.dq | others[0].dq | others[1].dq
    return diff


@pytest.mark.parametrize("index", [0, 1, 2])
def test_optimal_beats_box_on_the_ceers_nods(index):
    diff = nod_difference(index)
    optimal = OptimalExtractStep.call(diff).spec[0].spec_table
    box = OptimalExtractStep.call(diff, extraction_type="box", extract_width=5).spec[0].spec_table
    assert optimal.columns["FLUX"].unit == "Jy"  # MJy/sr data (calibrated by msaexp, BUNIT says so)
    ok = np.isfinite(optimal["FLUX"]) & np.isfinite(box["FLUX"]) & (box["FLUX_ERROR"] > 0)
    assert ok.mean() > 0.9
    error_ratio = np.median(optimal["FLUX_ERROR"][ok] / box["FLUX_ERROR"][ok])
    assert error_ratio < 0.95, error_ratio
    snr_opt = np.median(optimal["FLUX"][ok] / optimal["FLUX_ERROR"][ok])
    snr_box = np.median(box["FLUX"][ok] / box["FLUX_ERROR"][ok])
    print(f"nod {index}: error ratio {error_ratio:.3f}, median S/N optimal {snr_opt:.3f} box {snr_box:.3f}")
    assert snr_opt > snr_box, (snr_opt, snr_box)
    # The two emission lines have the same flux in both extractions, within the errors.
    for line in (2.61, 3.44):
        near = ok & (np.abs(optimal["WAVELENGTH"] - line) < 0.04)
        f_opt, f_box = optimal["FLUX"][near].sum(), box["FLUX"][near].sum()
        sigma = np.sqrt((optimal["FLUX_ERROR"][near] ** 2).sum() + (box["FLUX_ERROR"][near] ** 2).sum())
        assert f_opt > 10 * np.sqrt((optimal["FLUX_ERROR"][near] ** 2).sum())  # a clear detection
        assert abs(f_opt - f_box) < 4 * sigma + 0.1 * f_box, (line, f_opt, f_box, sigma)


@pytest.mark.slow
def test_the_ceers_nods_fall_back_to_nod_differences():
    """The CEERS slitlet's background is not a smooth polynomial across its three shutters: fitted in each
    exposure, it left the exposures' fluxes 6-30 sigma apart per wavelength bin (chi-square per degree of
    freedom 243), so ``auto`` takes nod differences there."""
    from jwst_optextract.core.combine import exposure_disagreement
    from jwst_optextract.drivers.combine import CombineParameters, combine_source
    from jwst_optextract.io.sources import group_sources

    (group,), _ = group_sources([datamodels.open(path) for path in NODS])
    scene = combine_source(group, CombineParameters(background="scene"))
    chi2, dof = exposure_disagreement(*scene.exposure_flux)
    assert chi2 > 50 and dof > 20, (chi2, dof)
    result = combine_source(group, CombineParameters())
    assert result.background == "nod"
    assert result.exposure_flux is not None  # what the choice was made on


def test_the_ceers_exposures_backgrounds_differ_where_no_source_is():
    """What makes the CEERS nods disagree (docs/combine.rst): in the shutters that hold neither exposure's source,
    exposures 2 and 3 agree in the red, while exposure 1 has more light than exposure 2, by several sigma over
    4.2-5.0 um and by as much as the galaxy gives in its own shutter there."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from ceers_nod_agreement import off_source_differences

    models = [datamodels.open(str(path)) for path in NODS]
    *pairs, (_, _, _, source) = off_source_differences(models, 15)
    shutters = {(a, b): shutter for a, b, shutter, _ in pairs}
    assert shutters == {(0, 1): 0, (0, 2): 2, (1, 2): 1}  # the sources: exposure 1 middle, 2 top, 3 bottom

    def red(bins):
        chosen = [(total, sigma) for lo, hi, total, sigma in bins if lo >= 4.2 and hi <= 5.05]
        return sum(t for t, _ in chosen), np.sqrt(sum(s * s for _, s in chosen))

    red_of = {(a, b): red(bins) for a, b, _, bins in pairs}
    middle, bottom = red_of[1, 2], red_of[0, 1]
    assert abs(middle[0]) < 2 * middle[1]
    assert bottom[0] > 4 * bottom[1] and bottom[0] > red(source)[0]
