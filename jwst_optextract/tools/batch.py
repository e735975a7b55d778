"""Run a step or pipeline over many files on Dask: ``python -m jwst_optextract`` and ``optx-batch``.

Any stpipe step or pipeline works, named by its alias (``optx_extract``,
``optx_spec``, ``optx_spec2``, ... resolved through stpipe's ``stpipe.steps``
entry points, as ``strun`` does) or by its class (``jwst_optextract.OptimalExtractStep``).
Each input (a file or an association JSON) is one Dask task, run with
``Step.call``; its outputs go to ``--output-dir`` and its log to a file
``<input>.log`` beside them. By default the tasks run on a
``dask.distributed.LocalCluster`` of one single-threaded worker process per
core; ``--scheduler ADDRESS`` sends them to a running cluster instead (its
workers need this package and the inputs' paths). A failing input does not
stop the others: every failure is listed, with its error, in the summary at
the end, and the exit status is then 1.

Example::

    optx-batch optx_spec data/*_calints.fits -o out --param steps.optx_extract.save_white_light=true
    python -m jwst_optextract optx_extract *_cal.fits -o out --param extraction_type=box --workers 4

Needs ``dask[distributed]`` (``pip install jwst_optextract[batch]``).
"""

from __future__ import annotations

import argparse
import itertools
import logging
import os
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["BatchResult", "main", "merge_parts", "parse_parameters", "resolve_step", "run_batch", "run_one",
           "slit_ranges"]

log = logging.getLogger(__name__)


@dataclass
class BatchResult:
    """What happened to one input."""

    input: str
    outputs: list[str] = field(default_factory=list)
    seconds: float = 0.0
    error: str | None = None
    """``"ExceptionType: message"`` when the run failed, else None."""
    log_file: str | None = None


def resolve_step(name: str):
    """The Step class for an alias registered with stpipe (``optx_extract``) or a class path.

    Raises
    ------
    ValueError
        When ``name`` is neither.
    """
    from stpipe import Step
    from stpipe.utilities import import_class, resolve_step_class_alias

    class_name = resolve_step_class_alias(name)
    if "." not in class_name:
        raise ValueError(f"{name!r} is not the alias of a registered stpipe step or pipeline (see `strun --list`), "
                         "nor a class path such as jwst_optextract.OptimalExtractStep")
    return import_class(class_name, subclassof=Step)


def parse_parameters(items: list[str]) -> dict:
    """``["a=1", "steps.optx_extract.x=2"]`` to ``{"a": "1", "steps": {"optx_extract": {"x": "2"}}}``.

    Values stay strings: stpipe converts them with the step's spec, as it
    does for ``strun --a=1``.

    Raises
    ------
    ValueError
        For an item without ``=``.
    """
    parameters: dict = {}
    for item in items:
        name, equals, value = item.partition("=")
        if not equals or not name.strip():
            raise ValueError(f"a step parameter must be given as NAME=VALUE, not {item!r}")
        *path, key = name.strip().split(".")
        node = parameters
        for part in path:
            node = node.setdefault(part, {})
        node[key] = value
    return parameters


def run_one(step_name: str, path: str, output_dir: str, parameters: dict, config_file: str | None = None,
            slits: tuple[int, int] | None = None) -> BatchResult:
    """Run the step on one input, saving its results in ``output_dir``; never raises.

    This is the task a Dask worker runs. The step's log goes to
    ``<output_dir>/<input name>.log``. With ``slits=(start, stop)`` the step
    runs on those slits of a MultiSlitModel only (see `run_batch`).
    """
    start = time.perf_counter()
    log_file = os.path.join(output_dir, f"{Path(path).name}.log")
    result = BatchResult(input=path, log_file=log_file)
    handler = logging.FileHandler(log_file, mode="w")
    handler.setFormatter(logging.Formatter("%(asctime)s - %(name)s - %(levelname)s - %(message)s"))
    loggers = []
    try:
        cls = resolve_step(step_name)
        loggers = [logging.getLogger(name) for name in cls.get_stpipe_loggers()]
        for logger in loggers:
            logger.addHandler(handler)
            logger.setLevel(logging.INFO)
        kwargs = {"config_file": config_file} if config_file else {}
        step_input = path if slits is None else _slit_subset(path, *slits)
        output = cls.call(step_input, output_dir=output_dir, save_results=True, configure_log=False,
                          **kwargs, **parameters)
        result.outputs = _saved_files(output, output_dir)
    except Exception as exc:  # noqa: BLE001 -- reported in the summary; the other inputs go on
        result.error = f"{type(exc).__name__}: {exc}"
        log.error("%s failed:\n%s", path, traceback.format_exc())
    finally:
        for logger in loggers:
            logger.removeHandler(handler)
        handler.close()
    result.seconds = time.perf_counter() - start
    return result


