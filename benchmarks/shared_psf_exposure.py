"""MOS exposures whose point sources share one PSF: do the faint sources gain from the bright ones?

Run::

    python benchmarks/shared_psf_exposure.py [--seed N] [--exposures 3] [--slits 20] [--kind moffat]
                                             [--workdir DIR] [--json FILE] [--commit REV]

A real MOS exposure's point sources share the telescope's PSF: one Moffat
index, one width law. `benchmarks/scorecard.py` draws every slit's profile
on its own (its population is "any source"), so it cannot show what
``optx_psf`` learns from an exposure's bright sources with
``shared_psf=True`` (see ``docs/psf_prior.rst``). Here every exposure (one
``MultiSlitModel`` file of ``--slits`` slits) draws one profile (``--kind``,
FWHM 1.5-5 px changing along the slit, Moffat index 2-4) and gives it to all
its slits; everything else (geometry, WCS or none, two decades of
brightness, background gradients, defects) is drawn per slit as in the
scorecard, by its generator, and scored with its figures. Every exposure is
run twice, with ``--steps.optx_psf.shared_psf`` False (the default) and
True. The summary splits the slits at a peak S/N of 10 per pixel: the faint
ones are those whose wings the data alone hardly measure.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import scorecard
import scorecard_scenes as scenes

FAINT_SNR = 10.0
"""Peak S/N per pixel below which a slit counts as faint in the summary."""


def draw_exposure(rng: np.random.Generator, number: int, n_slits: int, kind: str) -> list[scenes.Scene]:
    """``n_slits`` slits of one exposure, all with one drawn profile of ``kind``."""
    profile = scenes._profile_parameters(rng, kind)
    return [scenes.draw_slit(rng, f"S{number}{i + 1:02d}", 100 * number + i + 1, with_wcs=bool(i % 2 == 0),
                             profile=profile) for i in range(n_slits)]


def run(seed: int | None, n_exposures: int, n_slits: int, kind: str, work: Path, commit: str | None) -> dict:
    """Draw, run ``strun optx_spec`` on every exposure, and score every slit."""
    seed, sequence = scorecard._seed_sequence(seed)
    print(f"shared-PSF exposures, seed {seed}: {n_exposures} x {n_slits} slits, {kind}")
    scorecard._PACKAGE_PATH[:] = [str(scorecard.snapshot(commit, work))] if commit else []
    rng = np.random.default_rng(sequence)
    rows = []
    print(scorecard._HEADER)
    for number in range(1, n_exposures + 1):
        drawn = draw_exposure(rng, number, n_slits, kind)
        print(f"exposure {number}: {drawn[0].extras}")
        path = scorecard._write(scenes.slit_models(drawn), work / f"jw09998001001_0310{number}_00001_nrs1_cal.fits")
        for shared in (False, True):
            outdir = work / f"out_{number}_{'shared' if shared else 'alone'}"
            outdir.mkdir(exist_ok=True)
            code = scorecard._run(["optx_spec", str(path), f"--output_dir={outdir}",
                                   f"--steps.optx_psf.shared_psf={shared}"], outdir / "strun.log")
            if code != 0:
                print(f"  strun optx_spec {path.name} exited with {code} (log {outdir / 'strun.log'})")
            spectra = scorecard._products(outdir, "*_x1d.fits")
            for scene in drawn:
                flux, error = scorecard._on_columns(scene, spectra.get(scene.name))
                row = scorecard.score_columns(flux, error, *scorecard.scene_bounds(scene))
                row.update(scorecard._against_shape_bound(row, scene.truth, scorecard.shape_bound(scene)))
                row.update(name=scene.name, kind=scene.kind, ny=scene.ny, nx=scene.nx, snr=scene.peak_snr,
                           wcs_offset=scene.wcs_offset, exposure=number, shared_psf=shared)
                rows.append(row)
                if shared:
                    scorecard._print_row(print, scene, row)
    summary = {mode: summarise([r for r in rows if r["shared_psf"] == shared])
               for mode, shared in (("alone", False), ("shared_psf", True))}
    return {"seed": seed, "commit": commit, "kind": kind, "rows": rows, "summary": summary}


def summarise(rows: list[dict]) -> dict:
    """Per brightness class: slits, within tolerance, median |bias| (% and sigma_shape), median var/CRB_joint."""
    out = {}
    for label, keep in (("faint", lambda r: r["snr"] < FAINT_SNR), ("bright", lambda r: r["snr"] >= FAINT_SNR),
                        ("all", lambda r: True)):
        chosen = [r for r in rows if keep(r)]
        if not chosen:
            continue
        out[label] = {
            "slits": len(chosen),
            "within_tolerance": float(np.mean([r["within_tolerance"] for r in chosen])),
            "within_shape_bound": float(np.mean([r["within_shape_bound"] for r in chosen])),
            "mean_bias_percent": float(np.nanmean([r["bias_percent"] for r in chosen])),
            "median_abs_bias_percent": float(np.nanmedian([abs(r["bias_percent"]) for r in chosen])),
            "median_abs_bias_sigma_shape": float(np.nanmedian([abs(r["bias_sigma_shape"]) for r in chosen])),
            "median_var_crb_joint": float(np.nanmedian([r["var_crb_joint"] for r in chosen])),
        }
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--exposures", type=int, default=3)
    parser.add_argument("--slits", type=int, default=20)
    parser.add_argument("--kind", choices=("moffat", "gaussian"), default="moffat")
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--json", default=None)
    parser.add_argument("--commit", default=None, help="measure this commit of the package (see scorecard.py)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="shared_psf_") as tmp:
        work = Path(args.workdir or tmp)
        work.mkdir(parents=True, exist_ok=True)
        result = run(args.seed, args.exposures, args.slits, args.kind, work, args.commit)
    print(f"\nseed {result['seed']}, commit {result['commit']}, {result['kind']}:")
    for mode, summary in result["summary"].items():
        print(f" {mode} (--steps.optx_psf.shared_psf={mode == 'shared_psf'}):")
        for label, s in summary.items():
            print(f"  {label:>6}: {s['slits']:3d} slits, within tolerance {s['within_tolerance']:.0%} "
                  f"(3 sigma_shape {s['within_shape_bound']:.0%}), mean bias {s['mean_bias_percent']:+.2f} %, "
                  f"median |bias| {s['median_abs_bias_percent']:.2f} % = {s['median_abs_bias_sigma_shape']:.2f} "
                  f"sigma_shape, median var/CRB_j {s['median_var_crb_joint']:.3f}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1, default=float))
    return result


if __name__ == "__main__":
    main()
