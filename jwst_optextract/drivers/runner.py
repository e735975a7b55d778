"""The one slit loop of the package: isolation of failing slits, threads or processes, logs in slit order.

Every step runs its work through here: `process_slits` over the slits of one
input (read by `jwst_optextract.io.slits`), `map_isolated` over any other
items (the sources of `optx_combine`). A failing item is skipped with a
warning and the others are kept; results and warnings come in input order,
whatever the number of workers, so the product does not depend on it.
"""

from __future__ import annotations

import functools
import logging
import multiprocessing
import warnings
from collections.abc import Callable, Collection, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib import import_module
from typing import Any

from ..exceptions import InputError, SlitError
from ..io.slits import SlitData, describe_model, iter_slits, read_slit

__all__ = ["FATAL_ERRORS", "SlitRun", "map_isolated", "parallel_map", "process_map", "process_slits",
           "processes_allowed", "warm_workers"]

log = logging.getLogger(__name__)


@dataclass
class SlitRun:
    """What happened to every slit of one input (see `process_slits`).

    Attributes
    ----------
    total : int
        Number of slits in the input.
    done : list of (str, object)
        Name and result of every slit that was processed.
    skipped : dict of str to str
        Name of every slit that was not, and why.
    """

    total: int
    done: list[tuple[str, Any]] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)

    def merge(self, later: SlitRun, described: str) -> None:
        """Take ``later``'s results (a second pass over some of the slits) in place of this run's, in slit order.

        A slit that ``later`` skipped is skipped here too. Raises InputError,
        naming the input (``described``), when no slit is left.
        """
        results = dict(later.done)
        self.done = [(name, results.get(name, value)) for name, value in self.done if name not in later.skipped]
        self.skipped.update(later.skipped)
        if not self.done:
            reasons = "; ".join(f"{name}: {why}" for name, why in self.skipped.items())
            raise InputError(f"{described}: none of its {self.total} slits could be processed ({reasons})")

    def summary(self, verb: str) -> str:
        """``"<verb> N of M slits; skipped: a, b"``, for the log."""
        skipped = f"; skipped: {', '.join(self.skipped)}" if self.skipped else ""
        return f"{verb} {len(self.done)} of {self.total} slits{skipped}"


def process_slits(
    model, work: Callable[..., Any], workers: int = 1,
    finish: Callable[[SlitData, Any], Any] | None = None, processes: bool = False,
    prepare: Callable[[SlitData], tuple] | None = None, only: Collection[str] | None = None,
) -> SlitRun:
    """Read every slit of ``model`` and call ``work`` on it, keeping the healthy ones.

    A slit that cannot be read or processed is skipped with a warning naming
    the file, the slit and the reason. An error that is not the package's own
    (a degenerate input no check foresaw) is reported the same way, as a
    `SlitError` chained to the original, so that one slit cannot take the
    others down.

    With ``workers > 1`` the slits are processed in that many threads (see
    `parallel_map`), or, with ``processes=True`` and several slits, in that
    many worker processes (see `process_map`): ``work`` then gets the slit's
    arrays without its datamodel (``slit.model`` is None), so it must be a
    module-level function (or a ``functools.partial`` of one) that needs only
    the arrays. ``prepare(slit)``, if given, is called here first and its
    tuple passed on as further arguments, ``work(slit, *prepare(slit))``;
    ``finish(slit, value)``, if given, turns each value into the result here,
    in this thread, in slit order (for what needs the datamodel: plots,
    products). Results, skipped slits and their warnings come in slit order,
    as in a serial run, so the product is the same. ``work`` must not modify
    shared state. ``only``, if given, names the slits to process (the others
    are neither read nor counted; none of them may then be processed).

    Raises
    ------
    InputError
        For an unsupported or empty input, or when no slit of several could
        be processed (listing every slit and why).
    SlitError
        When the input has a single slit and it could not be processed.
    """
    every = list(iter_slits(model))
    slits = [item for item in every if only is None or item[0] in only]
    filename = getattr(model.meta, "filename", None)
    run = SlitRun(total=len(slits))
    numbered = [(number, len(slits)) for number in range(1, len(slits) + 1)]

    def read(item: tuple[str, Any]) -> tuple[SlitData, tuple]:
        slit = read_slit(item[1], model, item[0])
        return slit, (() if prepare is None else tuple(prepare(slit)))

    if processes and workers > 1 and len(slits) > 1 and processes_allowed():
        outcomes = _in_processes(work, slits, read, numbered, workers)
    else:
        def read_and_work(item):
            (name, slit_model), counter = item
            _log_number(name, *counter)
            slit, arguments = read((name, slit_model))
            return slit, work(slit, *arguments)

        outcomes = parallel_map(functools.partial(_attempt, read_and_work), zip(slits, numbered), workers)
    for (name, _), (ok, value) in zip(slits, outcomes):
        if ok:
            ok, value = _attempt(lambda pair: pair[1] if finish is None else finish(*pair), value)
        if ok:
            run.done.append((name, value))
            continue
        error = _slit_error(value, name, filename)
        if len(every) == 1:
            if error is value:
                raise value
            raise error from value
        log.warning("Skipping %s", error)
        run.skipped[name] = error.problem
    if not run.done and only is None:
        reasons = "; ".join(f"{name}: {why}" for name, why in run.skipped.items())
        raise InputError(f"{describe_model(model)}: none of its {run.total} slits could be processed ({reasons})")
    return run


