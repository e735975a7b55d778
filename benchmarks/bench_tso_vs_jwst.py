"""End-to-end time and peak memory on a BOTS-like ``_calints`` file: ``optx_spec``, ``optx_extract``
and jwst's ``Extract1dStep`` (box), side by side, each in a fresh process.

Run: ``python benchmarks/bench_tso_vs_jwst.py [--nints 200] [--workdir DIR]``. One core each.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RUNNER = r"""
import json, resource, sys, time
kind, path = sys.argv[1], sys.argv[2]
start = time.perf_counter()
if kind == "jwst_box":
    from jwst.extract_1d import Extract1dStep
    class Offline(Extract1dStep):
        def finalize_result(self, result, reference_files_used):
            super().finalize_result(result, [])
    ref = sys.argv[3]
    Offline(override_extract1d=ref, override_psf="N/A", apply_apcorr=False, use_source_posn=False,
            save_results=False).run(path)
else:
    from jwst_optextract import OptimalExtractionPipeline, OptimalExtractStep
    step = OptimalExtractionPipeline if kind == "optx_spec" else OptimalExtractStep
    step(save_results=False).run(path)
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def run(kind: str, path: Path, *extra: str) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    env = {k: v for k, v in env.items() if not k.startswith("CRDS")}
    env["CRDS_PATH"] = str(path.parent / "no_crds")
    runner = path.parent / "bench_runner.py"  # a file: stpipe reads the source of step classes
    runner.write_text(RUNNER)
    out = subprocess.run([sys.executable, str(runner), kind, str(path), *extra], env=env,
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nints", type=int, default=200)
    parser.add_argument("--workdir", default=None)
    args = parser.parse_args()
    from jwst_optextract import simulate

    workdir = Path(args.workdir or tempfile.mkdtemp())
    model, _ = simulate.make_tso(nints=args.nints, nx=2048, ny=32, flux=50.0, jitter_rms=0.02,
                                 cosmic_ray_fraction=0.001, seed=1)
    path = workdir / "bench_calints.fits"
    model.save(path)
    size_mb = path.stat().st_size / 1e6
    ref = workdir / "extract1d.json"
    ref.write_text(json.dumps({"reftype": "EXTRACT1D", "instrument": "ANY", "telescope": "JWST",
                               "exp_type": "ANY", "apertures": [{"id": "ANY", "region_type": "target",
                                                                 "ystart": 13.0, "ystop": 19.0}]}))
    print(f"input {model.data.shape} float32, file {size_mb:.0f} MB")
    for kind, extra in (("jwst_box", (str(ref),)), ("optx_extract", ()), ("optx_spec", ())):
        start = time.perf_counter()
        result = run(kind, path, *extra)
        print(f"{kind:>12}: {result['seconds']:6.2f} s in the step ({time.perf_counter() - start:6.2f} s with "
              f"imports), peak RSS {result['peak_mb']:6.0f} MB = {result['peak_mb'] / size_mb:4.1f} x the file")


if __name__ == "__main__":
    main()
