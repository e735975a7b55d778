"""Speed and memory of optimal extraction on a 200 x 32 x 2048 time-series cube.

Run: ``python benchmarks/bench_extract.py [--nints 200] [--repeat 3]``

Reports, on one core:
- the extraction kernel (`jwst_optextract.core.optimal_extract` with a known profile,
  float32 input, outlier rejection on) in Mpix/s;
- the whole `OptimalExtractStep` on the SlitModel (trace + profile fit + extraction +
  x1dints product) in seconds and peak resident memory.
"""

from __future__ import annotations

import argparse
import os
import resource
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from jwst_optextract import OptimalExtractStep, simulate  # noqa: E402
from jwst_optextract.core import optimal_extract  # noqa: E402


def best_of(repeat, func):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nints", type=int, default=200)
    parser.add_argument("--ny", type=int, default=32)
    parser.add_argument("--nx", type=int, default=2048)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    model, truth = simulate.make_tso(
        nints=args.nints, nx=args.nx, ny=args.ny, flux=50.0, background=0.0,
        cosmic_ray_fraction=0.001, seed=1,
    )
    npix = model.data.size
    print(f"cube {model.data.shape} float32, {model.data.nbytes / 1e6:.0f} MB of SCI, "
          f"{model.data.nbytes * 4 / 1e6:.0f} MB with the variance arrays")

    data, vr, vp = model.data, model.var_rnoise, model.var_poisson
    profile = truth.profile.astype(np.float32)
    seconds = best_of(args.repeat, lambda: optimal_extract(data, profile, vr, vp, reject_sigma=5.0))
    print(f"kernel optimal_extract: {seconds:.3f} s = {npix / seconds / 1e6:.1f} Mpix/s (best of {args.repeat})")

    seconds = best_of(1, lambda: OptimalExtractStep.call(model))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"OptimalExtractStep.call: {seconds:.2f} s end to end = {npix / seconds / 1e6:.1f} Mpix/s; "
          f"peak RSS of the process {peak:.0f} MB")


if __name__ == "__main__":
    main()
