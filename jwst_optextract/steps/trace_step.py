"""TraceStep: the trace of every slit (and its per-integration shifts), as a TraceModel product."""

from __future__ import annotations

import logging

from ..drivers import trace
from ..drivers.parameters import FitParameters
from .base import (
    OptxStep,
    PlottingMixin,
    log_summary,
    open_model,
    start_workers,
    worker_count,
)

__all__ = ["TraceStep"]

log = logging.getLogger(__name__)

class TraceStep(PlottingMixin, OptxStep):
    """Fit the trace centre of every slit of a 2D/3D spectroscopic product.

    The centre and a Gaussian width, both Legendre polynomials along the
    dispersion, are fitted jointly to all good pixels, starting from the WCS
    source position where there is one (else the brightest cross-dispersion
    peak). With ``trace_model="spline"`` the shape of the trace is a smoothing
    spline of binned centroids (the fit adds a constant offset); with
    ``deconvolve_iterations`` the centroids are taken on Richardson-Lucy
    deconvolved columns and the centre is held there. For integrations, one shared trace plus a per-integration shift
    (jitter) is fitted, vectorised over integrations. Negative traces of
    nod-subtracted data are located. A slit with no detectable source gets the
    WCS (or brightest-row) position, a warning, and ``detected = False``.

    Returns a `~jwst_optextract.io.products.TraceModel` (suffix ``trace``, ASDF).
    """

    class_alias = "optx_trace"

    spec = """
    trace_degree = integer(default=None, min=0)  # Legendre degree of the trace along the dispersion (default from the optxextract reference)
    width_degree = integer(default=None, min=0)  # Legendre degree of the Gaussian width fitted with it (default from reference)
    psf_sigma = float(default=None)  # starting Gaussian sigma in pixels (default from reference)
    fit_jitter = boolean(default=True)  # for integrations, fit a cross-dispersion shift per integration
    trace_model = option("polynomial", "spline", default="polynomial")  # smooth model of the centroids along the dispersion: polynomial (about the WCS trace where there is one), or a smoothing spline whose shape replaces the WCS one
    deconvolve_iterations = integer(default=0, min=0)  # Richardson-Lucy iterations before centring (0: none); the centre is then held at the deconvolved centroids (for blended neighbours or wide wings)
    detection_snr = float(default=5.0)  # a source is detected when its extracted flux has at least this total signal to noise
    reject_sigma = float(default=None)  # outlier threshold in sigma above the model (default from reference)
    scene_background = option("none", "smooth", "column", default="none")  # background fitted together with the source (the scene model), for data that still hold theirs: smooth (polynomial across the slit times a spline along it), column (a polynomial in every column), none (the data are background-subtracted); optx_spec sets smooth
    scene_degree = integer(default=2, min=0)  # scene model: polynomial degree of the background across the slit (2: a background with curvature across the slit, which a line leaves in the source)
    scene_knot_spacing = float(default=32.0, min=2)  # scene model, smooth: columns between the background's spline knots along the dispersion
    save_plots = boolean(default=False)  # write a diagnostic PNG per slit (needs matplotlib)
    maximum_cores = string(default="none")  # cores to use: none, quarter, half, all or a number (worker processes over the slits); the result does not depend on it
    output_ext = string(default=".asdf")  # the trace product is an ASDF file
    """  # noqa: E501

    reference_file_types = ["optxextract", "optxpsf"]

    def default_suffix(self):
        return "trace"

    def process(self, input_data):
        """Fit the traces of every slit of the input; returns a TraceModel."""
        start_workers(input_data, self.maximum_cores)
        model = open_model(input_data)
        try:
            params = self.fit_parameters(model)
            product, run = trace.run(model, params, workers=worker_count(self.maximum_cores),
                                     plot=self.save_plot if self.save_plots else None)
        finally:
            if model is not input_data:
                model.close()
        log_summary(run, "Traced")
        product.meta.cal_step.optx_trace = "COMPLETE"
        return product

    def fit_parameters(self, model) -> FitParameters:
        """Step parameters, with the reference defaults for the exposure type where not given."""
        return FitParameters.from_step(self, model)
