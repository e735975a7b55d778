"""Pure-array spectral extraction algorithms (numpy/scipy only, no datamodels).

Arrays are shaped ``(..., ny, nx)`` with the dispersion along the last axis and
any leading axis for integrations; ``mask`` arrays are True for good pixels.
"""

from .box import BoxResult, aperture_weights, box_extract, trace_aperture
from .optimal import OptimalResult, optimal_extract
from .pixels import Variances
from . import profiles as _profiles
from .profiles import *  # noqa: F403 (the registered kinds' classes and the profile functions)
from .scene import SceneBackground, SceneResult, fit_scene
from .trace import find_trace, richardson_lucy

__all__ = [
    "BoxResult",
    "OptimalResult",
    "SceneBackground",
    "SceneResult",
    "Variances",
    "aperture_weights",
    "box_extract",
    "find_trace",
    "fit_scene",
    "optimal_extract",
    "richardson_lucy",
    "trace_aperture",
    *_profiles.__all__,
]
