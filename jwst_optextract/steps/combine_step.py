"""SlitCombineStep: every exposure of a source combined into one optimal spectrum (one x1d per source)."""

from __future__ import annotations

import logging
import os

from ..drivers import combine
from ..drivers.combine import CombineParameters
from ..exceptions import InputError
from ..io.sources import read_program, rectified_product
from .base import OptxStep, log_summary, worker_count

__all__ = ["SlitCombineStep"]

log = logging.getLogger(__name__)

class SlitCombineStep(OptxStep):
    """Combine the exposures and nods of every source into one optimally extracted spectrum.

    Input: a spec3-style association (JSON), or a list / ``ModelContainer``
    of ``_cal`` products (``MultiSlitModel`` or ``SlitModel``; NIRSpec MOS or
    fixed slit). Slits are grouped by MSA source id (else slit name) across
    the exposures, and by nod position within a source (shutter state, WCS
    source row, dither position, or the measured source row). For every
    source: detector defects repeated at the same place at different nod
    positions are flagged; the trace (one shape, an offset per exposure), the
    profile and the cosmic rays are found from the nod differences and each
    exposure minus a smooth background model; then (``background=auto``)
    each exposure's background is fitted with its source and the exposures'
    fluxes averaged, or, where those fits disagree, the flux of every column
    is the weighted least-squares fit of the profile to the nod differences
    of all exposures at once, with errors propagated exactly through the
    differences. No resampling enters the spectrum.

    Output: one ``MultiSpecModel`` per source (``<product>_s<source_id>_x1d.fits``),
    with the columns and units of jwst ``extract_1d``.
    """

    class_alias = "optx_combine"

    spec = """
    background = option("auto", "scene", "nod", "model", "none", default="auto")  # auto: scene where the exposures' fluxes then agree (max_disagreement), else nod; scene: each exposure's background fitted with its source (the scene model; the profile learnt from nod differences); nod: each exposure minus the mean of the exposures at the other nod positions; model: a smooth background model per exposure subtracted first (optx_background smooth); none: already subtracted
    max_disagreement = float(default=5.0, min=0)  # background=auto: the largest chi-square per degree of freedom between the exposures' scene-model fluxes (blocks of 16 columns) at which their background fits are trusted; beyond it (a background that no smooth polynomial across the slit describes) nod differences are used
    weight_type = option("ivm", "poisson", "exptime", "mask", default="ivm")  # pixel weights: ivm = inverse of read noise plus a smooth Poisson model (signal-independent, optimal; the only one of background=scene, and auto's other weights mean nod); poisson = inverse of the data-derived variances; exptime = exposure time; mask = equal
    reject_sigma = float(default=None)  # reject the worst pixel of a column of an exposure while it lies further than this many sigma above the profile model (cosmic rays); 0 disables (default from the optxextract reference)
    repeat_sigma = float(default=5.0, min=0)  # flag detector pixels sharper than this many sigma along the dispersion in exposures at two or more nod positions (hot and cold pixels); 0 disables
    outside_factor = float(default=1.0, min=0)  # flag pixels away from the trace brighter than this times the trace's peak in their column (and 5 sigma); 0 disables
    clip_percentiles = float_list(min=2, max=2, default=None)  # also flag residuals (in sigma) below and above these percentiles, e.g. 0.1, 99.9
    dilate_failed_open = integer(default=0, min=0)  # mask pixels flagged MSA_FAILED_OPEN grown by this many pixels (0: leave them)
    min_coverage = float(default=None)  # columns whose good pixels hold less than this fraction of the profile get NaN and DO_NOT_USE (default from reference)
    psf_sigma = float(default=None)  # starting Gaussian sigma of the profile in pixels (default from reference)
    profile_kind = option("auto", "gaussian", "moffat", "pair", "spline", default="auto")  # the profile shared by all exposures, in the source and its negative nod images: auto = the best by Akaike's criterion of the Gaussian, the Moffat (winged sources), the pair (two blended point sources) and, from a median S/N of 3 per column, an empirical spline (resolved sources); spline = always the spline (with Moffat wings where the Moffat beats the Gaussian)
    trace_degree = integer(default=None, min=0)  # Legendre degree of the trace when the WCS gives none (default from reference)
    width_degree = integer(default=None, min=0)  # Legendre degree of the profile width along the dispersion (default from reference)
    maximum_cores = string(default="none")  # cores to use: none, quarter, half, all or a number (threads over the sources); the result does not depend on it
    save_rectified = boolean(default=False)  # also save, for display only, the exposures resampled about their traces and averaged (suffix rect; the spectrum never comes from it)
    save_pixel_table = boolean(default=False)  # also write each source's pixel table (every pixel of every exposure with its offset from the trace, data, variance, profile and weight), suffix pixels, FITS
    """  # noqa: E501

    reference_file_types = ["optxextract", "optxpsf"]

    def default_suffix(self):
        return "x1d"

    def process(self, *inputs):
        """Combine every source of the input.

        Parameters
        ----------
        *inputs : str, list, ModelContainer or DataModel
            An association file, the exposures (files or models) as one list
            or container, or each as its own argument (``strun optx_combine a.fits b.fits``).

        Returns
        -------
        list of MultiSpecModel
            One per source, named ``<product>_s<source_id>`` (``meta.filename``).
        """
        program = read_program(inputs[0] if len(inputs) == 1 else list(inputs))
        try:
            params = self._parameters(program.exposures[0])
            outputs, run = combine.run(program.exposures, params, program.product_name,
                                       workers=worker_count(self.maximum_cores), finish=self._save_extras)
        finally:
            for model in program.opened:
                model.close()
        for output in outputs:
            output.meta.cal_step.optx_combine = "COMPLETE"
            output.meta.cal_step.extract_1d = "COMPLETE"
        log_summary(run, "Combined")
        if not outputs:
            reasons = "; ".join(f"{key}: {why}" for key, why in run.skipped.items())
            raise InputError(f"no source could be combined ({reasons})")
        self.output_use_model = True  # each product is named after its source
        return outputs

    def _save_extras(self, group, result, output) -> None:
        """With ``save_pixel_table`` and ``save_rectified``: what is saved beside one source's product."""
        if self.save_pixel_table:
            self._save_table(result.pixels, output.meta.filename.replace("_x1d.fits", "_pixels.fits"))
        if self.save_rectified:
            image = rectified_product(group, *result.rectified, result.spectrum.wavelength)
            self.save_model(image, suffix="rect", output_file=output.meta.filename.replace("_x1d.fits", ".fits"),
                            force=True)

    def _save_table(self, table, filename: str) -> None:
        path = os.path.join(self.output_dir or "", filename)
        table.write(path, format="fits", overwrite=True)
        log.info("Saved the pixel table in %s", path)

    def _parameters(self, model) -> CombineParameters:
        params = CombineParameters.from_step(self, model, keep_rectified=self.save_rectified)
        log.info("Combination parameters: %s", params)
        return params

