"""Speed and memory of optimal extraction on a 200 x 32 x 2048 time-series cube.

Run: ``python benchmarks/bench_extract.py [--nints 200] [--repeat 3] [--chunk-pixels N]``

Reports, on one core (CPU time, ``time.process_time``, best of ``--repeat``):
- the extraction kernel (`jwst_optextract.core.optimal_extract` with a known profile,
  float32 input, outlier rejection on) in Mpix/s, the CPU time of its phases, and the
  peak memory it allocates (numpy arrays, traced with `tracemalloc`);
- the whole `OptimalExtractStep` on the SlitModel (trace + profile fit + extraction +
  x1dints product) in seconds and peak resident memory.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import resource
import time
import tracemalloc

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np

from jwst_optextract import OptimalExtractStep, simulate
from jwst_optextract.core import optimal

# Phases of the kernel: the functions of `optimal` whose CPU time each one counts
# (calls nested in another timed function count for the outer one).
PHASES = {
    "screening (bad pixels)": ("_screen",),
    "Poisson variance model": ("poisson_terms",),
    "weighted solve": ("_model_variance", "solve_columns"),
    "outlier rejection": ("_reject_outliers",),
}


def best_of(repeat, func):
    times = []
    for _ in range(repeat):
        start = time.process_time()
        func()
        times.append(time.process_time() - start)
    return min(times)


@contextlib.contextmanager
def phase_timers(totals: dict):
    """Accumulate into ``totals`` the CPU time of each phase's outermost calls."""
    depth = [0]
    originals = {}

    def timed(phase, func):
        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            if depth[0]:
                return func(*args, **kwargs)
            depth[0] += 1
            start = time.process_time()
            try:
                return func(*args, **kwargs)
            finally:
                totals[phase] += time.process_time() - start
                depth[0] -= 1
        return wrapper

    for phase, names in PHASES.items():
        totals[phase] = 0.0
        for name in names:
            originals[name] = getattr(optimal, name)
            setattr(optimal, name, timed(phase, originals[name]))
    try:
        yield
    finally:
        for name, func in originals.items():
            setattr(optimal, name, func)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nints", type=int, default=200)
    parser.add_argument("--ny", type=int, default=32)
    parser.add_argument("--nx", type=int, default=2048)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--chunk-pixels", type=int, default=1 << 19)
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

    def kernel():
        return optimal.optimal_extract(data, profile, vr, vp, reject_sigma=5.0, chunk_pixels=args.chunk_pixels)

    seconds = best_of(args.repeat, kernel)
    print(f"kernel optimal_extract: {seconds:.3f} s CPU = {npix / seconds / 1e6:.1f} Mpix/s "
          f"(best of {args.repeat}, chunk_pixels={args.chunk_pixels})")

    totals = {}
    with phase_timers(totals):
        start = time.process_time()
        kernel()
        total = time.process_time() - start
    totals["other (setup, outputs)"] = total - sum(totals.values())
    print("  phases: " + ", ".join(f"{phase} {100 * t / total:.0f}%" for phase, t in totals.items()))

    tracemalloc.start()
    result = kernel()
    current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"  peak memory allocated by the kernel: {peak / 1e6:.0f} MB, "
          f"of which {current / 1e6:.0f} MB is the result ({result.rejected.nbytes / 1e6:.0f} MB the rejected mask)")
    del result

    start = time.process_time()
    OptimalExtractStep.call(model)
    seconds = time.process_time() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"OptimalExtractStep.call: {seconds:.2f} s CPU end to end = {npix / seconds / 1e6:.1f} Mpix/s; "
          f"peak RSS of the process {peak:.0f} MB")


if __name__ == "__main__":
    main()
