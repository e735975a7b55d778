"""Pure-array spectral extraction algorithms (numpy/scipy only, no datamodels).

Arrays are shaped ``(..., ny, nx)`` with the dispersion along the last axis and
any leading axis for integrations; ``mask`` arrays are True for good pixels.
"""

from .box import BoxResult, aperture_weights, box_extract, trace_aperture
from .optimal import OptimalResult, optimal_extract
from .profiles import (
    PROFILES,
    GaussianProfile,
    MoffatProfile,
    Profile,
    ProfileTemplate,
    Spline2DProfile,
    SplineProfile,
    TemplateProfile,
    fit_gaussian_profile,
    fit_moffat_profile,
    fit_spline_profile,
    fit_template_profile,
    gaussian_profile,
    moffat_profile,
)
from .scene import SceneBackground, SceneResult, fit_scene
from .trace import find_trace, richardson_lucy

__all__ = [
    "PROFILES",
    "BoxResult",
    "GaussianProfile",
    "MoffatProfile",
    "OptimalResult",
    "Profile",
    "ProfileTemplate",
    "SceneBackground",
    "SceneResult",
    "Spline2DProfile",
    "SplineProfile",
    "TemplateProfile",
    "aperture_weights",
    "box_extract",
    "find_trace",
    "fit_scene",
    "fit_gaussian_profile",
    "fit_moffat_profile",
    "fit_spline_profile",
    "fit_template_profile",
    "gaussian_profile",
    "moffat_profile",
    "optimal_extract",
    "richardson_lucy",
    "trace_aperture",
]
