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

Then it differences every pair of exposures in the shutter of the slitlet that
holds neither one's source (`off_source_differences`): the sky through a
shutter falls on the same rows in every exposure, so where the two
backgrounds are the same that difference is noise.
"""

from __future__ import annotations

import argparse
import glob
import itertools
import warnings
from pathlib import Path

import numpy as np
from stdatamodels.jwst import datamodels

from jwst_optextract.drivers.combine import CombineParameters, combine_source
from jwst_optextract.io import read_slit
from jwst_optextract.io.slits import iter_slits
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


def off_source_differences(models, n_bins: int) -> list[tuple[int, int, int, list]]:
    """Each pair of exposures differenced in the shutter that holds neither one's source.

    The shutters' open rows are those of ``BARSHADOW >= 0.95`` in every column
    (three runs: the slitlet's three shutters); an exposure's source is in the
    shutter nearest its WCS source row. The sky through a shutter is at the same
    detector rows in every exposure, so where the background is the same in
    both (and the two sources' wings are alike there) the difference is noise.
    Returns ``(a, b, shutter, [(lo, hi, sum, sigma), ...])`` per pair, summed over
    the shutter's rows and the columns of each wavelength bin; and, for scale,
    ``(None, None, None, [...])`` last: the source in its own shutter, every
    exposure less the mean of the others there, averaged over the exposures.
    """
    (_, first), = list(iter_slits(models[0]))
    shadow = np.nan_to_num(np.asarray(first.barshadow, float))
    open_rows = []
    for column in shadow.T:
        rows = np.flatnonzero(column >= 0.95)
        runs = np.split(rows, np.flatnonzero(np.diff(rows) > 1) + 1) if rows.size else []
        open_rows.append(runs if len(runs) == 3 else None)
    data, variance, wavelength, source_rows = [], [], None, []
    for model in models:
        (name, slit_model), = list(iter_slits(model))
        slit = read_slit(slit_model, model, name)
        data.append(np.where(slit.good, slit.data, np.nan))
        variance.append(np.where(slit.good, slit.var_rnoise + slit.var_poisson + slit.var_flat, np.nan))
        if wavelength is None:
            with np.errstate(invalid="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # columns without a wavelength
                wavelength = np.nanmean(slit.wavelength, axis=0)
        source_rows.append(slit.source_row)
    centres = np.array([[np.mean(r) for r in runs] if runs else [np.nan] * 3 for runs in open_rows])
    source_shutter = [int(np.nanargmin(np.abs(np.nanmedian(centres, axis=0) - row))) for row in source_rows]
    ok = np.isfinite(wavelength)
    edges = np.quantile(wavelength[ok], np.linspace(0.0, 1.0, n_bins + 1))
    n = len(models)

    def in_shutter(shutter: int, weights: np.ndarray) -> list[tuple[float, float, float, float]]:
        """``sum_k weights[k] data[k]`` over the shutter's rows, binned in wavelength, with its error."""
        diff, var = np.full(wavelength.size, np.nan), np.full(wavelength.size, np.nan)
        for x, runs in enumerate(open_rows):
            if runs is not None:
                rows = runs[shutter]
                diff[x] = sum(w * np.sum(data[k][rows, x]) for k, w in enumerate(weights) if w)
                var[x] = sum(w * w * np.sum(variance[k][rows, x]) for k, w in enumerate(weights) if w)
        bins = []
        for lo, hi in itertools.pairwise(edges):
            sel = ok & (wavelength >= lo) & (wavelength <= hi) & np.isfinite(diff) & np.isfinite(var)
            bins.append((lo, hi, float(diff[sel].sum()), float(np.sqrt(var[sel].sum()))))
        return bins

    out = []
    for a, b in itertools.combinations(range(n), 2):
        shutter = ({0, 1, 2} - {source_shutter[a], source_shutter[b]}).pop()
        out.append((a, b, shutter, in_shutter(shutter, np.eye(n)[a] - np.eye(n)[b])))
    own = [in_shutter(source_shutter[k], (np.eye(n)[k] * n - 1.0) / (n - 1)) for k in range(n)]
    source = [(lo, hi, float(np.mean([o[i][2] for o in own])), float(np.sqrt(np.mean([o[i][3] ** 2 for o in own]) / n)))
              for i, (lo, hi, *_) in enumerate(own[0])]
    return out + [(None, None, None, source)]


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
    print("\nthe exposures differenced where neither holds its source (summed over the shutter's open rows; "
          "data units, and in sigma)")
    names = ("bottom", "middle", "top")
    pairs = off_source_differences(models, args.bins)
    print("  wavelength (um)   " + "   ".join(f"exp {a + 1} - exp {b + 1} ({names[shutter]:>6})"
                                           for a, b, shutter, _ in pairs[:-1]) + "   the source in its shutter")
    for i in range(args.bins):
        lo, hi = pairs[0][3][i][:2]
        print(f"  {lo:5.2f} - {hi:5.2f}    " + "   ".join(
            f"{bins[i][2]:+8.3f} ({bins[i][2] / bins[i][3]:+5.1f})       " for *_, bins in pairs))


if __name__ == "__main__":
    main()