FATAL_ERRORS = (InputError, ImportError, OSError, MemoryError)
"""Errors about the input as a whole or the environment: they stop the run instead of skipping a slit."""


def _attempt(func: Callable[[Any], Any], item: Any) -> tuple[bool, Any]:
    """``(True, func(item))``, or ``(False, the exception)``; the `FATAL_ERRORS` are raised."""
    try:
        return True, func(item)
    except FATAL_ERRORS:
        raise
    except Exception as exc:  # noqa: BLE001 -- one slit must not lose the others
        return False, exc


def map_isolated(work: Callable[[Any], Any], items: Iterable[Any], workers: int = 1) -> Iterator[tuple[bool, Any]]:
    """``(True, work(item))``, or ``(False, the exception)``, for every item, in the order of ``items``.

    One item's failure does not lose the others (the `FATAL_ERRORS`, about the
    input as a whole or the environment, are raised); with ``workers > 1`` the
    items run in that many threads (see `parallel_map`).
    """
    return parallel_map(functools.partial(_attempt, work), items, workers)


def _log_number(name: str, number: int, total: int) -> None:
    if total > 1:
        log.info("Slit %s (%d of %d)", name, number, total)


def _numbered(work: Callable[..., Any], item: tuple[SlitData, tuple, int, int]) -> Any:
    slit, arguments, number, total = item
    _log_number(slit.name, number, total)
    return work(slit, *arguments)


def _in_processes(work, slits: list, read: Callable, numbered: list[tuple[int, int]], workers: int):
    """``(ok, (slit, value))`` per slit, ``work`` run in worker processes on the slits that could be read.

    Each slit goes to the workers as soon as it is read here: they start on
    the first while the others are being read.
    """
    outcomes = []

    def jobs():
        for item, counter in zip(slits, numbered):
            outcomes.append(_attempt(read, item))
            if outcomes[-1][0]:
                slit, arguments = outcomes[-1][1]
                yield slit.detached(), arguments, *counter

    results = process_map(functools.partial(_attempt, functools.partial(_numbered, work)), jobs(),
                          min(workers, len(slits)))
    first = next(results, None)  # every slit is read (and sent) by now
    for (ok, value), (name, _), counter in zip(outcomes, slits, numbered):
        if not ok:  # the slit could not be read: its number is logged here, before its warning
            _log_number(name, *counter)
            yield ok, value
            continue
        done, result = first if first is not None else next(results)
        first = None
        yield done, ((value[0], result) if done else result)


def parallel_map(func: Callable[[Any], Any], items: Iterable[Any], workers: int = 1) -> Iterator[Any]:
    """``map(func, items)`` in ``workers`` threads, results in the order of ``items``.

    Threads share the arrays (nothing is copied), and numpy releases the GIL
    in the large array operations that dominate the work on large slits and
    time series; work that is mostly Python (fits of many small slits) goes
    to `process_map` instead. Log records from the threads reach the same
    handlers as the caller's. An exception raised by ``func`` is raised here
    when its result is reached, after the work already started has finished.
    Python's warning filters are process-wide and ``warnings.catch_warnings``
    is not thread safe, so they are restored when the map ends.
    """
    items = list(items)
    workers = max(1, min(int(workers), len(items)))
    if workers == 1:
        yield from map(func, items)
        return
    with warnings.catch_warnings(), ThreadPoolExecutor(workers, thread_name_prefix="optx") as pool:
        yield from pool.map(func, items)


