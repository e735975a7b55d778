"""OptimalExtractStep: optimal (Horne 1986) or box extraction to an x1d product."""

from __future__ import annotations

import logging

from astropy.table import vstack
from stdatamodels.jwst import datamodels

from ..drivers import extract
from ..drivers.parameters import ExtractionParameters
from ..io.products import ProfileModel, TraceModel
from .base import (
    OptxStep,
    log_summary,
    open_model,
    open_product,
    worker_count,
)
from .spec import RegistrySpec

__all__ = ["OptimalExtractStep"]

log = logging.getLogger(__name__)

class OptimalExtractStep(OptxStep):
    """Extract 1D spectra from 2D/3D JWST spectroscopic products.

    Input: a ``SlitModel`` (2D, or 3D for integrations), ``MultiSlitModel``,
    ``ImageModel`` or ``CubeModel`` from calwebb_spec2 (``_cal``, ``_calints``
    or ``_s2d``). Output: a ``MultiSpecModel`` (suffix ``x1d``) with one
    spectrum per slit, or a ``TSOMultiSpecModel`` (``x1dints``) for
    integrations, with the columns and units of jwst ``extract_1d``.
    """

    class_alias = "optx_extract"

    spec = RegistrySpec("""
    extraction_type = option("optimal", "box", default="optimal")  # optimal (Horne 1986) or box (sum over an aperture, as jwst extract_1d)
    extract_width = float(default=None)  # box: full width in pixels of an aperture centred on the fitted trace (default from the optxextract reference)
    ystart = float(default=None)  # box: inclusive lower cross-dispersion limit (0-based) as in a jwst EXTRACT1D reference, for dispersion along x; lower dispersion limit for dispersion along y
    ystop = float(default=None)  # box: inclusive upper limit, same meaning as ystart
    xstart = float(default=None)  # inclusive lower dispersion limit (0-based) for dispersion along x; lower cross-dispersion limit for dispersion along y
    xstop = float(default=None)  # inclusive upper limit, same meaning as xstart
    fill_flagged = boolean(default=False)  # box: replace flagged pixels in the aperture by the profile model instead of dropping them
    reject_sigma = float(default=None)  # optimal: reject the worst pixel of a column while it is further than this many sigma from the model; 0 disables (default from reference)
    max_reject_iterations = integer(default=10, min=0)  # optimal: at most this many rejected pixels per column
    min_coverage = float(default=None)  # optimal: columns whose good pixels hold less than this fraction of the profile get NaN and DO_NOT_USE (default from reference)
    psf_sigma = float(default=None)  # starting Gaussian sigma of the profile in pixels (default from reference)
    trace_degree = integer(default=None)  # Legendre degree of the trace centre along the dispersion (default from reference)
    width_degree = integer(default=None)  # Legendre degree of the profile width along the dispersion (default from reference)
    profile_kind = option({profile_kinds}, default="gaussian")  # profile fitted when no psf is given (see PsfFitStep)
    template = string(default=None)  # profile template file for profile_kind template (see PsfFitStep)
    shared_psf = boolean(default=False)  # profile_kind auto, several slits, no psf given: the exposure's sources share one PSF (point sources); its bright slits (median S/N per column >= 10) are fitted first and their Moffat index holds the fainter ones' (see docs/psf_prior.rst); on a population of differing sources it costs accuracy
    scene_background = option("none", "smooth", "column", default="none")  # background fitted together with the source (the scene model), for data that still hold theirs: smooth (polynomial across the slit times a spline along it), column (a polynomial in every column), none (the data are background-subtracted); optx_spec sets smooth
    scene_degree = integer(default=2, min=0)  # scene model: polynomial degree of the background across the slit (2: a background with curvature across the slit, which a line leaves in the source)
    scene_knot_spacing = float(default=32.0, min=2)  # scene model, smooth: columns between the background's spline knots along the dispersion
    trace = string(default=None)  # a TraceModel (optx_trace product) to use instead of fitting the trace
    psf = string(default=None)  # a ProfileModel (optx_psf product) to use instead of fitting the profile
    save_scene_model = boolean(default=False)  # also save the model of the data the extraction implies (suffix scene)
    save_residual_image = boolean(default=False)  # also save data minus that model (suffix residual)
    chunk_pixels = integer(default=524288, min=1)  # integrations are extracted in chunks of about this many pixels
    maximum_cores = string(default="none")  # cores to use: none, quarter, half, all or a number (worker processes over the slits of a MultiSlitModel, else threads over groups of integrations); the result does not depend on it
    save_white_light = boolean(default=False)  # for integrations, also save the white-light curve (flux summed over the good wavelengths) as an ECSV table (suffix whitelight)
    """)  # noqa: E501

    reference_file_types = ["optxextract", "optxpsf"]

    def default_suffix(self):
        return "x1d"

    def process(self, input_data, trace=None, psf=None):
        """Extract every slit of the input.

        Parameters
        ----------
        input_data : str or DataModel
            File name or model of a supported type.
        trace, psf : TraceModel, ProfileModel or str, optional
            Products (or their files) to use instead of fitting; they override
            the ``trace`` and ``psf`` parameters. A pipeline passes them here.

        Returns
        -------
        MultiSpecModel or TSOMultiSpecModel
        """
        model = open_model(input_data)
        traces = open_product(trace if trace is not None else self.trace, TraceModel)
        profiles = open_product(psf if psf is not None else self.psf, ProfileModel)
        try:
            params = self._parameters(model)
            output, summary = extract.run(model, params, traces, profiles, workers=worker_count(self.maximum_cores))
        finally:
            if model is not input_data:
                model.close()
        if self.suffix in ("x1d", "x1dints"):  # the defaults, not a user's choice
            self.suffix = "x1dints" if isinstance(output, datamodels.TSOMultiSpecModel) else "x1d"
        output.meta.cal_step.optx_extract = "COMPLETE"
        output.meta.cal_step.extract_1d = "COMPLETE"
        log_summary(summary.run, "Extracted")
        if self.save_scene_model:
            self.save_model(summary.scene, suffix="scene", force=True)
        if self.save_residual_image:
            self.save_model(summary.residual, suffix="residual", force=True)
        if self.save_white_light:
            self._save_white_light(summary.white_light)
        return output

    def _save_white_light(self, curves: list) -> None:
        """One ECSV table for all slits (a ``slit`` column tells them apart), named after the output."""
        if not curves:
            log.warning("save_white_light: the input has no integrations; no white-light curve to save")
            return
        for curve in curves:
            curve.add_column(curve.meta["slit"], name="slit", index=0)
        table = vstack(curves, metadata_conflicts="silent")
        table.meta = {"slits": {curve.meta["slit"]: dict(curve.meta) for curve in curves}}
        path = self.make_output_path(suffix="whitelight", ext="ecsv")
        table.write(path, format="ascii.ecsv", overwrite=True)
        log.info("Saved the white-light curve in %s", path)

    def _parameters(self, model) -> ExtractionParameters:
        params = ExtractionParameters.from_step(self, model,
                                                keep_scene=self.save_scene_model or self.save_residual_image)
        log.info("Extraction parameters for %s: %s", model.meta.exposure.type, params)
        return params
