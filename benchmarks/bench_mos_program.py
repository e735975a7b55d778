"""A simulated MOS program (N slitlets x 3 nod exposures) through optx_spec and optx_combine.

Run: ``python benchmarks/bench_mos_program.py [--sources 200] [--nx 400] [--workdir /tmp/optx_mos]``

Writes three ``_cal``-like MultiSlitModel files (one per nod position, one
slitlet per source, 25 x ``nx`` pixels) and an association, then times, in
wall-clock seconds on this machine (print the load: parallel speed-ups need a
quiet one):

Every run writes its products (x1d files), as ``strun`` and ``optx-batch`` do:

- ``optx_spec`` on the three exposures: serial (a loop in one process), with
  ``maximum_cores=all`` (worker processes for the trace and profile fits, threads
  for the rest), and through ``optx-batch`` on a
  Dask ``LocalCluster`` (one task per exposure, then ``--slit-tasks`` tasks per
  exposure; both include the cluster's start-up);
- ``optx_combine`` on the association: serial and with ``maximum_cores=all``
  (threads over the sources).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import logging

from jwst_optextract import OptimalExtractionPipeline, SlitCombineStep, simulate


def write_program(folder: Path, n_sources: int, nx: int) -> tuple[list[Path], Path]:
    """The program's three exposures and association, made again unless ``folder`` holds those of this size."""
    files = [folder / f"jw01234001001_03101_{k + 1:05d}_nrs1_cal.fits" for k in range(3)]
    asn, size = folder / "asn.json", folder / "program_size.json"
    if asn.exists() and size.exists() and json.loads(size.read_text()) == [n_sources, nx]:
        return files, asn
    exposures = None
    for source in range(n_sources):
        models, _ = simulate.make_nods(
            3, 1, seed=source, source_id=source + 1, exp_type="NRS_MSASPEC", nx=nx, ny=25, background=20.0,
            flux=5.0 + source % 20, cosmic_ray_fraction=0.002, nod_throw=5.0,
        )
        if exposures is None:
            exposures = models
        else:
            for exposure, model in zip(exposures, models):
                exposure.slits.append(model.slits[0])
    folder.mkdir(parents=True, exist_ok=True)
    for exposure, path in zip(exposures, files):
        exposure.save(path)
    association = {"asn_type": "spec3", "products": [{"name": "jw01234-o001_{source_id}_nirspec_prism",
                                                       "members": [{"expname": p.name, "exptype": "science"}
                                                                   for p in files]}]}
    asn.write_text(json.dumps(association))
    size.write_text(json.dumps([n_sources, nx]))
    return files, asn


def timed(func) -> float:
    start = time.perf_counter()
    func()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", type=int, default=200)
    parser.add_argument("--nx", type=int, default=400)
    parser.add_argument("--workdir", default="/tmp/optx_mos")
    parser.add_argument("--slit-tasks", type=int, default=2, help="optx-batch --slit-tasks for its second run")
    args = parser.parse_args()
    folder = Path(args.workdir)
    files, asn = write_program(folder, args.sources, args.nx)
    logging.getLogger("jwst_optextract").setLevel(logging.WARNING)
    logging.getLogger("stpipe").setLevel(logging.WARNING)
    print(f"{args.sources} slitlets x 3 exposures of 25 x {args.nx}; load average {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} cores")

    def saved_in(name):  # every run writes its products, as strun and optx-batch do
        (folder / name).mkdir(exist_ok=True)
        return {"save_results": True, "output_dir": str(folder / name)}

    def spec(cores):
        return lambda: [OptimalExtractionPipeline.call(str(f), maximum_cores=cores, **saved_in(f"spec_{cores}"))
                        for f in files]

    rows = [("optx_spec, serial", timed(spec("none"))), ("optx_spec, maximum_cores=all", timed(spec("all")))]
    batch = [sys.executable, "-m", "jwst_optextract", "optx_spec", *map(str, files), "-o", str(folder / "batch")]
    rows.append(("optx_spec, optx-batch (Dask LocalCluster)",
                 timed(lambda: subprocess.run(batch, check=True, capture_output=True))))
    split = [*batch[:-1], str(folder / "batch_split"), "--slit-tasks", str(args.slit_tasks)]
    rows.append((f"optx_spec, optx-batch --slit-tasks {args.slit_tasks}",
                 timed(lambda: subprocess.run(split, check=True, capture_output=True))))
    for cores in ("none", "all"):
        rows.append((f"optx_combine, maximum_cores={cores}",
                     timed(lambda cores=cores: SlitCombineStep.call(str(asn), maximum_cores=cores,
                                                                    **saved_in(f"combine_{cores}")))))
    for label, seconds in rows:
        print(f"{label:45s} {seconds:7.1f} s wall  ({seconds / args.sources:.3f} s per source)")


if __name__ == "__main__":
    main()