def processes_allowed() -> bool:
    """False inside a daemonic process (a Dask or multiprocessing worker), which may not start processes."""
    return not multiprocessing.current_process().daemon


_IDLE_SECONDS = 300
"""Worker processes wait this long for more work: the steps of a pipeline reuse them, imports and all."""

_ONE_THREAD_EACH = {name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
"""As many workers as cores were asked for: their numerical libraries must not start threads of their own."""


def _executor(workers: int):
    """joblib's reusable loky executor of ``workers`` processes (the same one for every call with that number)."""
    from joblib.externals.loky import get_reusable_executor

    return get_reusable_executor(max_workers=int(workers), timeout=_IDLE_SECONDS, env=_ONE_THREAD_EACH)


def warm_workers(workers: int) -> None:
    """Start the ``workers`` worker processes of `process_map` now, each importing the fits, without waiting.

    A fresh worker spends seconds importing numpy, scipy and the package before
    its first slit: started before the input is opened, they import while it
    is read, and the first step that uses them (the trace fit) gains from
    them as the later ones do. Nothing is done for one worker, or where no
    processes may be started.
    """
    if workers <= 1 or not processes_allowed():
        return
    executor = _executor(workers)
    for _ in range(int(workers)):
        executor.submit(_import_fits)


def _import_fits() -> None:
    """What a worker needs before its first slit (run in the worker)."""
    import_module(f"{_PACKAGE}.drivers.fit")
    import_module(f"{_PACKAGE}.drivers.extract")


def process_map(func: Callable[[Any], Any], items: Iterable[Any], workers: int) -> Iterator[Any]:
    """``map(func, items)`` in ``workers`` processes, results in the order of ``items``.

    For work that holds the GIL (the Python-level fits of many small slits),
    on joblib's reusable loky executor: its workers are fresh interpreters
    (no fork of this process and its threads) that do not run the caller's
    ``__main__`` again, so scripts need no ``if __name__ == "__main__"``
    guard. ``func`` and the items are pickled to them, each item as soon as
    ``items`` yields it, and the results back. The records that this
    package's loggers emit in a worker, at this process's level, are handled
    here, with the item's result, by this process's handlers: the log reads
    as a serial run's.
    """
    if workers <= 1:
        yield from map(func, items)
        return
    executor = _executor(workers)
    level = logging.getLogger(_PACKAGE).getEffectiveLevel()
    for value, records in executor.map(functools.partial(_logged, func, level), items):
        for record in records:
            logging.getLogger(record.name).handle(record)
        yield value


_PACKAGE = __name__.split(".")[0]


class _Collect(logging.Handler):
    """Keeps the records it is given, made picklable."""

    def __init__(self):
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        record.msg, record.args, record.exc_info, record.exc_text = self.format(record), None, None, None
        self.records.append(record)


def _logged(func: Callable[[Any], Any], level: int, item: Any) -> tuple[Any, list[logging.LogRecord]]:
    """``func(item)`` and the records this package logged meanwhile, from ``level`` up (in a worker process)."""
    package = logging.getLogger(_PACKAGE)
    collect, before = _Collect(), (package.level, package.propagate)
    collect.setFormatter(logging.Formatter("%(message)s"))
    package.addHandler(collect)
    package.setLevel(level)
    package.propagate = False
    try:
        return func(item), collect.records
    finally:
        package.removeHandler(collect)
        package.setLevel(before[0])
        package.propagate = before[1]


def _slit_error(exc: Exception, name: str, filename: str | None) -> SlitError:
    """``exc`` as a SlitError that names the file (wrapping errors that are not the package's)."""
    if isinstance(exc, SlitError):
        return exc.in_file(filename)
    return SlitError(name, f"failed unexpectedly ({type(exc).__name__}: {exc}); please report this with "
                     "the input file", filename)