def slit_ranges(path: str, tasks: int) -> list[tuple[int, int]]:
    """``tasks`` runs of consecutive slits of a MultiSlitModel file, as ``(start, stop)``; ``[]`` for other inputs.

    Only the FITS headers are read. Fewer ranges come back when the file
    has fewer slits than ``tasks``.
    """
    from astropy.io import fits

    if tasks < 2 or not str(path).lower().endswith(".fits"):
        return []
    try:
        with fits.open(path) as hdus:
            if hdus[0].header.get("DATAMODL") != "MultiSlitModel":
                return []
            count = sum(1 for hdu in hdus if hdu.header.get("EXTNAME") == "SCI")
    except OSError:
        return []  # the step itself will say what is wrong with the file
    edges = np.linspace(0, count, min(tasks, count) + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in itertools.pairwise(edges)] if count > 1 else []


def _slit_subset(path: str, start: int, stop: int):
    """The slits ``start`` to ``stop - 1`` of a MultiSlitModel file, as a MultiSlitModel with the file's metadata."""
    from stdatamodels.jwst import datamodels

    from ..io.opening import open_datamodel

    whole = open_datamodel(path)
    part = datamodels.MultiSlitModel(validate_on_assignment=False)  # the file's slits, validated as it was read
    part.update(whole)
    part.meta.filename = whole.meta.filename  # products are named after the input, as for the whole file
    for index in range(start, stop):
        part.slits.append(whole.slits[index])
    return part


def merge_parts(path: str, output_dir: str, parts: list[BatchResult]) -> BatchResult:
    """Merge the products of the slit ranges of one input into the products of the whole file; never raises.

    Every product that a part saved (``x1d``, and any other the step saved)
    is merged, in slit order, by concatenating its list of spectra
    (``spec``), slits (``slits``), traces or profiles, and saved in
    ``output_dir`` under the name the whole-file run gives it; the parts'
    logs are joined in ``<input name>.log``. A part that failed is reported
    in ``error``, naming its slits; the others are still merged. The parts'
    folders are removed once everything is merged.
    """
    import shutil

    from ..io.opening import open_datamodel

    start = time.perf_counter()
    result = BatchResult(input=path, seconds=sum(part.seconds for part in parts),
                         log_file=os.path.join(output_dir, f"{Path(path).name}.log"))
    with open(result.log_file, "w") as log_out:
        for part in parts:
            log_out.write(f"=== {Path(part.log_file).parent.name} ===\n")
            if os.path.isfile(part.log_file):
                log_out.write(Path(part.log_file).read_text())
    failed = [part for part in parts if part.error]
    if failed:
        result.error = "; ".join(f"{Path(part.log_file).parent.name}: {part.error}" for part in failed)
    names = dict.fromkeys(Path(output).name for part in parts for output in part.outputs)
    for name in names:
        files = [next(o for o in part.outputs if Path(o).name == name) for part in parts
                 if any(Path(o).name == name for o in part.outputs)]
        try:
            merged = open_datamodel(files[0])
            entries = _list_attribute(merged)
            for other in files[1:]:
                with open_datamodel(other) as model:
                    for entry in getattr(model, entries):
                        getattr(merged, entries).append(entry)
            target = os.path.join(output_dir, name)
            merged.save(target)
            merged.close()
            result.outputs.append(target)
        except Exception as exc:  # noqa: BLE001 -- reported; the parts' files are kept
            result.error = "; ".join(filter(None, [result.error, f"merging {name}: {type(exc).__name__}: {exc}"]))
            continue
    if not result.error:
        for part in parts:
            shutil.rmtree(Path(part.log_file).parent, ignore_errors=True)
    result.seconds += time.perf_counter() - start
    return result


def _list_attribute(model) -> str:
    for name in ("spec", "slits", "traces", "profiles"):
        if getattr(model, name, None) is not None:
            return name
    raise TypeError(f"a {type(model).__name__} has no list of slits or spectra to merge")


def _saved_files(output, output_dir: str) -> list[str]:
    """The files in ``output_dir`` that the step's result (a model, or several) was saved as."""
    from stdatamodels import DataModel

    models = [output] if isinstance(output, DataModel) or output is None else list(output)
    names = [getattr(getattr(model, "meta", None), "filename", None) for model in models]
    paths = [os.path.join(output_dir, name) for name in names if isinstance(name, str) and name]
    return [path for path in paths if os.path.isfile(path)]


