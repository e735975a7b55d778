"""Speed and memory of the ``smooth`` background on a 200 x 32 x 2048 time-series cube.

Run: ``python benchmarks/bench_background.py [--nints 200] [--repeat 3]``

Reports, on one core (``OMP_NUM_THREADS=1``):
- the core fit `jwst_optextract.core.background.smooth_background` (float32
  cube, a fixed source mask, sigma clipping on) in seconds and Mpix/s;
- the whole `BackgroundStep` (trace for the source mask + fit + output model);
- the peak resident memory of the process.
"""

from __future__ import annotations

import argparse
import os
import resource
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from jwst_optextract import simulate  # noqa: E402
from jwst_optextract.core.background import smooth_background  # noqa: E402
from jwst_optextract.core.masking import source_mask  # noqa: E402
from jwst_optextract.steps.background_step import BackgroundStep  # noqa: E402


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
        nints=args.nints, nx=args.nx, ny=args.ny, flux=50.0, background=5.0,
        background_gradient=(0.25, 0.25), cosmic_ray_fraction=0.001, seed=1,
    )
    npix = model.data.size
    print(f"cube {model.data.shape} float32, {model.data.nbytes / 1e6:.0f} MB of SCI")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    mask = np.isfinite(model.data) & ~source_mask(args.ny, truth.trace, 5.0)
    data, vr, vp = model.data, model.var_rnoise, model.var_poisson
    seconds = best_of(args.repeat, lambda: smooth_background(data, mask, vr, vp))
    print(f"core smooth_background: {seconds:.3f} s = {npix / seconds / 1e6:.1f} Mpix/s (best of {args.repeat})")
    fit = smooth_background(data, mask, vr, vp)
    inside = ~mask & np.isfinite(model.data)
    error = (fit.background - truth.background)[inside]
    print(f"  model error under the source: mean {error.mean():+.2e}, rms {error.std():.2e}, "
          f"predicted rms {np.sqrt(fit.var_total[inside].mean()):.2e} (background {truth.background.mean():.1f})")

    seconds = best_of(1, lambda: BackgroundStep.call(model))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"BackgroundStep.call (smooth): {seconds:.2f} s end to end = {npix / seconds / 1e6:.1f} Mpix/s")
    print(f"peak resident memory {peak:.0f} MB (after simulating the cube: {before:.0f} MB)")


if __name__ == "__main__":
    main()
