"""optx_spec against jwst's ``Extract1dStep`` (box, polynomial background), file in -> x1d out, side by side.

Run: ``python benchmarks/bench_vs_jwst.py [--quick] [--json out.json] [--workdir DIR]``

Builds, with `jwst_optextract.simulate`, NIRSpec MOS ``_cal``-like files of 50
and 200 slitlets (26-40 rows x 1024 columns; ``--sizes`` for others) and a
BOTS-like ``_calints`` file (200 x 32 x 2048), then runs on each, every run in
a fresh process that opens the file and writes the x1d:

- jwst ``Extract1dStep``, box with a first-order polynomial background (an
  override EXTRACT1D reference with one aperture per slit, no CRDS), one core;
- ``strun optx_spec`` (defaults), one core;
- ``strun optx_spec --maximum_cores=all``.

One core means ``OMP_NUM_THREADS=OPENBLAS_NUM_THREADS=MKL_NUM_THREADS=1``.
Each child reports its wall time from before its imports to the written x1d
(``total``) and for the step alone (``step``: open, process, write; each kind
imports its steps' modules, jwst's ``extract_1d`` or this package, before the
step's clock starts), and its
peak resident memory (``VmHWM`` of ``/proc/self/status``, else
``resource.getrusage``, whose ``ru_maxrss`` on Linux keeps the forking
parent's peak across ``exec``; the inputs are made in a process of their own
for the same reason; with ``maximum_cores=all`` the worker processes are not
counted). The table shows the step times and their
ratio to jwst's, and the ratio of the whole processes (``total``, what a user
waits for). The machine's load is printed before and after: a loaded
machine slows both, and the ratios hold better than the absolute times.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ONE_CORE = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}

RUNNER = r"""
import json, resource, sys, time
start = time.perf_counter()
kind, path, outdir = sys.argv[1], sys.argv[2], sys.argv[3]
if kind == "jwst_box":
    from jwst.extract_1d import Extract1dStep

    class Offline(Extract1dStep):
        def finalize_result(self, result, reference_files_used):
            super().finalize_result(result, [])

    step = Offline(override_extract1d=sys.argv[4], override_psf="N/A", apply_apcorr=False, use_source_posn=False,
                   subtract_background=True, save_results=True, output_dir=outdir)
    imported = time.perf_counter()
    step.run(path)
else:
    from stpipe._cli.strun import main  # what the strun command runs

    import jwst_optextract.steps  # noqa: F401 -- its imports, as jwst's above, are not the step's time
    imported = time.perf_counter()
    sys.argv = ["strun", sys.argv[4], path, *sys.argv[5:], "--output_dir", outdir]
    main()
end = time.perf_counter()
try:  # this program's own high-water mark: ru_maxrss keeps the forking parent's across exec
    with open("/proc/self/status") as status:
        peak_mb = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024
except (OSError, StopIteration):
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"total": end - start, "step": end - imported, "peak_mb": peak_mb}))
"""


@dataclass
class Input:
    """A benchmark input file and the EXTRACT1D reference that jwst's box extraction uses on it."""

    label: str
    path: Path
    reference: Path

    @property
    def size_mb(self) -> float:
        return self.path.stat().st_size / 1e6


def _aperture(name: str, ny: int, centre: float, half_width: float = 3.0) -> dict:
    """A box of ``2 half_width + 1`` rows about ``centre`` and a linear background from the rows 3 px beyond."""
    lower, upper = centre - half_width, centre + half_width
    return {"id": name, "region_type": "target", "ystart": lower, "ystop": upper, "bkg_fit": "poly",
            "bkg_order": 1, "bkg_coeff": [[-0.5], [lower - 3.0], [upper + 3.0], [ny - 0.5]]}


def _write_reference(path: Path, apertures: list[dict]) -> Path:
    path.write_text(json.dumps({"reftype": "EXTRACT1D", "instrument": "ANY", "telescope": "JWST",
                                "exp_type": "ANY", "apertures": apertures}))
    return path


