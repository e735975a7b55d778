"""PsfFitStep's driver: the cross-dispersion profile of every slit of one input, as a ProfileModel product."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import replace

from ..exceptions import InputError, SlitError
from ..core.fitted import TraceFit
from ..core.profiles.choice import EXPOSURE_MIN_SNR
from ..core.psf_prior import EXPOSURE_MIN_SOURCES, exposure_prior
from ..io.slits import describe_model, slit_count
from ..io.products import ProfileModel, TraceModel, new_profile_model, profile_entry, trace_from_entry
from .fit import fit_profile, fit_slit_profile
from .parameters import FitParameters
from .runner import SlitRun, process_slits

__all__ = ["fit_profile", "given_trace", "run"]

log = logging.getLogger(__name__)


def run(model, params: FitParameters, traces: TraceModel | None = None, workers: int = 1,
        plot: Callable[..., None] | None = None) -> tuple[ProfileModel, SlitRun]:
    """Fit the profile of every slit of ``model`` (see `~jwst_optextract.drivers.fit.fit_profile`).

    About the slit's trace in ``traces`` when given, else about a trace
    fitted here. The slits are fitted in ``workers`` worker processes (see
    `~jwst_optextract.drivers.runner.process_slits`); a slit that cannot be
    fitted is skipped with a warning. ``plot(slit, trace, profile)``, if
    given, is called for every fitted slit, in slit order.

    With ``auto`` and several slits, the exposure's point sources share the
    PSF: the bright slits are fitted first, the Moffat index's prior is learnt
    from them (`~jwst_optextract.core.psf_prior.exposure_prior`), and the
    faint ones are fitted with it.

    Returns
    -------
    product : ProfileModel
        One entry per fitted slit, with the primary metadata of ``model``.
    run : SlitRun
        The slits fitted (name and entry) and those skipped, and why.
    """
    product = new_profile_model(model)

    def finish(slit, fits) -> dict | None:
        trace, profile = fits
        if profile is None:  # deferred: fitted in the second pass
            return None
        if plot is not None:
            plot(slit, trace, profile)
        return profile_entry(slit, profile), profile.exposure_inverse_beta

    def fit_all(fit_params: FitParameters, defer_below: float | None, only=None) -> SlitRun:
        return process_slits(model, functools.partial(fit_slit_profile, params=fit_params, defer_below=defer_below),
                             workers=workers, processes=True, prepare=lambda slit: (given_trace(slit, traces),),
                             finish=finish, only=only)

    learn = params.profile_kind == "auto" and params.psf_prior is not None and slit_count(model) > 1
    slits = fit_all(params, EXPOSURE_MIN_SNR if learn else None)
    deferred = [name for name, value in slits.done if value is None]
    if deferred:
        evidence = [value[1] for _, value in slits.done if value is not None and value[1] is not None]
        prior = exposure_prior(params.psf_prior, evidence)
        if prior.sources:
            log.info("Moffat index of the exposure's point sources, from %d slits of median S/N per column >= %g: "
                     "beta %.2f (1/beta %.3f +- %.3f; the %s prior: 1/beta %.3f +- %.3f); the %d fainter slits "
                     "are fitted with it", prior.sources, EXPOSURE_MIN_SNR, prior.beta, prior.inverse_beta,
                     prior.inverse_beta_sd, params.psf_prior.source, params.psf_prior.inverse_beta,
                     params.psf_prior.inverse_beta_sd, len(deferred))
        else:
            log.info("%d slits of median S/N per column >= %g: too few to learn the exposure's Moffat index (at "
                     "least %d); the %d fainter slits are fitted with the %s prior", len(evidence), EXPOSURE_MIN_SNR,
                     EXPOSURE_MIN_SOURCES, len(deferred), params.psf_prior.source)
        faint = fit_all(replace(params, psf_prior=prior), None, only=set(deferred))
        later = dict(faint.done)
        slits.done = [(name, later[name] if value is None else value) for name, value in slits.done
                      if value is not None or name in later]
        slits.skipped.update(faint.skipped)
        if not slits.done:
            raise InputError(f"{describe_model(model)}: none of its {slits.total} slits could be fitted ("
                             + "; ".join(f"{name}: {why}" for name, why in slits.skipped.items()) + ")")
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
