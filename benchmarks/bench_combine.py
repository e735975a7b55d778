"""Speed of SlitCombineStep on a simulated MOS program: N sources x 3 nod exposures.

Run: ``python benchmarks/bench_combine.py [--sources 200] [--nx 400]``

Builds three MultiSlitModel exposures (one per nod position) holding one
slitlet per source (25 rows; ``--nx`` columns, 400 is PRISM-like), then
times ``SlitCombineStep.call`` on them in memory (CPU time on one thread, and
wall time) and reports seconds per source and the peak resident memory.
"""

from __future__ import annotations

import argparse
import os
import resource
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import logging  # noqa: E402

from jwst_optextract import SlitCombineStep, simulate  # noqa: E402


def program(n_sources: int, nx: int):
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
    return exposures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", type=int, default=200)
    parser.add_argument("--nx", type=int, default=400)
    args = parser.parse_args()
    exposures = program(args.sources, args.nx)
    logging.getLogger("jwst_optextract").setLevel(logging.WARNING)
    logging.getLogger("stpipe").setLevel(logging.WARNING)
    cpu, wall = time.process_time(), time.perf_counter()
    results = SlitCombineStep.call(exposures)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{args.sources} sources x 3 exposures of 25 x {args.nx}: {len(results)} x1d products")
    print(f"SlitCombineStep.call: {cpu:.1f} s CPU ({cpu / args.sources:.3f} s per source), {wall:.1f} s wall; "
          f"peak memory {peak:.0f} MB")


if __name__ == "__main__":
    main()
