"""Every background method side by side, and jwst ``extract_1d``'s box with its own background.

Run: ``python benchmarks/compare_background.py [--nx 2048] [--seeds 3]``

A faint source (0.5 DN/s per column, S/N ~ 5 per column) on a 2 DN/s
background that changes by ±25 % across the slit (linear or quadratic) and
along the dispersion; read noise, cosmic rays and NaNs. For each method the
background-subtracted model is extracted with `OptimalExtractStep` and
compared with the truth:

- bias: integrated flux minus the true one, in % and in Cramér–Rao sigmas;
- var/CR: variance of ``(f - truth) / sqrt(CR)`` over columns, where CR is
  the Cramér–Rao variance computed with the TRUE background (1 is perfect);
- err^2/CR: mean reported variance over CR (are the errors honest?);
- columns: the fraction of columns with a flux.

``true`` subtracts the true background (the floor). ``jwst box+bkg`` is jwst's
`Extract1dStep` (run offline) with a box of rows 11-21 and a per-column
quadratic background (``bkg_fit="poly"``, ``bkg_order=2``) fitted to rows 0-8
and 24-31; its var/CR is computed against the truth times the box's share of
the profile.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
from pathlib import Path

import numpy as np
from jwst.extract_1d import Extract1dStep

from jwst_optextract import OptimalExtractStep, simulate
from jwst_optextract.steps.background_step import BackgroundStep

TG, NY = 1000.0, 32
METHODS = {
    "true": None,
    "smooth": dict(method="smooth"),
    "poly": dict(method="poly"),
    "column (median)": dict(method="column"),
    "poly_rows": dict(method="poly_rows"),
    "image2d": dict(method="image2d"),
}
BOX = dict(ystart=11, ystop=21, bkg_coeff=[[-0.5], [8.5], [23.5], [31.5]], bkg_order=2)


class OfflineExtract1dStep(Extract1dStep):
    """jwst's step, whose finalize_result would ask CRDS for the context."""

    def finalize_result(self, result, reference_files_used):
        super().finalize_result(result, [])


def scene(kind: str, nx: int, seed: int):
    """Simulated faint source plus a known background (see tests/test_background.py)."""
    model, truth = simulate.make_slit(
        nx=nx, ny=NY, flux=0.5, background=0.0, width=(0.9, 1.6), trace_curvature=2.0, trace_tilt=0.8,
        cosmic_ray_fraction=0.001, nan_fraction=0.002, seed=seed,
    )
    v = (np.arange(NY) - (NY - 1) / 2) / (NY - 1)
    u = (np.arange(nx) - (nx - 1) / 2) / (nx - 1)
    across = {"linear": 1 + 0.5 * v, "quadratic": 1 + 0.3 * v + 0.1 * (12 * v**2 - 1)}[kind]
    background = 2.0 * across[:, None] * (1 + 0.4 * u + 0.1 * np.sin(2 * np.pi * np.arange(nx) / 700))[None, :]
    simulate.add_background(model, truth, background, TG, seed=seed + 1000)
    return model, truth


def jwst_box(model, directory: Path):
    ref = {"reftype": "EXTRACT1D", "instrument": "ANY", "telescope": "JWST", "exp_type": "ANY",
           "apertures": [{"id": "ANY", "region_type": "target", **BOX}]}
    path = directory / "extract1d.json"
    path.write_text(json.dumps(ref))
    step = OfflineExtract1dStep(override_extract1d=str(path), override_psf="N/A", apply_apcorr=False,
                                use_source_posn=False, subtract_background=True, bkg_fit="poly", bkg_order=2)
    return step.run(model.copy()).spec[0].spec_table


def statistics(table, truth, captured):
    """Bias (fraction, Cramér–Rao sigmas), var/CR, err^2/CR and the fraction of columns extracted.

    A table shorter than the number of columns (an extraction may drop columns
    it cannot do) is matched to the columns by wavelength.
    """
    nx = truth.flux.shape[-1]
    columns = np.arange(nx)
    if len(table) != nx:
        on_trace = truth.wavelength[np.clip(np.rint(truth.trace).astype(int), 0, NY - 1), columns]
        columns = np.clip(np.rint(np.interp(table["WAVELENGTH"], on_trace, columns)).astype(int), 0, nx - 1)
    cramer_rao = simulate.cramer_rao_variance(truth)[columns]
    ok = np.isfinite(table["FLUX"])
    expected = (truth.flux * captured)[columns][ok]
    error = table["FLUX"][ok] - expected
    return (error.sum() / expected.sum(), error.sum() / np.sqrt(cramer_rao[ok].sum()),
            np.var(error / np.sqrt(cramer_rao[ok])), np.mean(table["FLUX_ERROR"][ok] ** 2 / cramer_rao[ok]),
            ok.sum() / nx)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nx", type=int, default=2048)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        for kind in ("linear", "quadratic"):
            rows = {name: [] for name in [*METHODS, "jwst box+bkg"]}
            for seed in range(args.seeds):
                model, truth = scene(kind, args.nx, seed)
                for name, options in METHODS.items():
                    if options is None:
                        subtracted = model.copy()
                        subtracted.data = (model.data - truth.background).astype(np.float32)
                    else:
                        subtracted = BackgroundStep.call(model, **options)
                    table = OptimalExtractStep.call(subtracted).spec[0].spec_table
                    rows[name].append(statistics(table, truth, 1.0))
                rows_in_box = (np.arange(NY) >= BOX["ystart"]) & (np.arange(NY) <= BOX["ystop"])
                captured = truth.profile[rows_in_box].sum(axis=0)
                rows["jwst box+bkg"].append(statistics(jwst_box(model, Path(tmp)), truth, captured))
            print(f"\n{kind} background gradient, nx={args.nx}, mean of {args.seeds} seeds")
            print(f"{'method':16s} {'bias %':>8s} {'bias/sigma':>10s} {'var/CR':>8s} {'err^2/CR':>9s} {'columns':>8s}")
            for name, values in rows.items():
                bias, sigma, var, err, done = np.mean(values, axis=0)
                print(f"{name:16s} {100 * bias:+8.2f} {sigma:+10.2f} {var:8.3f} {err:9.3f} {done:8.2f}")


if __name__ == "__main__":
    main()
