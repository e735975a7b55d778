"""Every step's ``*Parameters`` dataclass, built from the step by one mechanism (`StepParameters.from_step`).

A parameter's default lives in two places only: the step's stpipe ``spec``
(what a user sees) and, for the parameters whose spec default is None, the
``optxextract`` reference, per exposure type (packaged in ``reference_files/``,
overridable with ``override_optxextract``). A dataclass field has the same
name as the step parameter it holds; its default agrees with the spec, or is
taken from the packaged reference's ``default`` section (`reference_default`),
so that code that builds the dataclass directly gets the same values as a step
(``tests/test_parameters.py`` checks that).

Every ``*Parameters`` of the package is here, one per step (`FitParameters`
serves TraceStep and PsfFitStep), so that a parameter is looked for in one
place; each driver takes its own.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Self

import numpy as np

from ..core.profiles import ProfileTemplate
from ..core.psf_prior import PsfPrior, psf_prior_for
from ..io.dq import DO_NOT_USE
from ..reference_files import exp_type_values, load_reference, packaged_defaults

__all__ = ["PSF_PRIOR_TYPE", "REFERENCE_TYPE", "BackgroundParameters", "CombineParameters", "ExtractionParameters",
           "FitParameters", "SceneParameters", "StepParameters", "exposure_psf_prior", "reference_default"]

REFERENCE_TYPE = "optxextract"
"""The reference type that holds the per-exposure-type defaults."""
PSF_PRIOR_TYPE = "optxpsf"
"""The reference type of the cross-dispersion PSF prior (`~jwst_optextract.core.psf_prior`)."""


def exposure_psf_prior(path: str, model) -> PsfPrior:
    """The PSF prior of ``model``'s instrument and disperser from the ``optxpsf`` reference at ``path``."""
    instrument = getattr(getattr(model, "meta", None), "instrument", None)
    return psf_prior_for(load_reference(path), *(getattr(instrument, key, None) for key in ("name", "grating",
                                                                                            "filter")))

_PACKAGED_DEFAULTS = packaged_defaults(REFERENCE_TYPE)


def reference_default(name: str) -> Any:
    """The packaged reference's default of parameter ``name`` (for a dataclass field default)."""
    return _PACKAGED_DEFAULTS[name]


class StepParameters:
    """Base of the ``*Parameters`` dataclasses: `from_step` builds one from a step's parameters."""

    reference_type: ClassVar[str] = REFERENCE_TYPE

    @classmethod
    def from_step(cls, step, model=None, **derived: Any) -> Self:
        """The parameters of ``step`` for ``model``.

        Every field that is a parameter of the step takes the step's value;
        where that is None, the value of the step's ``optxextract`` reference
        for the model's exposure type (when the step has that reference type
        and a model is given); where the reference has none either, the
        field's default.

        Parameters
        ----------
        step : stpipe.Step
            The step (its parameters are its attributes).
        model : DataModel, optional
            The input, for its exposure type (``meta.exposure.type``).
        **derived
            Values of fields the step computes from its parameters or input
            (e.g. a DQ bit mask from flag names); they are not read from the step.
        """
        names = {field.name for field in dataclasses.fields(cls)} - set(derived)
        values = {name: getattr(step, name) for name in names & set(type(step).load_spec_file())}
        references = getattr(step, "reference_file_types", ())
        if model is not None and cls.reference_type in references:
            reference = exp_type_values(load_reference(step.get_reference_file(model, cls.reference_type)),
                                        model.meta.exposure.type)
            values.update({name: reference[name] for name, value in values.items()
                           if value is None and reference.get(name) is not None})
        if model is not None and "psf_prior" in names and PSF_PRIOR_TYPE in references:
            values["psf_prior"] = exposure_psf_prior(step.get_reference_file(model, PSF_PRIOR_TYPE), model)
        return cls(**{name: value for name, value in values.items() if value is not None}, **derived)


