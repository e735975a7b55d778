"""Speed and memory of trace + profile fitting on a 200 x 32 x 2048 time-series cube.

Run: ``python benchmarks/bench_trace_psf.py [--nints 200]``. One core.
"""

from __future__ import annotations

import argparse
import os
import resource
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from jwst_optextract import simulate  # noqa: E402
from jwst_optextract.fitting import FitParameters, fit_profile, fit_trace  # noqa: E402
from jwst_optextract.io import read_slit  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nints", type=int, default=200)
    parser.add_argument("--kind", default="spline")
    args = parser.parse_args()
    model, _ = simulate.make_tso(nints=args.nints, nx=2048, ny=32, flux=50.0, jitter_rms=0.02,
                                 cosmic_ray_fraction=0.001, seed=1)
    slit = read_slit(model, model, model.name)
    params = FitParameters(kind=args.kind, psf_sigma=0.9)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    trace = fit_trace(slit, params)
    middle = time.perf_counter()
    fit_profile(slit, trace, params)
    end = time.perf_counter()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"cube {slit.data.shape}: trace (with per-integration shifts) {middle - start:.2f} s, "
          f"{args.kind} profile {end - middle:.2f} s, total {end - start:.2f} s; "
          f"peak RSS {rss:.0f} MB (before fitting {rss0:.0f} MB)")


if __name__ == "__main__":
    main()