def mos_slitlets(n_slits: int, nx: int = 1024, rows: tuple[int, int] = (26, 40), seed: int = 0):
    """A NIRSpec MOS MultiSlitModel of ``n_slits`` slitlets of ``rows`` rows (cycling) and ``nx`` columns.

    Returns the model and, per slit, its name, number of rows and nominal trace row.
    """
    from jwst_optextract import simulate

    exposure, slits = None, []
    for index in range(n_slits):
        ny = rows[0] + index % (rows[1] - rows[0] + 1)
        model, truths = simulate.make_multislit(
            1, exp_type="NRS_MSASPEC", nx=nx, ny=ny, seed=seed + index, source_id=index + 1,
            flux=20.0 + 5 * (index % 20), background=5.0, cosmic_ray_fraction=0.001,
        )
        slit = model.slits[0]
        if exposure is None:
            exposure = model
        else:
            exposure.slits.append(slit)
        slits.append((slit.name, ny, float(truths[0].trace[nx // 2])))
    return exposure, slits


def mos_input(folder: Path, n_slits: int, nx: int) -> Input:
    """Where the MOS file of ``n_slits`` slitlets and its reference are (see `write_mos`)."""
    return Input(f"MOS {n_slits} x (26-40) x {nx}", folder / f"mos_{n_slits}x{nx}_cal.fits",
                 folder / f"mos_{n_slits}x{nx}_extract1d.json")


def write_mos(folder: Path, n_slits: int, nx: int) -> Input:
    """The MOS file of ``n_slits`` slitlets (kept when it exists) and its reference."""
    item = mos_input(folder, n_slits, nx)
    if not (item.path.exists() and item.reference.exists()):
        model, slits = mos_slitlets(n_slits, nx)
        model.save(item.path)
        _write_reference(item.reference, [_aperture(name, ny, centre) for name, ny, centre in slits])
    return item


def tso_input(folder: Path, nints: int, ny: int = 32, nx: int = 2048) -> Input:
    """Where the time series and its reference are (see `write_tso`)."""
    stem = f"tso_{nints}x{ny}x{nx}"
    return Input(f"TSO {nints} x {ny} x {nx}", folder / f"{stem}_calints.fits", folder / f"{stem}_extract1d.json")


def write_tso(folder: Path, nints: int, ny: int = 32, nx: int = 2048) -> Input:
    """A BOTS-like ``_calints`` file (kept when it exists) and its reference."""
    from jwst_optextract import simulate

    item = tso_input(folder, nints, ny, nx)
    if not (item.path.exists() and item.reference.exists()):
        model, _ = simulate.make_tso(nints=nints, nx=nx, ny=ny, flux=50.0, jitter_rms=0.02,
                                     cosmic_ray_fraction=0.001, seed=1)
        model.save(item.path)
        _write_reference(item.reference, [_aperture("ANY", ny, ny / 2 - 0.2)])
    return item


def run(kind: str, item: Input, workdir: Path, *args: str, one_core: bool = True) -> dict:
    """One fresh process: ``kind`` (``jwst_box`` or ``strun``) on ``item``; its times and peak memory."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRDS")}
    env["CRDS_PATH"] = str(workdir / "no_crds")
    for key in ONE_CORE:
        env.pop(key, None)
    if one_core:
        env.update(ONE_CORE)
    runner = workdir / "bench_runner.py"  # a file: stpipe reads the source of step classes
    runner.write_text(RUNNER)
    outdir = workdir / f"out_{kind}_{'1' if one_core else 'all'}"
    outdir.mkdir(exist_ok=True)
    extra = (str(item.reference),) if kind == "jwst_box" else args
    start = time.perf_counter()
    out = subprocess.run([sys.executable, str(runner), kind, str(item.path), str(outdir), *extra], env=env,
                         capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"{kind} on {item.path} failed:\n{out.stderr[-3000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["process"] = time.perf_counter() - start
    return result


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} cores"


RUNS = {
    "jwst_box": lambda item, workdir: run("jwst_box", item, workdir),
    "optx_1": lambda item, workdir: run("strun", item, workdir, "optx_spec"),
    "optx_all": lambda item, workdir: run("strun", item, workdir, "optx_spec", "--maximum_cores=all",
                                          one_core=False),
}


def measure(items: list[Input], workdir: Path, repeat: int = 1) -> list[dict]:
    """jwst box, optx_spec on one core and on all, for every input; one row each.

    With ``repeat`` > 1 the three runs are made that many times, in turn
    forwards and backwards (so that a drift of the machine's load weighs on
    all alike), and the run of median step time is kept.
    """
    rows = []
    for item in items:
        row = {"input": item.label, "file_mb": item.size_mb, "load_before": os.getloadavg()[0]}
        runs: dict[str, list[dict]] = {name: [] for name in RUNS}
        for turn in range(repeat):
            for name in (list(RUNS) if turn % 2 == 0 else list(RUNS)[::-1]):
                runs[name].append(RUNS[name](item, workdir))
        for name, results in runs.items():
            row[name] = sorted(results, key=lambda r: r["step"])[(len(results) - 1) // 2]
            row[f"{name}_all_runs"] = [r["step"] for r in results]
        row["load_after"] = os.getloadavg()[0]
        rows.append(row)
        print(f"  {item.label}: jwst {row['jwst_box']['step']:.1f} s, optx_spec {row['optx_1']['step']:.1f} s, "
              f"all cores {row['optx_all']['step']:.1f} s; load {row['load_before']:.1f} -> "
              f"{row['load_after']:.1f}", flush=True)
    return rows


def table(rows: list[dict]) -> str:
    """The rows as an aligned text table (step seconds, ratios to jwst, peak RSS in MB and / file size)."""
    head = ("input", "file MB", "jwst box 1 core s", "optx_spec 1 core s", "ratio", "optx_spec all s", "ratio",
            "process ratio 1 core", "RSS jwst MB", "RSS optx 1 MB", "RSS optx all MB", "RSS/file jwst",
            "RSS/file optx 1", "RSS/file optx all")
    lines = []
    for r in rows:
        j, o1, oa = r["jwst_box"], r["optx_1"], r["optx_all"]
        lines.append((r["input"], f"{r['file_mb']:.0f}", f"{j['step']:.1f}", f"{o1['step']:.1f}",
                      f"{o1['step'] / j['step']:.2f}", f"{oa['step']:.1f}", f"{oa['step'] / j['step']:.2f}",
                      f"{o1['total'] / j['total']:.2f}",
                      f"{j['peak_mb']:.0f}", f"{o1['peak_mb']:.0f}", f"{oa['peak_mb']:.0f}",
                      f"{j['peak_mb'] / r['file_mb']:.1f}", f"{o1['peak_mb'] / r['file_mb']:.1f}",
                      f"{oa['peak_mb'] / r['file_mb']:.1f}"))
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(head)]
    out = ["  ".join(h.ljust(w) for h, w in zip(head, widths))]
    out += ["  ".join(c.ljust(w) for c, w in zip(line, widths)) for line in lines]
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20 slitlets x 512 columns and 50 integrations")
    parser.add_argument("--sizes", type=int, nargs="+", default=None, help="MOS slitlet counts (default 50 200)")
    parser.add_argument("--nints", type=int, default=None, help="time-series integrations (default 200)")
    parser.add_argument("--no-tso", action="store_true", help="leave the time series out")
    parser.add_argument("--workdir", default=None, help="where the inputs (kept between runs) and products go")
    parser.add_argument("--json", default=None, help="also write the measurements to this JSON file")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each kind, alternating; the median is shown")
    parser.add_argument("--inputs-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="bench_vs_jwst_"))
    workdir.mkdir(parents=True, exist_ok=True)
    sizes = args.sizes or ([20] if args.quick else [50, 200])
    nx = 512 if args.quick else 1024
    nints = args.nints or (50 if args.quick else 200)
    if args.inputs_only:
        items = [write_mos(workdir, n, nx) for n in sizes]
        if not args.no_tso:
            items.append(write_tso(workdir, nints))
        return
    print(f"inputs in {workdir}; {load()}", flush=True)
    # made in another process: this one stays small, and so does what its children inherit
    subprocess.run([sys.executable, __file__, *sys.argv[1:], "--inputs-only", "--workdir", str(workdir)], check=True)
    items = [mos_input(workdir, n, nx) for n in sizes] + ([] if args.no_tso else [tso_input(workdir, nints)])
    print(f"running; {load()}", flush=True)
    rows = measure(items, workdir, args.repeat)
    print(f"done; {load()}\n")
    print(table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": {"cores": os.cpu_count(), "load_end": os.getloadavg()},
                                               "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
