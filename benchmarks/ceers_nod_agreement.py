"""Do the three CEERS nods agree? Each nod's own flux, binned in wavelength, against the mean of the other two.

Run: ``python benchmarks/ceers_nod_agreement.py [--bins 15]``

``optx_combine`` (`~jwst_optextract.drivers.combine.combine_source`) is run on
the nods in ``../shared/data/real/nirspec_mos_ceers_prism`` twice:

- ``background=scene``: every exposure's flux from its own scene model (its
  background fitted with the source), as the combination returns them;
- ``background=nod``: every nod difference's flux alone, from the pixel table
  the combined spectrum was solved from (``sum(w P d) / sum(w P M)`` per
  column over the rows of that difference, its variance that of the
  difference's pixels).

For every wavelength bin and nod it prints ``(F_k - F_others) / sigma`` and
the chi-square per degree of freedom of all of them. The nod differences
share exposures, so their errors are slightly correlated and the chi-square
is approximate; the exposures' own scene fits are independent.
"""

from __future__ import annotations

import argparse
import itertools
import glob
from pathlib import Path

import numpy as np
from stdatamodels.jwst import datamodels

from jwst_optextract.drivers.combine import CombineParameters, combine_source
from jwst_optextract.io.sources import group_sources

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real" / "nirspec_mos_ceers_prism"


def difference_fluxes(pixels) -> tuple[np.ndarray, np.ndarray]:
    """``(n_exp, nx)`` flux and variance of every nod difference alone, from a combination's pixel table."""
    n_exp = len(pixels.meta["EXPOSURES"])
    nx = int(pixels["column"].max()) + 1
    e, x = np.asarray(pixels["exposure"]), np.asarray(pixels["column"])
    w, p, m = (np.asarray(pixels[k], float) for k in ("weight", "profile", "model"))
    d, v = (np.nan_to_num(np.asarray(pixels[k], float)) for k in ("data", "variance"))
    sums = {}
    for name, value in (("wpd", w * p * d), ("wpm", w * p * m), ("wpv", (w * p) ** 2 * v)):
        sums[name] = np.zeros((n_exp, nx))
        np.add.at(sums[name], (e, x), value)
    ok = sums["wpm"] > 0
    flux = np.where(ok, sums["wpd"] / np.where(ok, sums["wpm"], 1.0), np.nan)
    variance = np.where(ok, sums["wpv"] / np.where(ok, sums["wpm"], 1.0) ** 2, np.nan)
    return flux, variance


def agreement(wavelength: np.ndarray, flux: np.ndarray, variance: np.ndarray, n_bins: int) -> tuple[list, float]:
    """Per bin, every exposure's ``(F_k - F_others) / sigma``; and the chi-square per degree of freedom of all."""
    ok = np.all(np.isfinite(flux) & np.isfinite(variance), axis=0) & np.isfinite(wavelength)
    edges = np.quantile(wavelength[ok], np.linspace(0.0, 1.0, n_bins + 1))
    rows, chi2 = [], []
    for lo, hi in itertools.pairwise(edges):
        sel = ok & (wavelength >= lo) & (wavelength <= hi)
        sums, var = flux[:, sel].sum(axis=1), variance[:, sel].sum(axis=1)
        z = []
        for k in range(flux.shape[0]):
            others = np.delete(np.arange(flux.shape[0]), k)
            info = 1.0 / var[others]
            mean, mean_var = np.sum(info * sums[others]) / info.sum(), 1.0 / info.sum()
            z.append((sums[k] - mean) / np.sqrt(var[k] + mean_var))
        rows.append((lo, hi, sums, np.sqrt(var), z))
        chi2.extend(np.square(z))
    return rows, float(np.mean(chi2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bins", type=int, default=15, help="wavelength bins (equal numbers of columns)")
    args = parser.parse_args()
    models = [datamodels.open(path) for path in sorted(glob.glob(str(DATA / "jw*.fits")))]
    (group,), _ = group_sources(models)
    for background in ("scene", "nod"):
        result = combine_source(group, CombineParameters(background=background))
        flux, variance = result.exposure_flux if background == "scene" else difference_fluxes(result.pixels)
        rows, chi2 = agreement(result.spectrum.wavelength, flux, variance, args.bins)
        print(f"\nbackground={background}: each {'exposure' if background == 'scene' else 'nod difference'} "
              f"against the mean of the others, in sigma (chi2 per point {chi2:.2f})")
        print("  wavelength (um)   " + "  ".join(f"nod {k + 1}" for k in range(flux.shape[0]))
              + "   flux of each (summed over the bin, data units)")
        for lo, hi, sums, _, z in rows:
            print(f"  {lo:5.2f} - {hi:5.2f}    " + "  ".join(f"{v:+5.1f}" for v in z) + "   "
                  + " ".join(f"{s:9.3g}" for s in sums))


if __name__ == "__main__":
    main()
