"""PsfFitStep's driver: the cross-dispersion profile of every slit of one input, as a ProfileModel product."""

from __future__ import annotations

import functools
from collections.abc import Callable

from ..exceptions import SlitError
from ..core.fitted import TraceFit
from ..io.slits import describe_model, slit_count
from ..io.products import ProfileModel, TraceModel, new_profile_model, profile_entry, trace_from_entry
from .fit import Deferred, bright_first, fit_profile, fit_slit_profile
from .parameters import FitParameters
from .runner import SlitRun, process_slits

__all__ = ["fit_profile", "given_trace", "run"]


def run(model, params: FitParameters, traces: TraceModel | None = None, workers: int = 1,
        plot: Callable[..., None] | None = None) -> tuple[ProfileModel, SlitRun]:
    """Fit the profile of every slit of ``model`` (see `~jwst_optextract.drivers.fit.fit_profile`).

    About the slit's trace in ``traces`` when given, else about a trace
    fitted here. The slits are fitted in ``workers`` worker processes (see
    `~jwst_optextract.drivers.runner.process_slits`); a slit that cannot be
    fitted is skipped with a warning. ``plot(slit, trace, profile)``, if
    given, is called for every fitted slit, in slit order.

    With ``params.shared_psf``, ``auto`` and several slits (an exposure of
    point sources, which share the PSF), the bright slits are fitted first,
    the Moffat index's prior is learnt from them
    (`~jwst_optextract.core.psf_prior.exposure_prior`), and the faint ones
    are fitted with it.

    Returns
    -------
    product : ProfileModel
        One entry per fitted slit, with the primary metadata of ``model``.
    run : SlitRun
        The slits fitted (name and entry) and those skipped, and why.
    """
    product = new_profile_model(model)

    def finish(slit, fits) -> tuple[dict, float | None] | Deferred:
        trace, profile = fits
        if profile is None:  # fitted in the second pass
            return Deferred(trace)
        if plot is not None:
            plot(slit, trace, profile)
        return profile_entry(slit, profile), profile.exposure_inverse_beta

    def fit_all(fit_params: FitParameters, defer_below: float | None, deferred=None) -> SlitRun:
        def trace_of(slit):
            return (given_trace(slit, traces) if deferred is None else deferred[slit.name].trace,)

        return process_slits(model, functools.partial(fit_slit_profile, params=fit_params, defer_below=defer_below),
                             workers=workers, processes=True, prepare=trace_of, finish=finish, only=deferred)

    learn = params.shared_psf and params.profile_kind == "auto" and slit_count(model) > 1
    slits = bright_first(fit_all, params, learn, evidence=lambda value: value[1], described=describe_model(model))
    for _, (entry, _) in slits.done:
        product.profiles.append(entry)
    slits.done = [(name, entry) for name, (entry, _) in slits.done]
    return product, slits


def given_trace(slit, traces: TraceModel | None) -> TraceFit | None:
    """The slit's trace from the given TraceModel, or None to fit it."""
    if traces is None:
        return None
    entry = traces.trace_for(slit.name)
    if entry is None:
        raise SlitError(slit.name, "the given TraceModel has no entry for this slit; give the trace "
                        "product of this exposure, or none to fit the trace")
    return trace_from_entry(entry, slit)
