"""Pure-array spectral extraction algorithms (numpy/scipy only, no datamodels).

Arrays are shaped ``(..., ny, nx)`` with the dispersion along the last axis and
any leading axis for integrations; ``mask`` arrays are True for good pixels.
"""

from .box import BoxResult, aperture_weights, box_extract, trace_aperture
from .optimal import OptimalResult, optimal_extract
from .profile import (
    GaussianProfile,
    MoffatProfile,
    fit_gaussian_profile,
    fit_moffat_profile,
    gaussian_profile,
    moffat_profile,
)
from .scene import SceneBackground, SceneResult, fit_scene
from .template_profile import ProfileTemplate, TemplateProfile, fit_template_profile
from .trace import find_trace, richardson_lucy

__all__ = [
    "BoxResult",
    "GaussianProfile",
    "MoffatProfile",
    "OptimalResult",
    "ProfileTemplate",
    "SceneBackground",
    "SceneResult",
    "TemplateProfile",
    "aperture_weights",
    "box_extract",
    "find_trace",
    "fit_scene",
    "fit_gaussian_profile",
    "fit_moffat_profile",
    "fit_template_profile",
    "gaussian_profile",
    "moffat_profile",
    "optimal_extract",
    "richardson_lucy",
    "trace_aperture",
]
