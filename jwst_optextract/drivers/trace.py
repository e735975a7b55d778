"""TraceStep's driver: the trace of every slit of one input, as a TraceModel product."""

from __future__ import annotations

import functools
from collections.abc import Callable

from ..core.fitted import TraceFit
from ..io.products import TraceModel, new_trace_model, trace_entry
from .fit import fit_trace
from .parameters import FitParameters
from .runner import SlitRun, process_slits

__all__ = ["fit_trace", "run"]


def run(model, params: FitParameters, workers: int = 1,
        plot: Callable[..., None] | None = None) -> tuple[TraceModel, SlitRun]:
    """Fit the trace of every slit of ``model`` (see `~jwst_optextract.drivers.fit.fit_trace`).

    The slits are fitted in ``workers`` worker processes (see
    `~jwst_optextract.drivers.runner.process_slits`); a slit that cannot be
    traced is skipped with a warning. ``plot(slit, trace)``, if given, is
    called for every traced slit, in slit order.

    Returns
    -------
    product : TraceModel
        One entry per traced slit, with the primary metadata of ``model``.
    run : SlitRun
        The slits traced (name and entry) and those skipped, and why.
    """
    product = new_trace_model(model)

    def finish(slit, trace: TraceFit) -> dict:
        if plot is not None:
            plot(slit, trace)
        return trace_entry(slit, trace)

    slits = process_slits(model, functools.partial(fit_trace, params=params), workers=workers, processes=True,
                          finish=finish)
    for _, entry in slits.done:
        product.traces.append(entry)
    return product, slits
