"""Wall time of ``maximum_cores`` and of the Dask batch runner against the serial run.

Run: ``python benchmarks/bench_parallel.py [--repeat 3] [--files 4]``. Parallel speed-ups need
wall-clock time: run it on a quiet machine (the load average is printed).

1. ``OptimalExtractStep`` on a 20-slit MultiSlitModel (20 x 32 x 1024), serial vs ``maximum_cores=all``
   (worker processes over the slits);
2. the same on a 200 x 32 x 2048 time series (threads over groups of integrations);
3. ``optx-batch optx_extract`` on ``--files`` 20-slit files: a serial loop in one process vs a
   ``LocalCluster`` of one and of all-cores worker processes (each time includes the cluster's start-up).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from jwst_optextract import OptimalExtractStep, simulate


def best_of(repeat: int, func) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return min(times)


def compare(label: str, model, repeat: int) -> None:
    kwargs = {"profile_kind": "gaussian"}
    serial = best_of(repeat, lambda: OptimalExtractStep.call(model, maximum_cores="none", **kwargs))
    threaded = best_of(repeat, lambda: OptimalExtractStep.call(model, maximum_cores="all", **kwargs))
    print(f"{label}: serial {serial:6.2f} s, maximum_cores=all {threaded:6.2f} s, speed-up {serial / threaded:4.2f}",
          flush=True)


def batch(paths: list[str], workdir: Path) -> None:
    start = time.perf_counter()
    for path in paths:
        OptimalExtractStep.call(path, profile_kind="gaussian", output_dir=str(workdir), save_results=True)
    print(f"batch of {len(paths)} files: serial loop in one process {time.perf_counter() - start:6.2f} s", flush=True)
    for workers in sorted({1, len(os.sched_getaffinity(0))}):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "jwst_optextract", "optx_extract", *paths, "-o", str(workdir),
                        "--workers", str(workers), "--no-progress", "--param", "profile_kind=gaussian"],
                       check=True, capture_output=True)
        print(f"batch of {len(paths)} files: optx-batch, LocalCluster of {workers} worker(s) "
              f"{time.perf_counter() - start:6.2f} s (with start-up and imports)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--files", type=int, default=4)
    args = parser.parse_args()
    print(f"{len(os.sched_getaffinity(0))} cores, load average {os.getloadavg()[0]:.2f}", flush=True)
    multislit, _ = simulate.make_multislit(n_slits=20, nx=1024, ny=32, flux=20.0, cosmic_ray_fraction=0.001, seed=1)
    compare("20 slits of 32 x 1024", multislit, args.repeat)
    cube, _ = simulate.make_tso(nints=200, nx=2048, ny=32, flux=50.0, jitter_rms=0.02, cosmic_ray_fraction=0.001,
                                seed=1)
    compare("200 x 32 x 2048 time series", cube, args.repeat)
    workdir = Path(tempfile.mkdtemp())
    paths = []
    for index in range(args.files):
        model, _ = simulate.make_multislit(n_slits=20, nx=1024, ny=32, flux=20.0, seed=10 + index)
        paths.append(str(workdir / f"mos{index}_cal.fits"))
        model.save(paths[-1])
    batch(paths, workdir)
    print(f"load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