def run_batch(step_name: str, inputs: list[str], output_dir: str, parameters: dict | None = None,
              config_file: str | None = None, client=None, progress: bool = True,
              slit_tasks: int = 1) -> list[BatchResult]:
    """Run the step on every input as Dask tasks on ``client``; results in the order of ``inputs``.

    Parameters
    ----------
    step_name : str
        Alias or class path of the step or pipeline (checked here, before any task runs).
    inputs : list of str
        Files or association JSONs.
    output_dir : str
        Where the results (and one log per input) are written; created if needed.
    parameters : dict, optional
        Step parameters (see `parse_parameters`).
    config_file : str, optional
        A parameter file (ASDF) for the step.
    client : dask.distributed.Client
        The cluster to run on.
    progress : bool
        Show a progress bar (``dask.distributed.progress``).
    slit_tasks : int
        Split every MultiSlitModel file into this many tasks of consecutive
        slits, whose products are merged into those of the whole file (see
        `merge_parts`): for programs of few files with many slits each, which
        one task per file would leave on too few workers. Each task reads the
        whole file (stdatamodels cannot read part of one), so more tasks than
        workers only adds reading. The products equal those of one task.
    """
    from dask.distributed import progress as progress_bar

    resolve_step(step_name)
    output_dir = os.path.abspath(output_dir)
    os.makedirs(output_dir, exist_ok=True)
    inputs = [os.path.abspath(path) for path in inputs]
    config_file = os.path.abspath(config_file) if config_file else None
    futures = []
    for index, path in enumerate(inputs):
        key = f"{step_name}-{index}-{Path(path).name}"
        ranges = slit_ranges(path, slit_tasks)
        if not ranges:
            futures.append(client.submit(run_one, step_name, path, output_dir, parameters or {}, config_file,
                                         key=key, pure=False))
            continue
        parts = []
        for start, stop in ranges:
            part_dir = os.path.join(output_dir, f"{Path(path).name}.slits{start}-{stop - 1}")
            os.makedirs(part_dir, exist_ok=True)
            parts.append(client.submit(run_one, step_name, path, part_dir, parameters or {}, config_file,
                                       (start, stop), key=f"{key}-slits{start}-{stop - 1}", pure=False))
        futures.append(client.submit(merge_parts, path, output_dir, parts, key=f"{key}-merge", pure=False))
    if progress:
        progress_bar(futures)
    results = []
    for path, future in zip(inputs, futures):
        try:
            results.append(future.result())
        except Exception as exc:  # noqa: BLE001 -- a worker that died: the task itself could not report
            results.append(BatchResult(input=path, error=f"{type(exc).__name__}: {exc}"))
    return results


def _summary(results: list[BatchResult], seconds: float) -> str:
    failed = [r for r in results if r.error]
    lines = [f"{len(results) - len(failed)} of {len(results)} inputs done in {seconds:.1f} s"]
    lines += [f"  ok      {r.input} -> {', '.join(r.outputs) or '(no file saved)'} ({r.seconds:.1f} s)"
              for r in results if not r.error]
    lines += [f"  FAILED  {r.input}: {r.error} (log: {r.log_file})" for r in failed]
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="optx-batch", description="Run an stpipe step or pipeline over many files on Dask.",
        epilog="Example: optx-batch optx_spec *_calints.fits -o out --param steps.optx_extract.maximum_cores=1",
    )
    parser.add_argument("step", help="step or pipeline alias (optx_extract, optx_spec, optx_spec2, ...) or class path")
    parser.add_argument("inputs", nargs="+", help="input files or association JSONs")
    parser.add_argument("-o", "--output-dir", default=".", help="where results and logs are written (default: .)")
    parser.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE",
                        help="step parameter, as strun's --NAME=VALUE (steps.optx_extract.x=1 for a pipeline); "
                             "repeatable")
    parser.add_argument("-c", "--config", default=None, help="parameter file (ASDF) for the step")
    parser.add_argument("--scheduler", default=None, metavar="ADDRESS",
                        help="address of a running dask.distributed scheduler (default: a local cluster)")
    parser.add_argument("--workers", type=int, default=None,
                        help="local cluster: worker processes (default: one per core)")
    parser.add_argument("--memory-limit", default="auto", help="local cluster: memory limit per worker")
    parser.add_argument("--slit-tasks", type=int, default=1, metavar="N",
                        help="split each MultiSlitModel file into N tasks of consecutive slits, their products "
                             "merged (default: 1, one task per file)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def main(argv: list[str] | None = None) -> int:
    """The command line; returns the exit status (0: every input done, 1: some failed, 2: bad usage)."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        log.error("optx-batch needs dask.distributed: pip install 'jwst_optextract[batch]'")
        return 2
    try:
        parameters = parse_parameters(args.param)
        resolve_step(args.step)
    except (ValueError, ImportError) as exc:
        log.error("%s", exc)
        return 2
    missing = [path for path in args.inputs if not os.path.exists(path)]
    if missing and args.scheduler is None:
        log.error("no such input file: %s", ", ".join(missing))
        return 2
    start = time.perf_counter()
    if args.scheduler:
        cluster, client = None, Client(args.scheduler)
    else:
        workers = args.workers or len(os.sched_getaffinity(0))
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               memory_limit=args.memory_limit, dashboard_address=None)
        client = Client(cluster)
    log.info("Running %s on %d inputs on %s", args.step, len(args.inputs), client)
    try:
        results = run_batch(args.step, args.inputs, args.output_dir, parameters, args.config, client,
                            progress=not args.no_progress, slit_tasks=args.slit_tasks)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    print(_summary(results, time.perf_counter() - start))
    return 1 if any(result.error for result in results) else 0


if __name__ == "__main__":
    sys.exit(main())
