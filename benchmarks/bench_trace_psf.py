"""CPU time and memory of trace + profile fitting on a 200 x 32 x 2048 time-series cube.

Run: ``python benchmarks/bench_trace_psf.py [--nints 200] [--profile-kind spline] [--repeat 3]``.
One thread (BLAS limited to one); the times are CPU seconds (``time.process_time``), best
of ``--repeat``, so that other processes on the machine do not count.
"""

from __future__ import annotations

import argparse
import os
import resource
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from jwst_optextract import simulate
from jwst_optextract.drivers.fit import PROFILE_KINDS, FitParameters, fit_profile, fit_trace
from jwst_optextract.io import read_slit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nints", type=int, default=200)
    parser.add_argument("--profile-kind", default="spline", choices=[k for k in PROFILE_KINDS if k != "template"])
    parser.add_argument("--trace-model", default="polynomial", choices=["polynomial", "spline"])
    parser.add_argument("--deconvolve", type=int, default=0, help="Richardson-Lucy iterations")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    model, _ = simulate.make_tso(nints=args.nints, nx=2048, ny=32, flux=50.0, jitter_rms=0.02,
                                 cosmic_ray_fraction=0.001, seed=1)
    slit = read_slit(model, model, model.name)
    params = FitParameters(profile_kind=args.profile_kind, psf_sigma=0.9, trace_model=args.trace_model,
                           deconvolve_iterations=args.deconvolve)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    best = None
    for _ in range(args.repeat):
        start = time.process_time()
        trace = fit_trace(slit, params)
        middle = time.process_time()
        profile = fit_profile(slit, trace, params)
        end = time.process_time()
        times = (middle - start, end - middle, end - start)
        best = times if best is None or times[2] < best[2] else best
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"cube {slit.data.shape}: trace ({args.trace_model}, {args.deconvolve} RL iterations, with "
          f"per-integration shifts) {best[0]:.2f} s, {args.profile_kind} profile ({profile.kind}) {best[1]:.2f} s, "
          f"total {best[2]:.2f} s CPU (best of {args.repeat}); peak RSS {rss:.0f} MB (before fitting {rss0:.0f} MB)")


if __name__ == "__main__":
    main()
