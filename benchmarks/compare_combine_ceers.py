"""optx_combine on the three CEERS nods against msaexp's own combined spectrum of the same files.

Run: ``python benchmarks/compare_combine_ceers.py [--plot docs/_static/combine_ceers.png]``

Prints the overall scale factor between the two spectra (msaexp's path-loss
and normalisation are calibration, not extraction), how well the shapes agree
within the errors after that factor, and the signal to noise per unit
wavelength of each: from the stated errors, and from the spectra themselves
(the scatter of second differences of 0.05 um block means, which a smooth
spectrum does not have and the correlation of msaexp's resampled bins hardly
touches), over all wavelengths and in two ranges.
"""

from __future__ import annotations

import argparse
import glob
from pathlib import Path

import numpy as np
from astropy.io import fits

from jwst_optextract import SlitCombineStep

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real" / "nirspec_mos_ceers_prism"


def scatter_noise(wave: np.ndarray, flux: np.ndarray, block: float = 0.05, window: int = 9) -> np.ndarray:
    """The noise density (flux x sqrt(um)) of a spectrum from its own scatter, at every one of its wavelengths.

    The spectrum is averaged in blocks of ``block`` um (wide enough that the
    correlation of resampled neighbouring bins stays within a block); for
    independent block means, ``m[i-1] - 2 m[i] + m[i+1]`` has 6 times the
    variance of one, which a smooth spectrum does not add to. A robust (MAD)
    running estimate over ``window`` blocks, times ``sqrt(block)``, is the
    noise per unit wavelength.
    """
    edges = np.arange(wave.min(), wave.max() + block, block)
    index = np.digitize(wave, edges) - 1
    counts = np.bincount(index, minlength=edges.size)
    full = counts > 0
    means = np.bincount(index, weights=flux, minlength=edges.size)[full] / counts[full]
    centres = (edges + block / 2)[full]
    second = means[:-2] - 2.0 * means[1:-1] + means[2:]
    deviation = np.abs(second - np.median(second))
    half = window // 2
    sigma = np.array([1.4826 * np.median(deviation[max(0, i - half):i + half + 1]) for i in range(second.size)])
    return np.interp(wave, centres[1:-1], sigma / np.sqrt(6.0) * np.sqrt(block))


RANGES = {"all": (0.0, 99.0), "1.5-2.4um": (1.5, 2.4), "2.75-4.6um": (2.75, 4.6)}
"""Wavelength ranges the measured noise is compared in (um)."""


def _scatter_figures(wave, ours, our_noise, theirs, their_noise) -> dict:
    """Median S/N per sqrt(um) from each spectrum's own scatter (msaexp scaled to ours), per range of `RANGES`."""
    figures = {}
    for name, (lo, hi) in RANGES.items():
        sel = (wave >= lo) & (wave <= hi)
        figures[f"scatter_snr_per_um_ours_{name}"] = float(np.median(ours[sel] / our_noise[sel]))
        figures[f"scatter_snr_per_um_msaexp_{name}"] = float(np.median(theirs[sel] / their_noise[sel]))
        figures[f"noise_ratio_ours_over_msaexp_{name}"] = float(np.median(our_noise[sel] / their_noise[sel]))
    return figures


def compare(x1d, msaexp_file: Path) -> dict:
    """Scale factor, shape agreement and S/N per unit wavelength of our spectrum and msaexp's (both in uJy)."""
    table = x1d.spec[0].spec_table
    ok = np.isfinite(table["FLUX"]) & (table["FLUX_ERROR"] > 0)
    wave, flux, err = table["WAVELENGTH"][ok], table["FLUX"][ok] * 1e6, table["FLUX_ERROR"][ok] * 1e6
    theirs = fits.getdata(msaexp_file, "SPEC1D")
    keep = np.isfinite(theirs["flux"]) & (theirs["err"] > 0) & (theirs["wave"] > wave[0]) & (theirs["wave"] < wave[-1])
    t_wave, t_flux, t_err = (np.asarray(theirs[k][keep], float) for k in ("wave", "flux", "err"))
    ours_on_theirs = np.interp(t_wave, wave, flux)
    ours_err = np.interp(t_wave, wave, err)
    weights = 1.0 / (ours_err**2 + t_err**2)
    scale = float(np.sum(weights * ours_on_theirs * t_flux) / np.sum(weights * t_flux**2))  # ours = scale * theirs
    resid = (ours_on_theirs - scale * t_flux) / np.sqrt(ours_err**2 + (scale * t_err) ** 2)
    slope = np.polyfit(t_wave, ours_on_theirs / np.where(t_flux != 0, t_flux, np.nan), 1, w=np.sqrt(weights))
    return {
        "scale": scale,
        "scale_slope_per_um": float(slope[0]),
        "chi2_per_point": float(np.mean(resid**2)),
        "median_abs_resid_sigma": float(np.median(np.abs(resid))),
        "snr_per_um_ours": float(np.median(flux / err / np.sqrt(np.gradient(wave)))),
        "snr_per_um_msaexp": float(np.median(t_flux / t_err / np.sqrt(np.gradient(t_wave)))),
        **_scatter_figures(t_wave, ours_on_theirs, np.interp(t_wave, wave, scatter_noise(wave, flux)),
                           scale * t_flux, scale * scatter_noise(t_wave, t_flux)),
        "curves": (wave, flux, err, t_wave, t_flux, t_err),
    }


def plot(result: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    wave, flux, err, t_wave, t_flux, t_err = result["curves"]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 6), sharex=True, height_ratios=(3, 1))
    top.fill_between(t_wave, result["scale"] * (t_flux - t_err), result["scale"] * (t_flux + t_err), color="C1",
                     alpha=0.3, step="mid")
    top.step(t_wave, result["scale"] * t_flux, where="mid", color="C1",
             label=f"msaexp x {result['scale']:.3f} (S/N per um {result['snr_per_um_msaexp']:.1f})")
    top.fill_between(wave, flux - err, flux + err, color="C0", alpha=0.3, step="mid")
    top.step(wave, flux, where="mid", color="C0", label=f"optx_combine (S/N per um {result['snr_per_um_ours']:.1f})")
    top.set_ylabel("flux (uJy)")
    top.legend()
    top.set_title("CEERS 1345 source 933, PRISM, three nods")
    bottom.plot(wave, flux / err, color="C0", lw=0.8)
    bottom.plot(t_wave, t_flux / t_err, color="C1", lw=0.8)
    bottom.set_ylabel("S/N per bin")
    bottom.set_xlabel("wavelength (um)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plot", help="write the comparison figure here")
    parser.add_argument("--background", default="auto", help="optx_combine's background (default: auto)")
    args = parser.parse_args()
    files = sorted(glob.glob(str(DATA / "jw*.fits")))
    (x1d,) = SlitCombineStep.call(files, background=args.background)
    result = compare(x1d, DATA / "static-test-driz-center-bkg_933.spec.fits")
    for key, value in result.items():
        if key != "curves":
            print(f"{key:24s} {value:.4g}")
    if args.plot:
        plot(result, args.plot)
        print(f"figure: {args.plot}")


if __name__ == "__main__":
    main()
