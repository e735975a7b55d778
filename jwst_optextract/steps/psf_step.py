"""PsfFitStep: the cross-dispersion profile of every slit, as a ProfileModel product."""

from __future__ import annotations

import logging

from ..drivers import psf
from ..drivers.parameters import FitParameters
from ..exceptions import InputError
from ..io.products import TraceModel, read_template
from .base import (
    OptxStep,
    PlottingMixin,
    log_summary,
    open_model,
    open_product,
    start_workers,
    worker_count,
)
from .spec import RegistrySpec

__all__ = ["PsfFitStep"]

log = logging.getLogger(__name__)

class PsfFitStep(PlottingMixin, OptxStep):
    """Fit the cross-dispersion profile ``P(offset from trace, wavelength)`` of every slit.

    Kinds (``profile_kind``):

    - ``spline``: a cubic B-spline in trace offset, knotted at ``1/oversample``
      pixel in the core (a tilted trace samples the offset at sub-pixel steps),
      fitted to the pixels of windows of ``window`` columns blended linearly;
    - ``spline2d``: the same, cubic along the dispersion too (tensor product);
    - ``gaussian``: a pixel-integrated Gaussian whose centre and width are
      polynomials along the dispersion;
    - ``moffat``: a pixel-integrated Moffat whose width ``alpha`` is a
      polynomial along the dispersion, with one fitted index ``beta``;
    - ``pair``: two blended point sources (a neighbour in the shutter, two
      clumps): two pixel-integrated Gaussians of one width law, a fixed
      separation and a flux share linear along the dispersion;
    - ``template``: a user-supplied PSF (``template``: monochromatic profiles
      on a wavelength x offset grid, see
      `~jwst_optextract.io.products.read_template`) interpolated to the
      wavelength of every column, integrated over its pixels about the trace
      and, with ``template_stretch``, stretched by a fitted factor;
    - ``auto``: of the Gaussian, the Moffat, the pair and the splines (and the
      template when one is given), the one with the lowest Akaike criterion
      (chi-square plus twice the parameters); below a median S/N of 3 per
      column no spline, below 1 the Gaussian only (and the template).

    Weights are signal-independent (read noise plus a smooth Poisson model),
    unflagged cosmic rays are rejected, and a second-difference penalty keeps
    the spline smooth where the data are noise. Uses the trace given with
    ``trace`` (a TraceModel file) or fits one.

    Returns a `~jwst_optextract.io.products.ProfileModel` (suffix ``psf``, ASDF).
    """

    class_alias = "optx_psf"

    spec = RegistrySpec("""
    profile_kind = option({profile_kinds}, default="auto")  # profile model (see the class documentation)
    kind = option({profile_kinds}, default=None)  # deprecated: use profile_kind (when given, it is used instead, with a warning)
    template = string(default=None)  # profile template file (FITS or ASDF: profile, offset, wavelength arrays) for profile_kind template; with auto it is one more candidate
    template_stretch = boolean(default=True)  # fit one factor per slit stretching the template's offsets
    shared_psf = boolean(default=False)  # auto, several slits: the exposure's sources share one PSF (point sources); its bright slits (median S/N per column >= 10) are fitted first and their Moffat index holds the fainter ones' (see docs/psf_prior.rst); on a population of differing sources it costs accuracy
    trace = string(default=None)  # a TraceModel (optx_trace product) to fit about; fitted when not given
    window = float(default=128.0, min=2)  # columns between spline knots along the dispersion
    oversample = float(default=4.0, min=1)  # spline knots per pixel in the profile core
    smoothing = float(default=30.0, min=0)  # weight of the spline's second-difference penalty (chi-square units)
    trace_degree = integer(default=None, min=0)  # Legendre degree of the trace (default from the optxextract reference)
    width_degree = integer(default=None, min=0)  # Legendre degree of the Gaussian width (default from reference)
    psf_sigma = float(default=None)  # starting Gaussian sigma in pixels (default from reference)
    reject_sigma = float(default=None)  # outlier threshold in sigma above the model (default from reference)
    scene_background = option("none", "smooth", "column", default="none")  # background fitted together with the source (the scene model), for data that still hold theirs: smooth (polynomial across the slit times a spline along it), column (a polynomial in every column), none (the data are background-subtracted); optx_spec sets smooth
    scene_degree = integer(default=2, min=0)  # scene model: polynomial degree of the background across the slit (2: a background with curvature across the slit, which a line leaves in the source)
    scene_knot_spacing = float(default=32.0, min=2)  # scene model, smooth: columns between the background's spline knots along the dispersion
    save_plots = boolean(default=False)  # write two diagnostic PNGs per slit (needs matplotlib): the trace and profile fit (<output>_<slit>_psf.png) and the scene model, part by part against wavelength: data, source with negative nod images, background, residual (<output>_<slit>_scene.png)
    maximum_cores = string(default="none")  # cores to use: none, quarter, half, all or a number (worker processes over the slits); the result does not depend on it
    output_ext = string(default=".asdf")  # the profile product is an ASDF file
    """)  # noqa: E501

    reference_file_types = ["optxextract", "optxpsf"]

    def default_suffix(self):
        return "psf"

    def process(self, input_data, trace=None):
        """Fit the profile of every slit; ``trace`` may be a TraceModel (or its file)."""
        start_workers(input_data, self.maximum_cores)
        model = open_model(input_data)
        traces = open_product(trace if trace is not None else self.trace, TraceModel)
        try:
            params = self.fit_parameters(model)
            product, run = psf.run(model, params, traces, workers=worker_count(self.maximum_cores),
                                   plot=self.save_plot if self.save_plots else None)
        finally:
            if model is not input_data:
                model.close()
        log_summary(run, "Fitted the profile of")
        product.meta.cal_step.optx_psf = "COMPLETE"
        return product

    def fit_parameters(self, model) -> FitParameters:
        """Step parameters, with the reference defaults for the exposure type where not given."""
        profile_kind = self._profile_kind()
        return FitParameters.from_step(self, model, fit_jitter=False, profile_kind=profile_kind,
                                       template=self._template(profile_kind))

    def _profile_kind(self) -> str:
        """``profile_kind``, or the deprecated ``kind`` when a user gives it (with a warning)."""
        if self.kind is None:
            return self.profile_kind
        log.warning("optx_psf: the parameter kind is deprecated and will be removed; use profile_kind "
                    "(kind=%s is used)", self.kind)
        return self.kind

    def _template(self, profile_kind: str):
        """The profile template, read once for all slits, or None."""
        if self.template is None:
            if profile_kind == "template":
                raise InputError("profile_kind 'template' needs a profile template file (parameter template)")
            return None
        return read_template(self.template)