@dataclasses.dataclass
class SceneParameters:
    """The scene model's background parameters (``scene_*``), shared by the fits and the extraction."""

    scene_background: str = "none"
    """``smooth``, ``column`` or ``none`` (`~jwst_optextract.core.scene.SCENE_BACKGROUNDS`)."""
    scene_degree: int = 2
    scene_knot_spacing: float = 32.0

    @property
    def background(self):
        """These settings as one `~jwst_optextract.core.SceneBackground`."""
        from ..core import SceneBackground

        return SceneBackground(self.scene_background, self.scene_degree, self.scene_knot_spacing)

    def scene_values(self) -> dict:
        """The ``scene_*`` fields by name (to hand the same settings to another ``*Parameters``)."""
        return {field.name: getattr(self, field.name) for field in dataclasses.fields(SceneParameters)}


@dataclasses.dataclass
class FitParameters(SceneParameters, StepParameters):
    """What controls the trace and profile fits (see TraceStep and PsfFitStep).

    `~jwst_optextract.drivers.parameters.StepParameters.from_step` builds it from either step.
    """

    trace_degree: int = reference_default("trace_degree")
    wcs_offset_degree: int = 0
    width_degree: int = reference_default("width_degree")
    psf_sigma: float = reference_default("psf_sigma")
    fit_jitter: bool = True
    profile_kind: str = "auto"
    """A registered profile kind (`~jwst_optextract.core.profiles.PROFILES`), or ``auto`` to choose among them."""
    window: float = 128.0
    oversample: float = 4.0
    smoothing: float = 30.0
    reject_sigma: float | None = reference_default("reject_sigma")
    """Outlier threshold of the fits, in sigma; 0 or None: no rejection."""
    detection_snr: float = 5.0
    trace_model: str = "polynomial"
    deconvolve_iterations: int = 0
    template: str | ProfileTemplate | None = None
    """A profile template, or its file (see `~jwst_optextract.io.products.read_template`)."""
    template_stretch: bool = True
    psf_prior: PsfPrior | None = None
    """The instrument's cross-dispersion PSF prior (the step's ``optxpsf`` reference), or None for none."""
    shared_psf: bool = False
    """``auto`` on several slits: learn the Moffat index of the exposure's sources from its bright slits
    (`~jwst_optextract.drivers.fit.bright_first`)."""

    def __post_init__(self):
        self.reject_sigma = self.reject_sigma or None  # 0 disables the rejection


@dataclasses.dataclass
class ExtractionParameters(SceneParameters, StepParameters):
    """Everything that controls an extraction (see `OptimalExtractStep` for meanings).

    `~jwst_optextract.drivers.parameters.StepParameters.from_step` builds it from the
    step; ``keep_scene`` is derived (``save_scene_model`` or ``save_residual_image``).
    """

    extraction_type: str = "optimal"
    extract_width: float = reference_default("extract_width")
    ystart: float | None = None
    ystop: float | None = None
    xstart: float | None = None
    xstop: float | None = None
    fill_flagged: bool = False
    reject_sigma: float | None = reference_default("reject_sigma")
    """0 or None: no outlier rejection, in the extraction and in the trace and profile fits."""
    max_reject_iterations: int = 10
    min_coverage: float = reference_default("min_coverage")
    trace_degree: int = reference_default("trace_degree")
    width_degree: int = reference_default("width_degree")
    psf_sigma: float = reference_default("psf_sigma")
    profile_kind: str = "gaussian"
    template: str | None = None
    chunk_pixels: int = 1 << 19
    keep_scene: bool = False
    psf_prior: PsfPrior | None = None
    """The instrument's cross-dispersion PSF prior, for the profile fits (see `FitParameters`)."""
    shared_psf: bool = False
    """As `FitParameters.shared_psf`, when the profiles are fitted here."""

    def __post_init__(self):
        self.reject_sigma = self.reject_sigma or None  # 0 disables the rejection

    def fit_parameters(self) -> FitParameters:
        """The trace and profile fit settings these imply (the same outlier rejection, or none)."""
        return FitParameters(trace_degree=self.trace_degree, width_degree=self.width_degree,
                             psf_sigma=self.psf_sigma, profile_kind=self.profile_kind, template=self.template,
                             reject_sigma=self.reject_sigma, psf_prior=self.psf_prior, shared_psf=self.shared_psf,
                             **self.scene_values())


