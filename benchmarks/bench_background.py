"""Speed and memory of the ``smooth`` background on a 200 x 32 x 2048 time-series cube.

Run: ``python benchmarks/bench_background.py [--nints 200] [--repeat 3]``

Reports, on one core (``OMP_NUM_THREADS=1``), in CPU seconds of the process
(``time.process_time``, best of ``--repeat``; wall-clock times are noisy on a
shared machine):
- the core fit `jwst_optextract.core.background.smooth_background` (float32
  cube, a fixed source mask, sigma clipping on) in seconds and Mpix/s, with
  the time of its phases (from one profiled run) and the peak memory it
  allocates beyond its inputs;
- the whole `BackgroundStep` (trace for the source mask + fit + output model);
- the peak resident memory of the process.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import resource
import time
import tracemalloc

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np

from jwst_optextract import simulate
from jwst_optextract.core.background import solvers
from jwst_optextract.core.background import smooth_background
from jwst_optextract.core.masking import source_mask
from jwst_optextract.steps.background_step import BackgroundStep

# The phases of a smooth fit: functions of core.background.solvers whose cumulative time is reported.
PHASES = {
    "input checks, noise model": solvers.prepare,
    "column moments": solvers.column_moments,
    "spline solves": solvers.SplineSolver.solve,
    "  banded LDL^T factorisations": solvers.ldl_banded,
    "noise model of the fits": solvers.Noise.total,
    "model covariance": solvers.SplineSolver.covariance,
    "  selected inverse": solvers.banded_inverse,
    "variance split": solvers.split_variance,
}


def best_of(repeat, func):
    times = []
    for _ in range(repeat):
        start = time.process_time()
        func()
        times.append(time.process_time() - start)
    return min(times)


def phases(func) -> None:
    """Print the CPU time of each of `PHASES` in one profiled call of ``func``."""
    profile = cProfile.Profile(time.process_time)
    profile.runcall(func)
    stats = pstats.Stats(profile).stats  # {(file, line, name): (calls, calls, own, cumulative, callers)}
    for name, function in PHASES.items():
        code = function.__code__
        cumulative = stats.get((code.co_filename, code.co_firstlineno, code.co_name), (0, 0, 0, 0.0))[3]
        print(f"    {name:32s} {cumulative:6.3f} s")


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
    print("  phases (one profiled run, cumulative CPU s):")
    phases(lambda: smooth_background(data, mask, vr, vp))
    tracemalloc.start()
    fit = smooth_background(data, mask, vr, vp)
    peak = tracemalloc.get_traced_memory()[1] / 1e6
    tracemalloc.stop()
    print(f"  peak memory allocated by the fit: {peak:.0f} MB ({peak * 1e6 / data.nbytes:.1f} x the SCI array), "
          f"of which the result is {sum(getattr(fit, k).nbytes for k in vars(fit)) / 1e6:.0f} MB")
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
