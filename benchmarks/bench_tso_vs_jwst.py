"""End-to-end time and peak memory on a BOTS-like ``_calints`` file: ``optx_spec``, ``optx_extract``
and jwst's ``Extract1dStep`` (box), side by side, each in a fresh process, one core each.

Run: ``python benchmarks/bench_tso_vs_jwst.py [--nints 200] [--workdir DIR]``. The inputs, the child
process and its measurements are those of ``bench_vs_jwst.py`` (which also times MOS exposures and
``maximum_cores=all``); this one adds ``optx_extract`` alone.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from bench_vs_jwst import load, run, write_tso


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nints", type=int, default=200)
    parser.add_argument("--workdir", default=None)
    args = parser.parse_args()
    workdir = Path(args.workdir or tempfile.mkdtemp())
    item = write_tso(workdir, args.nints)
    print(f"{item.label} float32, file {item.size_mb:.0f} MB; {load()}")
    for label, kind, extra in (("jwst_box", "jwst_box", ()), ("optx_extract", "strun", ("optx_extract",)),
                               ("optx_spec", "strun", ("optx_spec",))):
        result = run(kind, item, workdir, *extra)
        print(f"{label:>12}: {result['step']:6.2f} s file in -> x1dints out ({result['total']:6.2f} s with "
              f"imports), peak RSS {result['peak_mb']:6.0f} MB = {result['peak_mb'] / item.size_mb:4.1f} x the file")


if __name__ == "__main__":
    main()