@dataclasses.dataclass
class BackgroundParameters(StepParameters):
    """Everything that controls a background subtraction (see `BackgroundStep` for meanings).

    `~jwst_optextract.drivers.parameters.StepParameters.from_step` builds it from the
    step; ``dq_bits`` is derived (from ``dq_flags``). ``clip_sigma`` 0 (or None)
    disables the clipping.
    """

    method: str = "smooth"
    source_threshold: float = 0.05
    """The source mask: pixels where the fitted profile exceeds this fraction of its peak in the column."""
    source_half_width: float | None = None
    """If given, the mask is the rows within it of the trace instead (and no source light is modelled)."""
    source_ystart: float | None = None
    source_ystop: float | None = None
    poly_degree: int = 2
    knot_spacing: float = 32.0
    column_statistic: str = "median"
    clip_sigma: float | None = 3.0
    max_clip_iterations: int = 5
    box_size: tuple[int, int] = (8, 64)
    filter_size: tuple[int, int] = (1, 3)
    dq_bits: int = DO_NOT_USE
    hot_pixel_sigma: float | None = None
    mask_cosmic_rays: bool = False
    trace: dict[str, np.ndarray] | None = None
    """Source centre row per column for slits by name (e.g. from a trace product)."""

    def __post_init__(self):
        self.clip_sigma = self.clip_sigma or None
        self.box_size, self.filter_size = tuple(self.box_size), tuple(self.filter_size)


@dataclasses.dataclass
class CombineParameters(StepParameters):
    """Everything that controls a combination (see `SlitCombineStep` for meanings).

    `~jwst_optextract.drivers.parameters.StepParameters.from_step` builds it from the
    step; ``keep_rectified`` is derived (``save_rectified``). 0 (or None)
    disables ``reject_sigma``, ``repeat_sigma`` and ``outside_factor``.
    """

    background: str = "auto"
    max_disagreement: float = 5.0
    """``background="auto"``: the exposures' scene-model fluxes may differ by up to this chi-square per degree of
    freedom (`~jwst_optextract.core.combine.exposure_disagreement`) before nod differences are used instead."""
    weight_type: str = "ivm"
    reject_sigma: float | None = reference_default("reject_sigma")
    repeat_sigma: float | None = 5.0
    outside_factor: float | None = 1.0
    clip_percentiles: tuple[float, float] | None = None
    dilate_failed_open: int = 0
    min_coverage: float = reference_default("min_coverage")
    trace_degree: int = reference_default("trace_degree")
    width_degree: int = reference_default("width_degree")
    psf_sigma: float = reference_default("psf_sigma")
    profile_kind: str = "auto"
    """``auto`` (the best by Akaike's criterion of the Gaussian, the Moffat and, from a median S/N of 3 per column,
    the spline), ``gaussian``, ``moffat`` or ``spline`` (`~jwst_optextract.core.joint_spline`)."""
    background_method: str = "smooth"
    psf_prior: PsfPrior | None = None
    """The instrument's cross-dispersion PSF prior (``optxpsf``): the shared Moffat's index is held toward its."""
    keep_rectified: bool = False
    """Also resample every exposure about its trace and average them, for display (`rectified_image`)."""

    def __post_init__(self):
        self.reject_sigma = self.reject_sigma or None
        self.repeat_sigma = self.repeat_sigma or None
        self.outside_factor = self.outside_factor or None
        self.clip_percentiles = tuple(self.clip_percentiles) if self.clip_percentiles else None

    @property
    def scene_model(self):
        """How ``background="scene"`` models each exposure's background: as `optx_spec`'s scene model does."""
        return SceneParameters(scene_background="smooth").background

    def fit_parameters(self) -> FitParameters:
        """The trace fit settings these imply (the same outlier rejection, or none)."""
        return FitParameters(trace_degree=self.trace_degree, width_degree=self.width_degree,
                             psf_sigma=self.psf_sigma, profile_kind="gaussian", reject_sigma=self.reject_sigma,
                             fit_jitter=False)
