"""BackgroundStep: background subtraction of 2D/3D spectra, several methods, honest variances."""

from __future__ import annotations

import logging

from ..drivers import background as driver
from ..drivers.parameters import BackgroundParameters
from ..io.dq import dq_bits
from .base import OptxStep, PlottingMixin, open_model, worker_count
from .spec import RegistrySpec

__all__ = ["BackgroundStep"]

log = logging.getLogger(__name__)


class BackgroundStep(PlottingMixin, OptxStep):
    """Subtract the background from 2D/3D JWST spectroscopic products.

    Input: a ``SlitModel`` (2D, or 3D for integrations), ``MultiSlitModel``,
    ``ImageModel`` or ``CubeModel`` from calwebb_spec2. Output: the same type,
    background subtracted (suffix ``bsub``), with the variance of the
    background estimate added to VAR_POISSON, VAR_RNOISE and VAR_FLAT so that
    the extracted errors stay honest; with ``save_background`` the background
    model itself is saved with suffix ``bkg``.

    Methods (``method``):

    - ``smooth`` (default): polynomial across the slit x cubic B-spline along
      the dispersion, fitted to all background pixels at once; the background
      under the source is predicted from many columns, adding almost no noise.
      For backgrounds smooth on the scale of ``knot_spacing`` columns.
    - ``poly``: a polynomial across the slit in each column (jwst
      ``extract_1d``'s background); for backgrounds with fine structure along
      the dispersion.
    - ``poly_rows``: a polynomial along the dispersion in each row,
      interpolated across the source rows; for backgrounds flat across the slit.
    - ``column``: per-column median (or clipped mean) of the background rows;
      simplest, for flat backgrounds.
    - ``image2d``: photutils ``Background2D``; for large frames with a sparse
      source (slitless, wide slits).
    - ``exposures``: median of dedicated background exposures (``background``).
    - ``nod``: minus the mean of the same slit's other nod exposures
      (``background``); the negative traces are left for the extraction.

    The fitted methods keep the source out of the background fit. The source
    is found in the data (the trace fit of ``optx_trace``, which the WCS
    position seeds but does not decide), its profile fitted with the
    background (the ``auto`` choice of ``optx_psf`` among Gaussian, Moffat and
    spline), and the pixels where that profile exceeds ``source_threshold``
    of its peak are masked; the profile's light beyond the mask (a Moffat's
    wings) is fitted and taken out of the background pixels before the fit.
    ``source_half_width`` or ``source_ystart``/``source_ystop`` give the mask
    instead (and nothing beyond it is modelled). A slit with too few rows
    left for the background is skipped with a warning.
    """

    class_alias = "optx_background"

    spec = RegistrySpec("""
    method = option({background_methods}, default="smooth")  # {background_help}
    background = force_list(default=None)  # exposures/nod: background exposure files, other-nod files, or an association (JSON) whose 'background' members are used
    source_threshold = float(default=0.05, min=0.0001, max=1)  # the source mask is sized from the profile fitted to the source found in the data (Gaussian, Moffat or spline, by Akaike's criterion): pixels where the profile exceeds this fraction of its peak in the column are kept out of the background fit, and the profile's light beyond them is fitted and removed from the background pixels
    source_half_width = float(default=None, min=0)  # if given, instead: the rows within this distance of the source trace (fitted in the data) are kept out of the background fit, and no source light beyond them is modelled
    source_ystart = float(default=None)  # inclusive first cross-dispersion row (0-based, input pixels) of the source region, instead of the trace; defaults to the first row if only source_ystop is given
    source_ystop = float(default=None)  # inclusive last cross-dispersion row of the source region
    poly_degree = integer(default=2, min=0)  # smooth/poly: polynomial degree across the slit; poly_rows: along the dispersion
    knot_spacing = float(default=32.0, min=2)  # smooth: columns between B-spline knots along the dispersion
    column_statistic = option("median", "mean", default="median")  # column: median, or sigma-clipped inverse-variance weighted mean
    clip_sigma = float(default=3.0)  # smooth/poly/poly_rows/column mean/image2d: reject pixels further than this many sigma from the model, iteratively; 0 disables
    max_clip_iterations = integer(default=5, min=0)  # at most this many clipping iterations
    box_size = int_list(min=2, max=2, default=None)  # image2d: box (rows, columns); default (8, 64)
    filter_size = int_list(min=2, max=2, default=None)  # image2d: median filter over boxes (rows, columns); default (1, 3)
    dq_flags = string(default="DO_NOT_USE")  # DQ flags (comma-separated names) that exclude a pixel from the background
    hot_pixel_sigma = float(default=None)  # if set, also exclude pixels this many robust sigma above their neighbours along the dispersion
    mask_cosmic_rays = boolean(default=False)  # also exclude cosmic rays found by astroscrappy (must be installed)
    save_background = boolean(default=False)  # save the background model (suffix bkg)
    save_plots = boolean(default=False)  # write a PNG per slit (<output>_<slit>_bsub_scene.png; needs matplotlib): data with the source mask outlined, the source light modelled beyond the mask, the background model and the residual in sigma, against wavelength
    maximum_cores = string(default="none")  # cores to use: none, quarter, half, all or a number (threads over the slits); the result does not depend on it
    """)  # noqa: E501

    def default_suffix(self):
        return "bsub"

    def process(self, input_data, in_place=False):
        """Subtract the background from every slit of the input.

        Parameters
        ----------
        input_data : str or DataModel
            File name or model of a supported type.
        in_place : bool
            Subtract from ``input_data`` itself (a model nobody else uses, as
            a pipeline passes it) instead of a copy. A file the step opens is
            always done in place: the copy would double the memory.

        Returns
        -------
        DataModel
            Background-subtracted model, same type as the input.
        """
        model = open_model(input_data)
        owned = model is not input_data
        try:
            params = self._parameters()
            result, summary = driver.run(model, params, self.background, keep_background=self.save_background,
                                         workers=worker_count(self.maximum_cores), in_place=owned or bool(in_place),
                                         plot=self._plot if self.save_plots else None)
        except BaseException:
            if owned:
                model.close()
            raise
        result.meta.cal_step.optx_background = "COMPLETE"
        background = summary.background
        if background is not None:
            background.meta.cal_step.optx_background = "COMPLETE"
            self.save_model(background, suffix="bkg", force=True)
            background.close()
        return result

    def _plot(self, slit, parts, source_mask) -> None:
        self.save_scene_plot(slit, parts, source_mask=source_mask,
                             background_label=f"background model ({self.method})")

    def _parameters(self) -> BackgroundParameters:
        params = BackgroundParameters.from_step(self, dq_bits=dq_bits(self.dq_flags))
        log.info("Background parameters: %s", params)
        return params
