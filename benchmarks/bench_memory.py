"""Peak resident memory of ``optx_extract`` and ``optx_spec`` on a large ``_calints``-like file.

Writes a simulated BOTS-like time series (``simulate.make_tso``, default
1000 x 32 x 2048) to ``--workdir`` (default /tmp), then runs each step on the
file in a fresh process and reads that process's peak RSS (``VmHWM``). The
figures are given in MB and in multiples of the file's size; ``imports`` is
the floor (Python, numpy, jwst and the package imported, nothing read).

Run: ``python benchmarks/bench_memory.py [--nints 1000] [--workdir /tmp] [--kinds optx_extract optx_spec]``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

RUNNER = r"""
import json, sys, time
kind, path = sys.argv[1], sys.argv[2]
params = json.loads(sys.argv[3]) if len(sys.argv) > 3 else {}
start = time.perf_counter()
from jwst_optextract import OptimalExtractionPipeline, OptimalExtractStep
if kind == "optx_extract":
    OptimalExtractStep(save_results=False, **params).run(path)
elif kind == "optx_spec":
    OptimalExtractionPipeline(save_results=False, **params).run(path)
seconds = time.perf_counter() - start
peak = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM"))
print(json.dumps({"seconds": seconds, "peak_mb": peak / 1024}))
"""

MAKE_FILE = r"""
import sys
from jwst_optextract import simulate
model, _ = simulate.make_tso(nints=int(sys.argv[2]), nx=2048, ny=32, flux=50.0, jitter_rms=0.02,
                             cosmic_ray_fraction=0.001, seed=1)
model.save(sys.argv[1])
"""


def run(kind: str, path: Path, params: dict | None = None) -> dict:
    """Run one kind in a fresh, single-threaded, CRDS-free process; its time and peak RSS."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRDS")}
    env.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", CRDS_PATH=str(path.parent / "no_crds"))
    runner = path.parent / "bench_memory_runner.py"  # a file: stpipe reads the source of step classes
    runner.write_text(RUNNER)
    out = subprocess.run([sys.executable, str(runner), kind, str(path), json.dumps(params or {})], env=env,
                         capture_output=True, text=True, check=False)
    if out.returncode:
        raise RuntimeError(f"{kind} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nints", type=int, default=1000)
    parser.add_argument("--workdir", default="/tmp")
    parser.add_argument("--kinds", nargs="+", default=["imports", "optx_extract", "optx_spec"])
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                        help="step parameter (JSON value), e.g. chunk_pixels=262144")
    args = parser.parse_args()
    params = {name: json.loads(value) for name, value in (p.split("=", 1) for p in args.param)}

    path = Path(args.workdir) / f"bench_memory_{args.nints}_calints.fits"
    if not path.exists():
        subprocess.run([sys.executable, "-c", MAKE_FILE, str(path), str(args.nints)], check=True)
    size_mb = path.stat().st_size / 2**20
    print(f"input {args.nints} x 32 x 2048 float32 ({path}), file {size_mb:.0f} MB")
    for kind in args.kinds:
        start = time.perf_counter()
        result = run(kind, path, params)
        print(f"{kind:>12}: peak RSS {result['peak_mb']:6.0f} MB = {result['peak_mb'] / size_mb:4.2f} x the file; "
              f"{result['seconds']:6.1f} s in the step ({time.perf_counter() - start:6.1f} s with start-up)",
              flush=True)


if __name__ == "__main__":
    main()
